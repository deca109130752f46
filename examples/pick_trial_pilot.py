"""A quick trial for the photo pick, tried and not shipped (docs/reproduction.md, "The Gaussian pick"):
score `photos` and blind BM3D on four corner crops of a noisy photo by Monte-Carlo SURE (Ramani, Blu and
Unser 2008: the expected squared error of a denoiser f at white noise sigma, estimated from the noisy image
alone as |y - f(y)|^2 / n - sigma^2 + 2 sigma^2 div f / n, the divergence by one random probe b:
b . (f(y + eps b) - f(y)) / eps), and compare the estimated gap with the true one on the whole photo.
Prints one JSON line per (noise, scene) of the validation scenes.

    uv run python examples/pick_trial_pilot.py --extra-photos ~/photos-extra --levels 0.1,0.075,0.125
    uv run python examples/pick_trial_pilot.py --quick   # chelsea's centre, 128 pixels, two 64-pixel corners, noise 0.1
"""

import argparse
import json
import math
import time

import torch

from lmppm_cli.core.metrics import psnr
from lmppm_cli.core.noise_level import estimate_noise
from lmppm_cli.experiments.bench.photos import noisy_photo, quantised
from lmppm_cli.files.data import validation_photos
from lmppm_cli.files.tiling import Restorer
from lmppm_cli.files.weights import load_model, resolve_model
from lmppm_cli.methods import restorer
from lmppm_cli.methods.classical import denoise
from lmppm_cli.methods.classical import estimate_noise as bm3d_noise

SIDE, EPS = 128, 0.01  # crop side (four corners), probe step


def corners(x: torch.Tensor, count: int = 4) -> list[torch.Tensor]:
    """`count` of the four corner crops (top left, bottom right, top right, bottom left)."""
    H, W = x.shape[-2:]
    side = min(SIDE, H // 2, W // 2)
    spots = [(0, 0), (H - side, W - side), (0, W - side), (H - side, 0)][:count]
    return [x[:, y : y + side, z : z + side] for y, z in spots]


def sure(f, y: torch.Tensor, sigma: float, g: torch.Generator) -> float:
    """Monte-Carlo SURE of denoiser f on y (C, H, W) at white noise sigma: the estimated mean squared error."""
    n, fy = y.numel(), f(y)
    b = torch.randn(y.shape, generator=g)
    div = float((b * (f(y + EPS * b) - fy)).sum()) / EPS
    return float((y - fy).pow(2).sum()) / n - sigma**2 + 2 * sigma**2 * div / n


def scenes(extra: str | None, quick: bool) -> dict[str, torch.Tensor]:
    found = validation_photos(extra)
    if quick:
        x = found["chelsea"]
        return {"chelsea (centre)": x[:, 86:214, 161:289]}
    return found


def main(extra: str | None, levels: list[float], quick: bool) -> None:
    torch.set_num_threads(1)
    net = load_model(resolve_model("photos"), torch.device("cpu"))
    restoring = Restorer.of(net, restorer(net, None))
    photos = lambda x: restoring([x])[0].image  # noqa: E731
    for sigma in levels:
        for name, clean in scenes(extra, quick).items():
            y = noisy_photo(clean, sigma, 0)
            s, s_bm3d = estimate_noise(y), bm3d_noise(y.permute(1, 2, 0).double().numpy())
            bm3d = lambda c, s_bm3d=s_bm3d: denoise(c[None], "bm3d", s_bm3d)[0].float()  # noqa: E731
            g, start = torch.Generator().manual_seed(0), time.perf_counter()
            crops = corners(y, 2 if quick else 4)
            mse = {k: [sure(f, c, s, g) for c in crops] for k, f in (("photos", photos), ("bm3d", bm3d))}
            trial = time.perf_counter() - start
            db = {k: -10 * math.log10(max(sum(v) / len(v), 1e-8)) for k, v in mse.items()}
            start = time.perf_counter()
            true_photos = float(psnr(quantised(photos(y))[None], clean[None])[0])
            true_bm3d = float(psnr(quantised(denoise(y[None], "bm3d")[0].float())[None], clean[None])[0])
            row = {"sigma": sigma, "scene": name, "estimated": s, "true_gap": true_photos - true_bm3d}
            row |= {"sure_gap": db["photos"] - db["bm3d"], "trial_s": trial, "whole_s": time.perf_counter() - start}
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra-photos", default=None, help="the wallpapers folder (examples/wallpapers.sh)")
    parser.add_argument("--levels", default="0.1", help="Gaussian noise levels, comma-separated")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    main(args.extra_photos, [float(s) for s in args.levels.split(",")], args.quick)
