"""The blind rule of the default digit model (issue 21), chosen on the validation digits only.

Each image takes one of three flows by what the tool can measure on it (restoration.blind_rule):
estimated noise above --noisy-above: the model's calibrated flow (the denoiser); else a reconstruction
residual RMS(x - G(F(x))) above --far-residual: the paper's flow (alpha 0.15, beta 0.1, 8 steps, the
bank's default sigma_ker); else the kernel step alone (alpha 0, no adaptive step). Prints FID, accuracy
and SSIM per degradation of Table 1 on the validation digits (1 draw, the bench's seeds), with the
share of images in each regime, and writes the model with the rule to --out.

    uv run python examples/blind_rule.py --out runs/mnist-blind.safetensors   # then cp to weights/mnist.safetensors
"""

import argparse
import dataclasses

import torch

from lmppm_cli.core.bank import default_sigma_ker
from lmppm_cli.core.metrics import classifier_outputs, domain_fid, ssim
from lmppm_cli.core.restoration import blind_rule, restore
from lmppm_cli.experiments.bench.mnist import _degradations
from lmppm_cli.experiments.bench.runner import spread
from lmppm_cli.files.data import mnist_5k
from lmppm_cli.files.weights import load_model, model_metadata, resolve_model, save_model

parser = argparse.ArgumentParser()
parser.add_argument(
    "--model",
    default="mnist",
    help="an lmppm model; its calibrated flow (or, with a rule already, its noisy regime's) is the base",
)
parser.add_argument("--noisy-above", type=float, default=0.15)
parser.add_argument("--far-residual", type=float, default=0.25)
parser.add_argument("--n", type=int, default=500, help="validation digits")
parser.add_argument("--out", required=True)
args = parser.parse_args()

path = resolve_model(args.model)
model = load_model(path)
base = model.config.flow.noisy or model.config.flow
base = dataclasses.replace(base, far=None, noisy=None, far_residual=0.0, noisy_above=0.0)
paper = dataclasses.replace(
    base, alpha=0.15, beta=0.1, steps=8, adaptive=False, schedule="constant", sigma_ker=default_sigma_ker(model.bank)
)
rule = dataclasses.replace(
    base, alpha=0.0, adaptive=False, far=paper, far_residual=args.far_residual, noisy=base, noisy_above=args.noisy_above
)
model.config = dataclasses.replace(model.config, flow=rule)
save_model(model, args.out, extra={k: v for k, v in model_metadata(path).items() if k != "lmppm.config"})

val = mnist_5k().val
idx = spread(len(val.images), args.n)
clean, labels = val.images[idx], val.labels[idx]
classifier = load_model(resolve_model("mnist-classifier"))
reference = classifier_outputs(classifier, clean)[0]
print(f"| validation ({len(idx)} digits) | FID | accuracy | SSIM | near / far / noisy |")
print("|---|---|---|---|---|")
with torch.no_grad():
    for d_index, (name, degrade) in enumerate(_degradations(None).items()):
        gen = torch.Generator().manual_seed(d_index)  # the mnist bench's draw 0 at seed 0
        x = torch.cat([degrade(clean[i : i + 250], gen) for i in range(0, len(clean), 250)])
        out = torch.cat([restore(model, x[i : i + 250]).images for i in range(0, len(x), 250)]).clamp(0, 1)
        features, predicted = classifier_outputs(classifier, out)
        regimes = {id(f): int(r.sum()) for r, f in blind_rule(model, x, *model.autoencoder.encode(x), rule)}
        share = " / ".join(str(regimes.get(id(f), 0)) for f in (rule, paper, base))
        print(
            f"| {name} | {domain_fid(reference, features, labels)[0]:.1f} | {(predicted == labels).float().mean():.3f} | "
            f"{ssim(out, clean).mean():.3f} | {share} |"
        )
print(f"wrote {args.out}")
