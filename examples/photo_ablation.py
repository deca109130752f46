"""What caps a photo model, measured (issue 20, item 1) on the validation photo (chelsea, whole, in tiles,
8-bit in and out; coffee, the test photo, is never used here).

1. The bundled models: the single pass G(F(x)) on the *clean* photo (an autoencoder that cannot
   reproduce a clean photo cannot restore one) and on noise 0.1 and 0.2.
2. Short DAE runs of the photo U-Net, one choice changed at a time against the recipe of the shipped
   photo model (64x64 crops, pixel-unshuffle 2, residual output, widths 64-128-192, no skip dropout):
   a sigmoid output instead of the residual one, skip dropout 0.5, 32x32 crops (tiles), no
   pixel-unshuffle (widths halved to keep the cost near), narrow widths 16-32-64. Every run gets the
   same budget (--steps batches of 16 drawn from photo-crops' training photos, Adam 1e-3, cosine), so the
   figures compare recipes at a short budget, not converged models.

    uv run python examples/photo_ablation.py [--steps 800] [--threads 1] [--extra-photos DIR] [--quick]
"""

import argparse
import json
import shutil
import time

import torch

from lmppm_cli.core.config import AutoencoderConfig, DistanceConfig, ModelConfig
from lmppm_cli.core.data import Dataset, Split
from lmppm_cli.core.precision import cpu_has_bf16
from lmppm_cli.core.train import TrainConfig
from lmppm_cli.experiments.bench.photos import learned_rows, noise_levels, score_photo
from lmppm_cli.files.data import grid_crops, load_dataset, photo_tensor, shipped_photo
from lmppm_cli.files.weights import load_model, resolve_model
from lmppm_cli.training import train

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=800)
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--extra-photos", default=None)
parser.add_argument("--quick", action="store_true", help="tiny models and budget: checks that the script runs")
parser.add_argument("--out", default="runs/photo-ablation")
args = parser.parse_args()
torch.set_num_threads(args.threads)
shutil.rmtree(args.out, ignore_errors=True)  # this script's own runs

BASE = dict(size=64, unshuffle=2, residual=True, widths=(64, 128, 192), skip_dropout=0.0, latent=256)
VARIANTS = {
    "recipe (64 px, unshuffle 2, residual, 64-128-192)": {},
    "sigmoid output (not residual)": {"residual": False},
    "skip dropout 0.5": {"skip_dropout": 0.5},
    "32x32 crops and tiles": {"size": 32},
    "no pixel-unshuffle (widths 32-64-96)": {"unshuffle": 1, "widths": (32, 64, 96)},
    "narrow widths 16-32-64": {"widths": (16, 32, 64)},
}
if args.quick:
    BASE.update(widths=(4, 8), latent=8)
    VARIANTS = {"recipe": {}, "sigmoid output (not residual)": {"residual": False}}
    args.steps = 4

chelsea = photo_tensor(shipped_photo("chelsea"), limit=None)
if args.quick:
    chelsea = chelsea[:, :96, :128]
levels = (0.0, 0.1, 0.2)
results = {}

for name in ("photos", "photos-patches", "photos-noproj"):
    net = load_model(resolve_model(name), torch.device("cpu"))
    cells = score_photo(
        chelsea, {"single pass": learned_rows(net, None)["single pass G(F(x))"]}, noise_levels(levels), seed=0, draws=1
    )
    ae = net.config.autoencoder
    label = f"bundled {name} ({ae.height} px, widths {'-'.join(map(str, ae.widths))})"
    results[label] = {c["sigma"]: c["psnr"][0] for c in cells}
    print(label, results[label], flush=True)

source = load_dataset("photo-crops", 3, 64, 64, extra_photos=args.extra_photos)
for label, change in VARIANTS.items():
    v = {**BASE, **change}
    per_epoch = 16 * 50
    draw = type(source.draw)(source.draw.photos, v["size"], per_epoch, seed=0)
    data = Dataset(
        "photo-crops",
        Split(draw(0)),
        Split(grid_crops(chelsea, v["size"], v["size"])[:64]),
        draw=draw,
        digest=source.digest,
    )
    ae = AutoencoderConfig(
        arch="unet",
        channels=3,
        height=v["size"],
        width=v["size"],
        latent_dim=v["latent"],
        widths=v["widths"],
        unshuffle=v["unshuffle"],
        residual=v["residual"],
        skip_dropout=v["skip_dropout"],
    )
    config = ModelConfig(autoencoder=ae, distance=DistanceConfig(hidden=(300, 100, 30)), method="dae")
    epochs = max(1, args.steps // 50)
    tcfg = TrainConfig(
        epochs=epochs,
        batch_size=16,
        sigma_d=0.2,
        sigma_range=(0.0, 0.3),
        lr_schedule="cosine",
        patience=epochs,
        calibrate=False,
        precision="bf16" if cpu_has_bf16() else "fp32",
    )
    start = time.perf_counter()
    train(config, data, tcfg, f"{args.out}/{len(results)}", torch.device("cpu"))
    seconds = time.perf_counter() - start
    net = load_model(f"{args.out}/{len(results)}/model.safetensors", torch.device("cpu"))
    cells = score_photo(
        chelsea, {"dae": learned_rows(net, None)["single pass G(F(x))"]}, noise_levels(levels), seed=0, draws=1
    )
    results[label] = {**{c["sigma"]: c["psnr"][0] for c in cells}, "train_s": round(seconds, 1)}
    print(label, results[label], flush=True)

print(json.dumps(results, indent=2))
