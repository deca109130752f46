"""What caps the photo model at low noise, measured with short runs (issue 33, item 1).

Each variant is a DAE of the photo U-Net trained by `lmppm train`'s own code for the same number of
batches of 16 crops from photo-crops (Adam 1e-3, cosine schedule), one choice changed at a time against
the base recipe (the shipped `photos-dae`: 64x64 crops, pixel-unshuffle 2, residual output, widths
64-128-192, two convolutions per block, noise 0.3 u^2, L2). Each is scored on the validation scenes
(photo-crops' `validation_photos`, whole, 8-bit in and out, in tiles as `lmppm restore` runs): the
single pass G(F(x)) at Gaussian noise 0.02 to 0.3 and at the camera-like rows of the photo bench.
Blind BM3D on the same inputs is scored once (cached in OUT/bm3d.json). Coffee, the test photo, is
never used here.

    uv run python examples/photo_recipe.py --extra-photos ~/photos-extra --variants base,noise-map [--epochs 24]
    uv run python examples/photo_recipe.py --extra-photos ~/photos-extra --bm3d     # the BM3D reference
    uv run python examples/photo_recipe.py --table                                  # the table so far
"""

import argparse
import json
import time
from pathlib import Path

import torch

from lmppm_cli.core.config import AutoencoderConfig, DistanceConfig, ModelConfig
from lmppm_cli.core.precision import cpu_has_bf16
from lmppm_cli.core.restoration import Restored, single_pass
from lmppm_cli.core.train import TrainConfig
from lmppm_cli.experiments.bench.photos import PHOTO_DEGRADATIONS, classical_rows, score_photo
from lmppm_cli.files.data import photo_crops, validation_photos
from lmppm_cli.files.tiling import Restorer
from lmppm_cli.files.weights import load_model
from lmppm_cli.training import train

BASE_AE = dict(
    arch="unet", channels=3, height=64, width=64, latent_dim=256, widths=(64, 128, 192), unshuffle=2, residual=True
)
BASE_TRAIN = dict(sigma_d=0.2, sigma_range=(0.0, 0.3), sigma_power=2.0, batch_size=16, lr_schedule="cosine")
VARIANTS = {  # name: (autoencoder changes, training changes)
    "base": ({}, {}),
    "noise-map": ({"noise_map": True}, {}),
    "depth-3": ({"depth": 3}, {}),
    "depth-4": ({"depth": 4}, {}),  # two residual layers per block
    "wide-96": ({"widths": (96, 128, 192)}, {}),
    "charbonnier": ({}, {"loss": "charbonnier"}),
    "relative": ({}, {"loss": "relative"}),
    "ema": ({}, {"ema": 0.999}),
    "power-3": ({}, {"sigma_power": 3.0}),
    "camera-0.5": ({}, {"camera": 0.5}),
    "crop-96": ({"height": 96, "width": 96}, {}),
}
QUICK_AE = dict(widths=(4, 8), latent_dim=8, height=32, width=32)


def scenes(extra, quick):
    found = validation_photos(extra)
    return {k: v[:, :64, :96] for k, v in list(found.items())[:1]} if quick else found


def score(fn, photos, seed):
    """{scene: {degradation: PSNR, SSIM}} for one restorer, one draw per cell."""
    out = {}
    for name, clean in photos.items():
        cells = score_photo(clean, {"m": fn}, PHOTO_DEGRADATIONS, seed, 1)
        out[name] = {c["degradation"]: (c["psnr"][0], c["ssim"][0]) for c in cells}
    return out


def run_variant(name, args, photos):
    ae_change, train_change = VARIANTS[name]
    ae = AutoencoderConfig(**{**BASE_AE, **ae_change, **(QUICK_AE if args.quick else {})})
    config = ModelConfig(autoencoder=ae, distance=DistanceConfig(hidden=(300, 100, 30)), method="dae")
    epochs = 1 if args.quick else args.epochs
    tcfg = TrainConfig(
        **{**BASE_TRAIN, **train_change},
        epochs=epochs,
        patience=epochs,
        calibrate=False,
        precision="bf16" if cpu_has_bf16() else "fp32",
    )
    data = photo_crops(ae.height, per_epoch=64 if args.quick else 4096, extra_photos=args.extra_photos)
    run = Path(args.out) / name
    start = time.perf_counter()
    train(config, data, tcfg, run, torch.device("cpu"))
    seconds = time.perf_counter() - start
    net = load_model(run / "model.safetensors", torch.device("cpu"))
    one_pass = lambda b, keep=False: Restored(single_pass(net, b), torch.zeros(len(b)), [])  # noqa: E731
    restoring = Restorer.of(net, one_pass)
    fn = lambda x: restoring([x])[0].image  # noqa: E731
    result = {"train_seconds": round(seconds, 1), "epochs": epochs, "scores": score(fn, photos, args.seed)}
    (Path(args.out) / f"{name}.json").write_text(json.dumps(result, indent=1))
    print(name, table_row(result["scores"]), flush=True)


def table_row(scores):
    """Mean PSNR over the scenes per degradation."""
    cells = next(iter(scores.values())).keys()
    return {c: round(sum(s[c][0] for s in scores.values()) / len(scores), 3) for c in cells}


def table(out):
    bm3d = json.loads((Path(out) / "bm3d.json").read_text()) if (Path(out) / "bm3d.json").exists() else None
    rows = {p.stem: json.loads(p.read_text()) for p in sorted(Path(out).glob("*.json")) if p.stem != "bm3d"}
    cols = list(PHOTO_DEGRADATIONS)
    print("| variant | " + " | ".join(cols) + " | train s |")
    print("|---" * (len(cols) + 2) + "|")
    if bm3d:
        r = table_row(bm3d)
        print("| blind BM3D | " + " | ".join(f"{r[c]:.2f}" for c in cols) + " | |")
    for name, res in rows.items():
        r = table_row(res["scores"])
        print(f"| {name} | " + " | ".join(f"{r[c]:.2f}" for c in cols) + f" | {res['train_seconds']:.0f} |")


parser = argparse.ArgumentParser()
parser.add_argument("--variants", default="base")
parser.add_argument("--epochs", type=int, default=24, help="epochs of 256 batches of 16 crops")
parser.add_argument("--extra-photos", default=None)
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--seed", type=int, default=100)
parser.add_argument("--out", default="runs/photo-recipe")
parser.add_argument("--bm3d", action="store_true", help="score blind BM3D on the same inputs")
parser.add_argument("--table", action="store_true", help="print the table of what has run")
parser.add_argument("--quick", action="store_true", help="tiny models, one crop of one scene: checks that it runs")
args = parser.parse_args()
torch.set_num_threads(args.threads)
Path(args.out).mkdir(parents=True, exist_ok=True)
if args.table:
    table(args.out)
elif args.bm3d:
    scores = score(classical_rows()["BM3D (blind)"], scenes(args.extra_photos, args.quick), args.seed)
    (Path(args.out) / "bm3d.json").write_text(json.dumps(scores, indent=1))
    print("blind BM3D", table_row(scores))
else:
    for variant in args.variants.split(","):
        run_variant(variant, args, scenes(args.extra_photos, args.quick))
