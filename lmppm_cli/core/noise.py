"""Noise, drawn in one place: Gaussian for training (Eq. 20's noisy samples), calibration and the noise
degradation of Table 6; and camera-like Poisson-Gaussian noise (not in the paper), whose variance grows
with the signal as a sensor's does, optionally stored as a JPEG as a camera stores it."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from PIL import Image

# Camera-like range of (a, b) in Var = a x + b on a [0, 1] scale, each drawn log-uniformly: shot-noise
# gains whose standard deviation at mid-gray is about 0.007-0.07 and read noise of 0.001-0.03.
CAMERA_A = (1e-4, 1e-2)
CAMERA_B = (1e-6, 1e-3)
# JPEG qualities a training sample is stored at (`jpeg` share), drawn uniformly: cameras' usual range.
JPEG_QUALITY = (75, 95)


Pair = tuple[torch.Tensor, torch.Tensor]  # (input, target) of a training batch
Ranks = tuple[int, int]  # (rank, size): x holds rows rank::size of a global batch (torchrun)


class TrainingNoise(Protocol):
    """One kind of training noise: `sample` takes a batch's (input, target) and returns it with its own
    share of the rows changed. Every kind draws the whole global batch's randomness and keeps its own
    rows, so N torchrun processes see exactly the noise of one."""

    @property
    def share(self) -> float: ...

    def sample(self, pair: Pair, generator: torch.Generator, ranks: Ranks = (0, 1)) -> Pair: ...


def mine(drawn: torch.Tensor, ranks: Ranks, device: torch.device | str = "cpu") -> torch.Tensor:
    """This rank's rows of a draw made for the whole global batch, on `device`."""
    rank, size = ranks
    return drawn[rank::size].to(device)


def _per_row(x: torch.Tensor) -> tuple[int, ...]:
    return (-1, *[1] * (x.ndim - 1))


@dataclass(frozen=True)
class GaussianNoise:
    """Eq. 20's noisy samples: input = target + N(0, sigma^2), clamped to [0, 1] (as the authors' code).
    With `high`, each sample draws its own level sigma + (high - sigma) u^power, u ~ U(0, 1) (blind to
    strength; power > 1 favours low noise and clean inputs; not in the paper). Every row (share 1)."""

    sigma: float
    high: float | None = None
    power: float = 1.0
    share: float = 1.0

    def sample(self, pair: Pair, generator: torch.Generator, ranks: Ranks = (0, 1)) -> Pair:
        x = pair[1]
        rows = len(x) * ranks[1]
        on = generator.device
        eps = mine(torch.randn((rows, *x.shape[1:]), generator=generator, device=on), ranks, x.device)
        level: float | torch.Tensor = self.sigma
        if self.high is not None:
            u = mine(torch.rand(rows, generator=generator, device=on), ranks, x.device)
            level = (self.sigma + (self.high - self.sigma) * u**self.power).view(_per_row(x))
        return (x + level * eps).clamp(0.0, 1.0), x


@dataclass(frozen=True)
class PoissonGaussianNoise:
    """`share` of the rows get camera-like noise instead (`camera_noise`, a and b drawn log-uniformly
    over `a` and `b`; not in the paper)."""

    share: float
    a: tuple[float, float] = CAMERA_A
    b: tuple[float, float] = CAMERA_B

    def sample(self, pair: Pair, generator: torch.Generator, ranks: Ranks = (0, 1)) -> Pair:
        x_noisy, x = pair
        rows = len(x) * ranks[1]
        pick = mine(torch.rand(rows, generator=generator, device=generator.device), ranks, x.device) < self.share
        a, b = (mine(_log_uniform(r, rows, generator), ranks, x.device) for r in (self.a, self.b))
        return torch.where(pick.view(_per_row(x)), camera_noise(x, a, b, generator), x_noisy), x


@dataclass(frozen=True)
class JpegStorage:
    """`share` of the rows' inputs stored as a JPEG of a quality drawn uniformly over `quality` and read
    back, as a camera stores its photos (not in the paper)."""

    share: float
    quality: tuple[int, int] = JPEG_QUALITY

    def sample(self, pair: Pair, generator: torch.Generator, ranks: Ranks = (0, 1)) -> Pair:
        x_noisy, x = pair
        rows = len(x) * ranks[1]
        on = generator.device
        pick = (mine(torch.rand(rows, generator=generator, device=on), ranks) < self.share).tolist()
        low, high = self.quality
        qualities = mine(torch.randint(low, high + 1, (rows,), generator=generator, device=on), ranks).tolist()
        stored = [
            jpeg_round_trip(row.float().cpu(), q).to(row) if p else row for row, p, q in zip(x_noisy, pick, qualities)
        ]
        return torch.stack(stored), x


def noisy(x: torch.Tensor, sigma: float, generator: torch.Generator, ranks: Ranks = (0, 1)) -> torch.Tensor:
    """x + eps, eps ~ N(0, sigma^2), clamped to [0, 1]: GaussianNoise at one level."""
    return GaussianNoise(sigma).sample((x, x), generator, ranks)[0]


def training_pair(
    x: torch.Tensor, noise: Sequence[TrainingNoise], generator: torch.Generator, ranks: Ranks = (0, 1)
) -> Pair:
    """(input, target) of a training batch of clean images x: each kind of `noise` in turn
    (TrainConfig.noise: Gaussian first, then its other kinds), starting from (x, x)."""
    pair = (x, x)
    for kind in noise:
        pair = kind.sample(pair, generator, ranks)
    return pair


def jpeg_round_trip(x: torch.Tensor, quality: int, subsampling: int = -1) -> torch.Tensor:
    """(C, H, W) in [0, 1], C 1 or 3 -> the same image after a JPEG of this quality and back (Pillow; colour
    with 4:2:0 chroma as cameras store it; `subsampling`: Pillow's 0 4:4:4, 1 4:2:2, 2 4:2:0, -1 its default), 8-bit."""
    from torchvision.transforms.functional import pil_to_tensor, to_pil_image  # here: torchvision is slow to load

    buffer = io.BytesIO()
    to_pil_image(x.mul(255).round().byte()).save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
    return pil_to_tensor(Image.open(buffer)).float().div(255.0)


def _log_uniform(bounds: tuple[float, float], n: int, generator: torch.Generator) -> torch.Tensor:
    low, high = math.log(bounds[0]), math.log(bounds[1])
    return (low + (high - low) * torch.rand(n, generator=generator, device=generator.device)).exp()


def camera_noise(x: torch.Tensor, a, b, generator: torch.Generator) -> torch.Tensor:
    """Poisson-Gaussian noise, a Poisson(x / a) + N(0, b), clamped to [0, 1]: mean x, variance a x + b
    (shot noise of gain a, read noise of variance b). `a`, `b`: numbers, or one per image (B,)."""
    shape = (-1, *[1] * (x.ndim - 1))
    a = torch.as_tensor(a, dtype=x.dtype, device=x.device).reshape(shape)
    b = torch.as_tensor(b, dtype=x.dtype, device=x.device).reshape(shape)
    on = generator.device
    counts = torch.poisson((x / a).to(on), generator=generator).to(x.device)
    read = torch.randn(x.shape, generator=generator, device=on).to(x.device)
    return (a * counts + b.sqrt() * read).clamp(0.0, 1.0)
