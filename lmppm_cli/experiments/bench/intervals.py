"""95% intervals for the bench tables, and the rule that reads them.

Scores come on a grid of (draw, image): the same held-out images degraded with the same seeded draws
for every method, so a difference between two methods is taken cell by cell (paired). Intervals are
percentile bootstraps that resample the images and, independently, the draws, so they cover both the
choice of test images and the noise. FID, a statistic of a whole set, is recomputed on each resample.
Set statistics (FID) are bias-corrected: their resamples are shifted to centre on the point estimate.
With one photo there are no images to resample: `t_interval` over the draws is used there.
A difference is a win or a loss only when its interval excludes 0, a tie otherwise (`verdict`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torchmetrics.image.fid import _compute_fid

LEVEL = 0.95
RESAMPLES = 1000  # for means
FID_RESAMPLES = 200  # each one an eigen-decomposition per draw
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}  # Student t, 97.5%


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        return verdict(self.low, self.high)

    def text(self, digits: int, signed: bool = False) -> str:
        f = f"{{:{'+' if signed else ''}.{digits}f}}"
        return f"{f.format(self.mean)} [{f.format(self.low)}, {f.format(self.high)}]"


def verdict(low: float, high: float) -> str:
    """win / loss when the interval of a difference excludes 0; tie otherwise."""
    return "win" if low > 0 else "loss" if high < 0 else "tie"


def t_interval(diffs: list[float]) -> Interval:
    """The mean of a few paired differences and its 95% Student-t interval (0 width for one)."""
    n = len(diffs)
    mean = sum(diffs) / n
    if n < 2:
        return Interval(mean, mean, mean)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = T975.get(n - 1, 1.96) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half)


@dataclass(frozen=True)
class Resamples:
    """Bootstrap resamples of a (draws, images) grid: R rows of draw indices and of image indices."""

    draws: torch.Tensor  # (R, D)
    images: torch.Tensor  # (R, N)

    @classmethod
    def of(cls, draws: int, images: int, resamples: int, seed: int) -> Resamples:
        g = torch.Generator().manual_seed(seed)
        return cls(
            torch.randint(draws, (resamples, draws), generator=g),
            torch.randint(images, (resamples, images), generator=g),
        )

    def head(self, n: int) -> Resamples:
        return Resamples(self.draws[:n], self.images[:n])


def _percentiles(point: float, stats: torch.Tensor, centre: bool = False) -> Interval:
    """The percentile interval of bootstrap `stats`; `centre`: first shifted so that their mean is the
    point (a set statistic such as FID is biased upward on a resample, whose repeated images make the
    set less diverse; the shift removes that bias and keeps the width)."""
    if centre:
        stats = stats - stats.mean() + point
    tail = (1 - LEVEL) / 2
    low, high = torch.quantile(stats.double(), torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    return Interval(point, low, high)


def mean_interval(values: torch.Tensor, resamples: Resamples) -> Interval:
    """Mean of a (draws, images) grid of per-image scores (or of paired differences) and its interval."""
    values = values.double()
    per_draw = values[:, resamples.images].mean(-1)  # (D, R): each draw's mean over the resampled images
    stats = per_draw.gather(0, resamples.draws.T).mean(0)  # (R,): and over the resampled draws
    return _percentiles(values.mean().item(), stats)


def frechet(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Frechet distance between Gaussian fits of two feature sets (N, F), torchmetrics' formula."""
    real, fake = real.double(), fake.double()
    return max(0.0, _compute_fid(fake.mean(0), torch.cov(fake.T), real.mean(0), torch.cov(real.T)).item())


def fid_interval(
    real: torch.Tensor, fake: torch.Tensor, resamples: Resamples, minus: torch.Tensor | None = None, paired: bool = True
) -> Interval:
    """FID of restored features `fake` (draws, N, F) against the clean images' `real` (N, F), as the mean
    over draws, with its interval; with `minus` (another method's (draws, N, F)) the paired difference
    FID(fake) - FID(minus) on the same resampled images and draws. `paired=False` (generated samples,
    which belong to no clean image): `real` is the fixed reference set and only the samples are resampled."""

    def stat(draws, images) -> float:
        ref = real[images] if paired else real
        value = sum(frechet(ref, fake[d][images]) for d in draws.tolist()) / len(draws)
        if minus is not None:
            value -= sum(frechet(ref, minus[d][images]) for d in draws.tolist()) / len(draws)
        return value

    everything = torch.arange(fake.shape[1])
    point = stat(torch.arange(fake.shape[0]), everything)
    rs = resamples.head(FID_RESAMPLES)
    return _percentiles(point, torch.tensor([stat(d, i) for d, i in zip(rs.draws, rs.images)]), centre=True)
