"""The synthetic circle (Figs. 4-7): sampler, pixel-space MPPM (Eq. 16, 19, 15), and the bench suite."""

import json
import math

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from lmppm_cli.cli import app
from lmppm_cli.core.bank import kernel_mean
from lmppm_cli.experiments.bench.circle import METHODS, CircleBench, run_circle
from lmppm_cli.experiments.circle import (
    CircleConfig,
    deviation,
    embed,
    sample_angles,
    sample_points,
    truncated_normal_moments,
)
from lmppm_cli.experiments.fit import FitConfig, fit
from lmppm_cli.experiments.mppm import Mppm, MppmConfig, g_bar_samples, mppm_loss, restore

SIGMA = 0.1


@pytest.mark.parametrize("cfg", [CircleConfig(), CircleConfig(theta0=0.3, angle_std=0.5, span=math.pi / 2)])
def test_sampler_angles_follow_the_truncated_normal(cfg):
    theta = sample_angles(40_000, cfg, torch.Generator().manual_seed(0))
    mean, std = truncated_normal_moments(cfg)
    lo, hi = cfg.bounds
    assert lo <= theta.min() and theta.max() <= hi
    assert abs(theta.mean().item() - mean) < 0.02 and abs(theta.std().item() - std) < 0.02
    assert std < cfg.angle_std  # truncation narrows the distribution
    points = sample_points(10, cfg, torch.Generator().manual_seed(0))
    torch.testing.assert_close(deviation(points), torch.zeros(10), atol=1e-6, rtol=0)


def test_deviation_is_the_distance_to_the_circle():
    x = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.6, 0.8, 0.0]])
    torch.testing.assert_close(deviation(x), torch.tensor([1.0, 0.5, 0.3, 0.0]))


@pytest.fixture(scope="module")
def fitted():
    """A short fit of Eq. 16 (200 epochs, 2,200 points; a wider distance net than Table 7's, which sits
    on a constant plateau for hundreds of epochs before it learns — see the README)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    train, val = sample_points(2200, CircleConfig(), gen), sample_points(200, CircleConfig(), gen)
    net = Mppm(MppmConfig(distance_hidden=(32, 32)))

    def loss(x, g):
        return mppm_loss(net, x, x + SIGMA * torch.randn(x.shape, generator=g))[0]

    fit(net, loss, train, val, FitConfig(epochs=200, patience=1000), seed=0)
    return net, train


def _ring(radius: float) -> torch.Tensor:
    return embed(torch.linspace(-math.pi, math.pi, 64)) * torch.tensor([radius, radius, 1.0])


def test_eq16_terms_are_finite_and_all_five_train():
    net = Mppm()
    x = sample_points(32, CircleConfig(), torch.Generator().manual_seed(1))
    total, terms = mppm_loss(net, x, x + SIGMA * torch.randn(x.shape))
    assert set(terms) == {"distance", "recon", "boundary", "positivity", "shift"} and torch.isfinite(total)
    total.backward()
    assert all(p.grad is not None for p in net.parameters())


def test_distance_is_near_zero_on_the_circle_and_grows_outwards(fitted):
    net, _ = fitted
    d = [net.distance(_ring(r)).mean().item() for r in (1.0, 1.1, 1.2, 1.3)]
    assert d[0] < 0.1, d
    assert d[0] < d[1] < d[2] < d[3] and d[3] - d[0] > 0.15, d


def test_g_bar_reduces_to_the_decoder_as_sigma_ker_vanishes(fitted):
    net, train = fitted
    bank = net.encoder(train[:5]).detach()
    samples = g_bar_samples(net, bank, 0.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(samples, net.decoder(bank).detach().repeat_interleave(net.cfg.mc_samples, 0))
    one = g_bar_samples(net, bank[:1], 1e-9, torch.Generator().manual_seed(0))
    x = torch.randn(7, 3)
    torch.testing.assert_close(kernel_mean(x, one, SIGMA), net.decoder(bank[:1]).detach().expand(7, 3))


def test_flow_lowers_the_deviation_from_the_circle(fitted):
    net, train = fitted
    gen = torch.Generator().manual_seed(3)
    clean = sample_points(200, CircleConfig(), gen)
    noisy = clean + SIGMA * torch.randn(clean.shape, generator=gen)
    samples = g_bar_samples(net, net.encoder(train).detach(), 1e-3, gen)
    result = restore(net, noisy, samples, SIGMA)
    assert deviation(result.z).mean() < 0.5 * deviation(noisy).mean()
    assert (result.steps_taken <= net.cfg.max_steps).all() and len(result.trajectory) == 0


def test_suite_runs_end_to_end_on_a_reduced_size(tmp_path):
    bench = CircleBench(n_train=550, n_val=110, n_test=40, fit=FitConfig(epochs=3), trajectories=4)
    rows = run_circle(tmp_path, seed=0, bench=bench)
    assert list(rows) == list(METHODS)
    assert all(r["mse"] >= 0 and r["max"] >= r["max_sparse"] >= 0 for r in rows.values())
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["sparse_points"] > 0 and data["rows"]["MPPM"] == rows["MPPM"]
    md = (tmp_path / "results.md").read_text()
    assert all(f"| {m} |" in md for m in METHODS)
    for name in ("trajectories.png", "restored.png"):
        assert Image.open(tmp_path / name).size[0] > 600
    again = run_circle(tmp_path / "again", seed=0, bench=bench)
    assert again["MPPM"]["mse"] == rows["MPPM"]["mse"]  # seeded


def test_unknown_suite_lists_circle(tmp_path):
    res = CliRunner().invoke(app, ["bench", "--suite", "sphere", "-o", str(tmp_path / "x")])
    assert res.exit_code == 2 and "circle" in res.stderr and not (tmp_path / "x").exists()
