"""Suite `photos`: noise and the paper's other degradations on one whole held-out photo (coffee), restored
as `lmppm restore` restores a file (the degraded photo and every result rounded to 8 bits, as a PNG holds
them; U-Net models in blended tiles), beside the classical blind denoisers a user would otherwise run.
photo_pick.py scores the validation scenes with the same parts.

Degradations: none (a clean photo must come back as it was), Gaussian noise at 0.02 to 0.3, camera-like
noise (Poisson-Gaussian, Var = a x + b) and the same saved as a JPEG of quality 90, and (blind: the model
never saw them) Table 6's mild missing pixels, scribbles, downsampling and over-sharpening. Rows: the
input, the default (what `lmppm restore photo.png` runs: the pick of files/domain.py), the single pass
G(F(x)), LMPPM (the model's own flow), LMPPM with D off entirely, the DAE, blind BM3D and NL-means; PSNR,
SSIM and seconds per megapixel.

Intervals: every figure is a mean over `draws` draws (seeds seed..seed+draws-1; the same draws for every
method), and every row's difference to LMPPM is paired by draw, with a 95% Student-t interval. One photo
and a few draws give intervals over the noise only, not over photos; a difference is a win or a loss only
when its interval excludes 0.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from lmppm_cli.core.config import FlowOverride
from lmppm_cli.core.degradations import degrade
from lmppm_cli.core.metrics import psnr, ssim
from lmppm_cli.core.noise import camera_noise, jpeg_round_trip
from lmppm_cli.core.restoration import Restored, single_pass
from lmppm_cli.experiments.bench.intervals import t_interval, verdict
from lmppm_cli.files.atomic import write_text
from lmppm_cli.files.data import photo_tensor, shipped_photo
from lmppm_cli.files.devices import pick_device
from lmppm_cli.files.domain import estimate_noise
from lmppm_cli.files.tiling import Restorer
from lmppm_cli.files.weights import load_model, resolve_model
from lmppm_cli.methods import restorer
from lmppm_cli.methods.classical import denoise

BEYOND_NOISE = {"missing-pixels": 0.04, "scribbles": 6, "downsample": 0.5, "sharpen": 8}  # Table 6, mild
DRAWS = 3
CAMERA = (0.004, 2e-4)  # (a, b) of the camera-like rows, Var = a x + b: std 0.047 at mid-gray, 0.024 at 0.1
CAMERA_JPEG = 90


def quantised(x: torch.Tensor) -> torch.Tensor:
    """What an 8-bit file holds of an image in [0, 1]."""
    return x.clamp(0.0, 1.0).mul(255.0).round().div(255.0)


def noisy_photo(clean: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return quantised(clean + sigma * torch.randn(clean.shape, generator=g))


def whole(net, fn):
    """A restorer of batches as `lmppm restore` runs it on one photo: (C, H, W) -> (C, H, W)."""
    restoring = Restorer.of(net, fn)
    return lambda x: restoring([x])[0].image


def default_row(device, jpeg: bool = False) -> dict:
    """What `lmppm restore photo.png` runs with no --model: the pick (service.DomainModels.choose) of
    the bundled models for each photo, then that model's default restorer (or BM3D where picked); with
    `jpeg`, each photo picked as if read from a JPEG file (`lmppm restore photo.jpg`)."""
    from lmppm_cli.service import DomainModels

    bundle = DomainModels.load(device)

    def run(x):
        choice = bundle.choose(x, jpeg=jpeg)
        net = bundle.nets.get(choice.name)
        return whole(net, restorer(net, choice.method))(x)

    return {"default (no --model)": run}


def learned_rows(model, dae) -> dict:
    """The learned restorers of the table, each (C, H, W) -> (C, H, W) as `lmppm restore` runs them."""
    rows = {
        "single pass G(F(x))": whole(
            model, lambda b, keep=False: Restored(single_pass(model, b), torch.zeros(len(b)), [])
        ),
        "LMPPM": whole(model, restorer(model)),
        "LMPPM, D off (alpha 0, plain kernel step)": whole(
            model, restorer(model, options=FlowOverride(alpha=0.0, adaptive=False))
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


CAMERA_LEVELS = {"clean JPEG": 0.0, "daylight": 3e-4, "indoor": 2e-3, "night": 1e-2}  # shot noise a in raw
HELD_OUT_LEVEL = "indoor"  # the level of the held-out row (a demosaicing method never trained on)


def camera_made(shot_noise: float, demosaic: str | None = None):
    """A camera's JPEG (core/camera.py) as score_photo takes it: (clean, seed) -> (the file, the same camera
    without noise and JPEG, which the row is scored against). Every camera parameter but the noise is drawn
    per seed over the training ranges, always stored as a JPEG; read noise on Brooks et al.'s line;
    `demosaic` fixes the method (the held-out row)."""
    from lmppm_cli.core.camera import CameraRanges, draw_shot, photograph, read_noise

    ranges = dataclasses.replace(CameraRanges(), clean=0.0, lossless=0.0)

    def make(clean: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        shot = draw_shot(ranges, g)
        read = read_noise(shot_noise, 0.0) if shot_noise else 0.0
        shot = dataclasses.replace(shot, shot=shot_noise, read=read, demosaic=demosaic or shot.demosaic)
        return photograph(clean, shot, g)

    return make


def camera_rows() -> dict:
    """The camera rows: a clean camera JPEG, daylight, indoor and night noise, and the indoor level through
    the demosaicing method training never draws (camera.HELD_OUT_DEMOSAIC)."""
    from lmppm_cli.core.camera import HELD_OUT_DEMOSAIC

    rows = {f"camera, {name}": (None, camera_made(a)) for name, a in CAMERA_LEVELS.items()}
    held = f"camera, {HELD_OUT_LEVEL}, {HELD_OUT_DEMOSAIC} (held out)"
    return rows | {held: (None, camera_made(CAMERA_LEVELS[HELD_OUT_LEVEL], HELD_OUT_DEMOSAIC))}


def degraded_by(kind: str, value: float):
    """Another degradation of the paper (Table 6's mild strengths on a photo), seeded, 8-bit."""
    return lambda clean, seed: quantised(degrade(clean, kind, value, torch.Generator().manual_seed(seed)))


def score_photo(
    clean: torch.Tensor,
    methods: dict,
    degradations: dict,
    seed: int,
    draws: int,
    on_stage=lambda s: None,
    known: dict | None = None,
) -> list[dict]:
    """Every (degradation, method) over the same draws: per-draw PSNR, SSIM, seconds per megapixel and
    the estimated noise of each degraded input. `degradations`: label -> (sigma or None, (clean, seed) -> image).
    `known`: cells already measured on the same photo, seed and draws, by (degradation, method); kept as they are.
    A degradation may return (image, reference): the row is then scored against that reference (a
    camera's own noise-free output) instead of the clean photo."""
    cells, known = [], known or {}
    megapixels = clean.shape[-2] * clean.shape[-1] / 1e6
    for label, (sigma, make) in degradations.items():
        made = [make(clean, seed + k) for k in range(draws)]
        pairs = [m if isinstance(m, tuple) else (m, clean) for m in made]
        noise = [estimate_noise(x) for x, _ in pairs]
        for name, fn in methods.items():
            if (label, name) in known:
                cells.append(known[label, name])
                continue
            on_stage(f"{label}: {name}")
            scores = []
            for x, reference in pairs:
                start = time.perf_counter()
                out = quantised(fn(x).float().cpu())
                seconds = time.perf_counter() - start
                scores.append(
                    (
                        float(psnr(out[None], reference[None])[0]),
                        float(ssim(out[None], reference[None])[0]),
                        seconds / megapixels,
                        chroma_error(out, reference),
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
                    "chroma_rmse": [s[3] for s in scores],
                    "estimated_noise": noise,
                }
            )
    return cells


def chroma_error(out: torch.Tensor, clean: torch.Tensor) -> float:
    """RMS of the colour left wrong: the error's Cb and Cr (ITU-R BT.601) over the pixels, on a 0-1
    scale (0 for a gray image). What a red/green speckle shows up in, where PSNR mixes it with the rest."""
    if out.shape[0] != 3:
        return 0.0
    e = out - clean  # (3, H, W)
    cb = -0.168736 * e[0] - 0.331264 * e[1] + 0.5 * e[2]
    cr = 0.5 * e[0] - 0.418688 * e[1] - 0.081312 * e[2]
    return float(torch.stack([cb, cr]).pow(2).mean().sqrt())


def noise_levels(levels) -> dict:
    return {f"noise {s:g}": (s, noise_at(s)) for s in levels}


PHOTO_LEVELS = (0.02, 0.05, 0.1, 0.2, 0.3)
CAMERA_ROWS = {  # a camera's noise, as it leaves the sensor and as a JPEG
    "camera": (None, camera_like(*CAMERA)),
    f"camera, JPEG {CAMERA_JPEG}": (None, camera_like(*CAMERA, jpeg=CAMERA_JPEG)),
}
PHOTO_DEGRADATIONS = {**noise_levels(PHOTO_LEVELS), **CAMERA_ROWS}  # what a photo brings


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
    models: dict | None = None,
    classical: bool = True,
    draws: int = DRAWS,
    device: str = "auto",
) -> dict:
    """The `photos` suite on the whole test photo; writes results.json and results.md into out_dir.
    `models`: the lmppm and dae models by kind (default: photos and photos-dae)."""
    dev, models = pick_device(device), models or {}
    net = load_model(resolve_model(models.get("lmppm") or "photos"), dev)
    dae_net = load_model(resolve_model(models.get("dae") or "photos-dae"), dev)
    clean = photo_tensor(shipped_photo("coffee"), limit=None)
    methods = {"input": lambda x: x, **default_row(dev), **learned_rows(net, dae_net), **classical_rows(classical)}
    degradations = {
        **noise_levels((0.0, *PHOTO_LEVELS)),
        **CAMERA_ROWS,
        **camera_rows(),
        **{f"{k} {v:g}": (None, degraded_by(k, v)) for k, v in BEYOND_NOISE.items()},
    }
    n = limit or draws
    cells = compare(score_photo(clean, methods, degradations, seed, n, on_stage))
    size = f"{clean.shape[-1]}x{clean.shape[-2]}"
    header = f"# lmppm bench: photos\n\nThe whole test photo (scikit-image's coffee, {size}), never trained on or used to choose anything; {n} draws (seeds {seed}..{seed + n - 1}), 8-bit in and out.\n"
    return _write(Path(out_dir), "photos", cells, header, seed)


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
