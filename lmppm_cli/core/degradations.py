"""Reproducible degradations of Appendix B.2 / Table 6, listed in one registry (`DEGRADATIONS`) that the
CLI choices, the bench and the tests all come from.

Every operator takes images (B, C, H, W) in [0, 1] of any size and channel count, a strength and a
torch.Generator, and returns a tensor of the same shape in [0, 1]. Where an operator draws per image,
each image gets its own seed from the generator, so a seed fixes the output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.core.noise import noisy

ELASTIC_ALPHA = 34.0  # Appendix B.2: torchvision ElasticTransform(alpha=34, sigma)
SHARPEN_SIGMA = 1.0  # blur of the unsharp mask I + s (I - I * G_sigma); the paper does not state it
DOMAINS = ("digits", "faces")


def gaussian_noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """x + N(0, sigma^2), clamped to [0, 1] (Table 6: 0.7 / 0.85 digits, 0.2 / 0.3 faces)."""
    return noisy(x, sigma, generator)


def elastic(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """torchvision's ElasticTransform(alpha=34, sigma), a fresh displacement field per image; lower
    sigma smooths the field less, so the warp is more local and stronger (Table 6: 2.3 mild, 1.8 severe)."""
    from torchvision.transforms import v2  # here: torchvision loads its models too (docs/speed.md)

    transform = v2.ElasticTransform(alpha=ELASTIC_ALPHA, sigma=sigma)
    out = []
    for img, seed in zip(x, _seeds(generator, len(x))):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out.append(transform(img.cpu()))
    return torch.stack(out).to(x.device).clamp(0.0, 1.0)


def downsample(x: torch.Tensor, factor: float, generator: torch.Generator) -> torch.Tensor:
    """Antialiased downsampling by `factor`, then bilinear upsampling back (Table 6: 0.5, 0.35)."""
    import torchvision.transforms.v2.functional as TF

    h, w = x.shape[-2:]
    small = TF.resize(x, [max(1, round(h * factor)), max(1, round(w * factor))], antialias=True)
    return TF.resize(small, [h, w], antialias=False).clamp(0.0, 1.0)


def missing_pixels(x: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Black square patches (side = a tenth of the shorter edge) at random places until they cover
    `fraction` of the image (Table 6: 0.04, 0.1)."""
    h, w = x.shape[-2:]
    side = max(1, round(min(h, w) / 10))
    masks = []
    for seed in _seeds(generator, len(x)):
        g = torch.Generator().manual_seed(seed)
        mask = torch.zeros(h, w, dtype=torch.bool)
        while mask.float().mean() < fraction:
            top = int(torch.randint(0, h - side + 1, (1,), generator=g))
            left = int(torch.randint(0, w - side + 1, (1,), generator=g))
            mask[top : top + side, left : left + side] = True
        masks.append(mask)
    keep = ~torch.stack(masks).unsqueeze(1).to(x.device)  # (B, 1, H, W)
    return x * keep


def scribbles(x: torch.Tensor, count: float, generator: torch.Generator) -> torch.Tensor:
    """`count` random strokes (3-5 point curves, width a twentieth of the shorter edge), each in a
    random colour (a random gray level for one channel), drawn with PIL (Table 6: 6, 22)."""
    b, c, h, w = x.shape
    width = max(1, round(min(h, w) / 20))
    out = x.clone()
    for i, seed in enumerate(_seeds(generator, b)):
        rng = np.random.default_rng(seed)
        for _ in range(int(round(count))):
            canvas = Image.new("L", (w, h), 0)
            points = [(float(px), float(py)) for px, py in rng.random((rng.integers(3, 6), 2)) * (w - 1, h - 1)]
            ImageDraw.Draw(canvas).line(points, fill=255, width=width, joint="curve")
            stroke = torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0).to(x.device)  # (H, W)
            colour = torch.from_numpy(rng.random(c).astype(np.float32)).to(x.device).view(c, 1, 1)
            out[i] = out[i] * (1 - stroke) + colour * stroke
    return out


def sharpen(x: torch.Tensor, amount: float, generator: torch.Generator) -> torch.Tensor:
    """Over-sharpening I + s (I - I * G_sigma), sigma = 1 px, clamped (Table 6: s = 8, 18)."""
    import torchvision.transforms.v2.functional as TF

    blurred = TF.gaussian_blur(x, [5, 5], [SHARPEN_SIGMA, SHARPEN_SIGMA])
    return (x + amount * (x - blurred)).clamp(0.0, 1.0)


def _seeds(generator: torch.Generator, n: int) -> list[int]:
    return torch.randint(0, 2**62, (n,), generator=generator, device=generator.device).tolist()


@dataclass(frozen=True)
class Kind:
    """One degradation: its operator, Table 6 presets per domain, valid strengths, smallest image."""

    apply: Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]
    presets: dict[str, tuple[float, float]]  # domain -> (mild, severe)
    bounds: tuple[float, float]
    meaning: str
    min_size: Callable[[float], int] = lambda strength: 1

    def severe_is_lower(self) -> bool:
        mild, severe = next(iter(self.presets.values()))
        return severe < mild


def _same(mild: float, severe: float) -> dict[str, tuple[float, float]]:
    return {domain: (mild, severe) for domain in DOMAINS}


DEGRADATIONS: dict[str, Kind] = {
    "noise": Kind(gaussian_noise, {"digits": (0.7, 0.85), "faces": (0.2, 0.3)}, (0.0, 2.0), "noise sigma"),
    "elastic": Kind(
        elastic, _same(2.3, 1.8), (0.5, 20.0), "elastic sigma (lower is more severe)", lambda s: int(8 * s + 1) // 2 + 2
    ),  # torchvision's blur kernel must fit
    "downsample": Kind(
        downsample,
        _same(0.5, 0.35),
        (0.01, 1.0),
        "downsampling factor (lower is more severe)",
        lambda f: int(np.ceil(1.0 / f)),
    ),
    "missing-pixels": Kind(
        missing_pixels, _same(0.04, 0.1), (0.0, 0.9), "fraction covered by black patches", lambda f: 4
    ),
    "scribbles": Kind(scribbles, _same(6, 22), (0.0, 500.0), "number of strokes", lambda n: 4),
    "sharpen": Kind(sharpen, _same(8, 18), (0.0, 100.0), "sharpening factor s", lambda s: 3),
}


def strength(kind: str, severity: str | float, domain: str = "digits") -> float:
    """`mild` / `severe` (Table 6 for the domain) or an explicit number, checked against the bounds."""
    spec = _kind(kind)
    if isinstance(severity, str) and severity in ("mild", "severe"):
        if domain not in spec.presets:
            raise LmppmError(f"unknown domain {domain!r}; use {' or '.join(DOMAINS)}.")
        return spec.presets[domain][0 if severity == "mild" else 1]
    try:
        value = float(severity)
    except (TypeError, ValueError):
        raise LmppmError(f"severity must be mild, severe or a number, not {severity!r}.") from None
    low, high = spec.bounds
    if not low <= value <= high:
        raise LmppmError(
            f"{kind} strength {value:g} is out of range: the {spec.meaning} must lie in [{low:g}, {high:g}]."
        )
    return value


def degrade(x: torch.Tensor, kind: str, value: float, generator: torch.Generator) -> torch.Tensor:
    """Apply one degradation at an explicit strength to images (B, C, H, W) or (C, H, W)."""
    spec = _kind(kind)
    single = x.ndim == 3
    batch = x.unsqueeze(0) if single else x
    need = spec.min_size(value)
    if min(batch.shape[-2:]) < need:
        h, w = batch.shape[-2:]
        raise LmppmError(
            f"a {w}x{h} image is too small for {kind} at strength {value:g} (needs at least {need}x{need})."
        )
    out = spec.apply(batch, value, generator)
    return out[0] if single else out


def _kind(kind: str) -> Kind:
    if kind not in DEGRADATIONS:
        raise LmppmError(f"unknown degradation {kind!r}; choose from {', '.join(DEGRADATIONS)}.")
    return DEGRADATIONS[kind]
