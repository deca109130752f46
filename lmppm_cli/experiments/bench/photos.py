"""Suites `photos` and `photo-pick`: Gaussian noise on one whole held-out photo, restored as `lmppm
restore` restores a file (the noisy photo and every result rounded to 8 bits, as a PNG holds them;
U-Net models in blended tiles), beside the classical blind denoisers a user would otherwise run.

photos      the test photo (coffee) at noise 0, 0.1 and 0.2, and (blind: the model never saw them) at
            Table 6's mild missing pixels, scribbles, downsampling and over-sharpening. Rows: the noisy input, the single pass
            G(F(x)), the DAE, LMPPM (the model's default flow), LMPPM with D switched off entirely
            (alpha 0 and the paper's plain kernel step, so D is never evaluated), blind BM3D and
            NL-means; PSNR, SSIM and seconds per megapixel. The noisy input row is "nothing".
photo-pick  the validation photo (chelsea) at noise 0 to 0.3: LMPPM's default flow against blind BM3D,
            with each noisy photo's estimated noise. `weights/photos-vs-bm3d.json` is this table for
            the bundled `photos` model; `lmppm restore` with no --model sends a colour photo to the
            learned model only where it is ahead there (domain.photo_method).

Intervals: every figure is a mean over `draws` noise draws (seeds seed..seed+draws-1; the same draws for
every method), and every row's difference to LMPPM is paired by draw, with a 95% Student-t interval.
One photo and a few draws give intervals over the noise only, not over photos; a difference is a win or
a loss only when its interval excludes 0.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lmppm_cli.core.config import FlowOverride
from lmppm_cli.core.degradations import degrade
from lmppm_cli.core.metrics import psnr, ssim
from lmppm_cli.core.noise import camera_noise
from lmppm_cli.core.restoration import Restored, single_pass
from lmppm_cli.experiments.bench.intervals import t_interval, verdict
from lmppm_cli.files.atomic import write_text
from lmppm_cli.files.data import photo_tensor, shipped_photo
from lmppm_cli.files.domain import estimate_noise
from lmppm_cli.files.tiling import resolve
from lmppm_cli.files.weights import load_model, resolve_model
from lmppm_cli.methods import restorer
from lmppm_cli.methods.classical import denoise

TEST_LEVELS = (0.0, 0.1, 0.2)
BEYOND_NOISE = {"missing-pixels": 0.04, "scribbles": 6, "downsample": 0.5, "sharpen": 8}  # Table 6, mild
PICK_LEVELS = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
DRAWS = 3
CAMERA = (0.004, 2e-4)  # (a, b) of the camera-like rows, Var = a x + b: std 0.047 at mid-gray, 0.024 at 0.1
CAMERA_JPEG = 90


def quantised(x: torch.Tensor) -> torch.Tensor:
    """What an 8-bit file holds of an image in [0, 1]."""
    return x.clamp(0.0, 1.0).mul(255.0).round().div(255.0)


def noisy_photo(clean: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return quantised(clean + sigma * torch.randn(clean.shape, generator=g))


def learned_rows(model, dae) -> dict:
    """The learned restorers of the table, each (C, H, W) -> (C, H, W) as `lmppm restore` runs them."""
    from lmppm_cli.api import restore_one  # the API's whole-image path: tiles exactly as restore does

    tiles = resolve(None, None, model)

    def whole(net, fn):
        return lambda x: restore_one(net, fn, x, tiles, 64)

    rows = {
        "single pass G(F(x))": whole(
            model, lambda b, keep=False: Restored(single_pass(model, b), torch.zeros(len(b)), [])
        ),
        "LMPPM": whole(model, restorer(model)),
        "LMPPM, D off (alpha 0, plain kernel step)": whole(
            model, restorer(model, flow=FlowOverride(alpha=0.0, adaptive=False))
        ),
    }
    if dae is not None:
        rows["DAE"] = whole(dae, restorer(dae, "dae"))
    return rows


def classical_rows(on: bool = True) -> dict:
    if not on:
        return {}
    return {
        "BM3D (blind)": lambda x: denoise(x[None], "bm3d")[0],
        "NL-means (blind)": lambda x: denoise(x[None], "nlmeans")[0],
    }


def noise_at(sigma: float):
    """The degradation `noise sigma` as score_photo takes it: (clean, seed) -> 8-bit noisy photo."""
    return lambda clean, seed: noisy_photo(clean, sigma, seed)


def camera_like(a: float, b: float, jpeg: int | None = None):
    """Camera-like noise (Poisson-Gaussian, Var = a x + b, core/noise.camera_noise) as score_photo takes
    it, 8-bit; with `jpeg`, the noisy photo saved as a JPEG of that quality and read back, as a camera does."""

    def make(clean: torch.Tensor, seed: int) -> torch.Tensor:
        x = quantised(camera_noise(clean[None], a, b, torch.Generator().manual_seed(seed))[0])
        return x if jpeg is None else jpeg_round_trip(x, jpeg)

    return make


def jpeg_round_trip(x: torch.Tensor, quality: int) -> torch.Tensor:
    """(3, H, W) in [0, 1] -> the same photo after a JPEG of this quality (Pillow, 4:2:0 as cameras store)."""
    buffer = io.BytesIO()
    array = x.mul(255).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    back = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return torch.from_numpy(back.copy()).permute(2, 0, 1).float().div(255.0)


def degraded_by(kind: str, value: float):
    """Another degradation of the paper (Table 6's mild strengths on a photo), seeded, 8-bit."""
    return lambda clean, seed: quantised(degrade(clean, kind, value, torch.Generator().manual_seed(seed)))


def score_photo(
    clean: torch.Tensor, methods: dict, degradations: dict, seed: int, draws: int, on_stage=lambda s: None
) -> list[dict]:
    """Every (degradation, method) over the same draws: per-draw PSNR, SSIM, seconds per megapixel and
    the estimated noise of each degraded input. `degradations`: label -> (sigma or None, (clean, seed) -> image)."""
    cells = []
    megapixels = clean.shape[-2] * clean.shape[-1] / 1e6
    for label, (sigma, make) in degradations.items():
        inputs = [make(clean, seed + k) for k in range(draws)]
        noise = [estimate_noise(x) for x in inputs]
        for name, fn in methods.items():
            on_stage(f"{label}: {name}")
            scores = []
            for x in inputs:
                start = time.perf_counter()
                out = quantised(fn(x).float().cpu())
                seconds = time.perf_counter() - start
                scores.append(
                    (
                        float(psnr(out[None], clean[None])[0]),
                        float(ssim(out[None], clean[None])[0]),
                        seconds / megapixels,
                    )
                )
            cells.append(
                {
                    "degradation": label,
                    "sigma": sigma,
                    "method": name,
                    "psnr": [s[0] for s in scores],
                    "ssim": [s[1] for s in scores],
                    "seconds_per_mp": sum(s[2] for s in scores) / draws,
                    "estimated_noise": noise,
                }
            )
    return cells


def noise_levels(levels) -> dict:
    return {f"noise {s:g}": (s, noise_at(s)) for s in levels}


PHOTO_LEVELS = (0.02, 0.05, 0.1, 0.2, 0.3)
PHOTO_DEGRADATIONS = {  # what a photo brings: Gaussian noise over a photo's range, and a camera's noise
    **noise_levels(PHOTO_LEVELS),
    "camera": (None, camera_like(*CAMERA)),
    f"camera, JPEG {CAMERA_JPEG}": (None, camera_like(*CAMERA, jpeg=CAMERA_JPEG)),
}


def compare(cells: list[dict], reference: str = "LMPPM") -> list[dict]:
    """Each cell with its paired PSNR and SSIM difference to `reference` at the same level."""
    ref = {c["degradation"]: c for c in cells if c["method"] == reference}
    out = []
    for c in cells:
        r = ref.get(c["degradation"])
        extra = {}
        if r is not None and c["method"] != reference:
            for metric in ("psnr", "ssim"):
                iv = t_interval([a - b for a, b in zip(c[metric], r[metric])])
                extra[f"{metric}_minus_lmppm"] = {"mean": iv.mean, "low": iv.low, "high": iv.high}
        out.append(c | extra)
    return out


def run_photos(
    out_dir,
    *,
    seed: int,
    limit: int | None = None,
    on_stage=lambda s: None,
    model: str | None = None,
    dae: str | None = None,
    classical: bool = True,
    draws: int = DRAWS,
    device: str = "cpu",
) -> dict:
    """The `photos` suite on the whole test photo; writes results.json and results.md into out_dir."""
    dev = torch.device(device)
    net = load_model(resolve_model(model or "photos"), dev)
    dae_net = load_model(resolve_model(dae or "photos-dae"), dev)
    clean = photo_tensor(shipped_photo("coffee"), limit=None)
    methods = {"noisy input": lambda x: x, **learned_rows(net, dae_net), **classical_rows(classical)}
    degradations = {
        **noise_levels(TEST_LEVELS),
        **{f"{k} {v:g}": (None, degraded_by(k, v)) for k, v in BEYOND_NOISE.items()},
    }
    cells = compare(score_photo(clean, methods, degradations, seed, limit or draws, on_stage))
    header = f"# lmppm bench: photos\n\nThe whole test photo (scikit-image's coffee, {clean.shape[-1]}x{clean.shape[-2]}), never trained on or used to choose anything; {limit or draws} noise draws (seeds {seed}..{seed + (limit or draws) - 1}), 8-bit in and out.\n"
    return _write(Path(out_dir), "photos", cells, header, seed)


def run_photo_pick(
    out_dir,
    *,
    seed: int,
    limit: int | None = None,
    on_stage=lambda s: None,
    model: str | None = None,
    draws: int = DRAWS,
    device: str = "cpu",
    **_,
) -> dict:
    """The `photo-pick` table on the validation photo: LMPPM's default flow against blind BM3D."""
    path = resolve_model(model or "photos")
    net = load_model(path, torch.device(device))
    clean = photo_tensor(shipped_photo("chelsea"), limit=None)
    methods = {
        "LMPPM": learned_rows(net, None)["LMPPM"],
        **{k: v for k, v in classical_rows().items() if k.startswith("BM3D")},
    }
    cells = compare(score_photo(clean, methods, noise_levels(PICK_LEVELS), seed, limit or draws, on_stage))
    table = pick_table(cells, model or "photos", hashlib.sha256(Path(path).read_bytes()).hexdigest())
    write_text(Path(out_dir) / "photos-vs-bm3d.json", json.dumps(table, indent=2) + "\n")
    header = f"# lmppm bench: photo-pick\n\nThe whole validation photo (scikit-image's chelsea); {limit or draws} noise draws per level. `photos-vs-bm3d.json` here is the table the default pick reads.\n"
    return _write(Path(out_dir), "photo-pick", cells, header, seed)


def pick_table(cells: list[dict], name: str, sha256: str) -> dict:
    """What domain.photo_method reads: per level, the mean estimated noise of the noisy validation photos
    and the mean PSNR of the learned model and of blind BM3D."""
    by = {(c["sigma"], c["method"]): c for c in cells}
    levels = sorted({c["sigma"] for c in cells})
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    return {
        "_about": "lmppm bench --suite photo-pick: the learned photo model's default flow against blind BM3D on the validation photo (chelsea), by noise level.",
        "model": name,
        "sha256": sha256,
        "photo": "chelsea",
        "estimated_noise": [mean(by[s, "LMPPM"]["estimated_noise"]) for s in levels],
        "model_psnr": [mean(by[s, "LMPPM"]["psnr"]) for s in levels],
        "bm3d_psnr": [mean(by[s, "BM3D (blind)"]["psnr"]) for s in levels],
        "sigma": levels,
    }


def _write(out_dir: Path, name: str, cells: list[dict], header: str, seed: int) -> dict:
    write_text(out_dir / "results.json", json.dumps({"suite": name, "seed": seed, "cells": cells}, indent=2))
    write_text(out_dir / "results.md", header + "\n" + markdown(cells))
    return {
        f"{c['degradation']}: {c['method']}": {
            "psnr": _m(c["psnr"]),
            "ssim": _m(c["ssim"]),
            "s/MP": c["seconds_per_mp"],
        }
        for c in cells
    }


def _m(values: list[float]) -> float:
    return sum(values) / len(values)


def markdown(cells: list[dict]) -> str:
    lines = [
        "| degradation | method | PSNR | SSIM | PSNR - LMPPM (95% CI) | SSIM - LMPPM (95% CI) | s / MP |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        diff = []
        for metric, digits in (("psnr", 2), ("ssim", 4)):
            d = c.get(f"{metric}_minus_lmppm")
            diff.append(
                ""
                if d is None
                else f"{d['mean']:+.{digits}f} [{d['low']:+.{digits}f}, {d['high']:+.{digits}f}] {verdict(d['low'], d['high'])}"
            )
        lines.append(
            f"| {c['degradation']} | {c['method']} | {_m(c['psnr']):.2f} | {_m(c['ssim']):.4f} | {diff[0]} | {diff[1]} | {c['seconds_per_mp']:.2f} |"
        )
    return (
        "\n".join(lines)
        + "\n\nwin / loss: the row is ahead of / behind LMPPM with the interval excluding 0; tie otherwise.\n"
    )
