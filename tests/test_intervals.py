"""The bench's 95% intervals on cases whose answer is known."""

import math

import pytest
import torch

from lmppm_cli.core.metrics import frechet_distance
from lmppm_cli.experiments.bench.intervals import Resamples, fid_interval, frechet, mean_interval, t_interval, verdict


def test_t_interval_and_verdict():
    iv = t_interval([1.0, 2.0, 3.0])
    assert iv.mean == 2.0 and iv.high - iv.mean == pytest.approx(iv.mean - iv.low) == pytest.approx(
        4.303 / math.sqrt(3)
    )
    assert iv.verdict == "tie"  # 2 +- 2.48 includes 0
    iv = t_interval([1.0, 1.1, 1.2])
    assert iv.verdict == "win" and verdict(-iv.high, -iv.low) == "loss"
    assert vars(t_interval([0.5])) == {"mean": 0.5, "low": 0.5, "high": 0.5}


def test_bootstrap_interval_of_a_mean_covers_it_at_about_the_textbook_width():
    """iid N(1, 1) scores on 3 draws x 300 images: the interval holds the true mean in nearly every
    trial, and its width is near 2 * 1.96 / sqrt(900) (resampling draws too makes it a little wider)."""
    g = torch.Generator().manual_seed(0)
    res = Resamples.of(3, 300, 1000, seed=1)
    hits, widths = 0, []
    for _ in range(60):
        iv = mean_interval(1.0 + torch.randn(3, 300, generator=g), res)
        hits += iv.low <= 1.0 <= iv.high
        widths.append(iv.high - iv.low)
    textbook = 2 * 1.96 / math.sqrt(900)
    assert hits >= 54  # >= 90% of 60 trials
    assert 0.8 * textbook < sum(widths) / len(widths) < 1.6 * textbook


def test_pairing_finds_a_small_shared_offset_that_unpaired_intervals_miss():
    """Two methods whose scores differ by 0.05 on every image, over images that vary by far more: the
    paired difference is a win with a tight interval; the two unpaired intervals overlap."""
    g = torch.Generator().manual_seed(0)
    base = 25 + 3 * torch.randn(1, 200, generator=g) + 0.01 * torch.randn(3, 200, generator=g)
    better = base + 0.05
    res = Resamples.of(3, 200, 1000, seed=0)
    diff = mean_interval(better - base, res)
    assert diff.verdict == "win" and diff.mean == pytest.approx(0.05, abs=1e-5) and diff.high - diff.low < 0.01
    a, b = mean_interval(better, res), mean_interval(base, res)
    assert a.low < b.high  # unpaired, they would be called a tie
    assert mean_interval(base - better, res).verdict == "loss"


def test_frechet_matches_torchmetrics_and_the_fid_interval_of_a_set_against_itself():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(400, 8, generator=g)
    fake = 0.5 + 1.3 * torch.randn(400, 8, generator=g)
    assert frechet(real, fake) == pytest.approx(frechet_distance(real, fake), rel=1e-6)
    assert frechet(real, fake) > 8 * 0.25  # the mean shift alone is 8 * 0.5^2
    res = Resamples.of(2, 400, 50, seed=0)
    draws = torch.stack([fake, fake])
    iv = fid_interval(real, draws, res)
    assert iv.low <= iv.mean <= iv.high and iv.low > 2.0
    small = fid_interval(
        real[:30], draws[:, :30], Resamples.of(2, 30, 50, seed=0)
    )  # resampled sets of 30 repeat images: biased upward
    assert small.low <= small.mean <= small.high  # the bias-corrected interval still holds its point
    same = fid_interval(real, draws, res, minus=draws)  # paired: a method against itself differs by exactly 0
    assert (same.mean, same.low, same.high) == (0.0, 0.0, 0.0)
    closer = fid_interval(real, torch.stack([real + 0.01 * fake] * 2), res, minus=draws)
    assert closer.verdict == "loss"  # this "row minus reference" is below 0: the closer set has the lower FID
