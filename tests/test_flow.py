import pytest
import torch
from torch import nn

from lmppm_cli.core.bank import kernel_mean
from lmppm_cli.core.config import DistanceConfig, FlowConfig
from lmppm_cli.core.flow import flow_step, latent_shift, normalized_gradient, run_flow, step_schedule
from lmppm_cli.core.models import DistanceMLP


def _flow(**kw) -> FlowConfig:
    """The flow's settings, whole, as run_flow and flow_step take them (no early stop unless asked)."""
    return FlowConfig(**{"tol": 0.0, **kw})


class Constant(nn.Module):
    def forward(self, z):
        return torch.zeros(z.shape[0]) + 0.0 * z.sum(1)


class Euclid(nn.Module):
    """The exact distance to the origin: D(z) = ||z||, whose gradient is z / ||z||."""

    def forward(self, z):
        return z.norm(dim=1)


@pytest.fixture(scope="module")
def fitted():
    """A distance MLP fitted to the true distance to a small bank in 2-D (a few hundred steps)."""
    g = torch.Generator().manual_seed(0)
    bank = torch.randn(12, 2, generator=g)
    d = DistanceMLP(2, DistanceConfig(hidden=(64, 32), dropout=0.0))
    opt = torch.optim.Adam(d.parameters(), lr=3e-3)
    for _ in range(600):
        z = torch.randn(256, 2, generator=g) * 2.0
        target = torch.cdist(z, bank).min(1).values
        loss = (d(z) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return d.eval(), bank


def test_normalized_gradient_is_unit_length(rng):
    z = torch.randn(5, 3, generator=rng)
    d, g = normalized_gradient(Euclid(), z)
    torch.testing.assert_close(g.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(g, z / z.norm(dim=1, keepdim=True))
    torch.testing.assert_close(d, z.norm(dim=1))


def test_normalized_gradient_is_guarded_at_zero(rng):
    _, g = normalized_gradient(Constant(), torch.randn(4, 3, generator=rng))
    assert torch.isfinite(g).all()
    assert (g == 0).all()


def test_latent_shift_of_exact_distance_lands_on_the_set(rng):
    """With D the true distance to {0}, z - D grad_hat D is the nearest point of the set: the origin."""
    z = torch.randn(6, 3, generator=rng)
    torch.testing.assert_close(latent_shift(Euclid(), z), torch.zeros(6, 3), atol=1e-6, rtol=0)


def test_latent_shift_keeps_a_graph_for_training(rng):
    d = DistanceMLP(3, DistanceConfig(hidden=(8,), dropout=0.0))
    z = torch.randn(4, 3, generator=rng, requires_grad=True)
    latent_shift(d, z, create_graph=True).sum().backward()
    assert all(p.grad is not None for p in d.parameters())


def test_flow_step_is_alg4_update(rng, fitted):
    d, bank = fitted
    z = torch.randn(5, 2, generator=rng)
    dz, g = normalized_gradient(d, z)
    expected = 0.8 * z + 0.2 * kernel_mean(z, bank, 0.5) - 0.1 * dz.unsqueeze(1) * g
    torch.testing.assert_close(flow_step(z, d, bank, _flow(alpha=0.1, beta=0.2, sigma_ker=0.5)), expected.detach())


def test_alpha_zero_is_the_kernel_only_ablation(rng, fitted):
    d, bank = fitted
    z = torch.randn(5, 2, generator=rng)
    expected = 0.6 * z + 0.4 * kernel_mean(z, bank, 0.3)
    torch.testing.assert_close(flow_step(z, d, bank, _flow(alpha=0.0, beta=0.4, sigma_ker=0.3)), expected)


def test_flow_lowers_distance_on_average(rng, fitted):
    d, bank = fitted
    z = torch.randn(200, 2, generator=rng) * 2.0
    before = torch.cdist(z, bank).min(1).values
    out = run_flow(z, d, bank, _flow(alpha=0.3, beta=0.0, sigma_ker=0.5, steps=5)).z
    after = torch.cdist(out, bank).min(1).values
    assert after.mean() < 0.6 * before.mean()
    with torch.no_grad():
        assert d(out).mean() < d(z).mean()


def test_kernel_step_also_approaches_the_bank(rng, fitted):
    d, bank = fitted
    z = torch.randn(200, 2, generator=rng) * 2.0
    out = run_flow(z, d, bank, _flow(alpha=0.0, beta=0.5, sigma_ker=0.3, steps=10)).z
    assert torch.cdist(out, bank).min(1).values.mean() < 0.5 * torch.cdist(z, bank).min(1).values.mean()


def test_tolerance_stops_each_sample_independently(rng, fitted):
    d, bank = fitted
    z = torch.cat([bank[:2], torch.randn(3, 2, generator=rng) * 3.0])  # two start on the bank
    res = run_flow(z, d, bank, _flow(alpha=0.0, beta=0.2, sigma_ker=0.05, steps=20, tol=1e-3))
    assert res.steps_taken[:2].tolist() == [1, 1]
    assert (res.steps_taken[2:] > 1).all()
    alone = run_flow(z[2:3], d, bank, _flow(alpha=0.0, beta=0.2, sigma_ker=0.05, steps=20, tol=1e-3))
    torch.testing.assert_close(alone.z, res.z[2:3])


def test_trajectory_has_one_entry_per_step(rng, fitted):
    d, bank = fitted
    res = run_flow(
        torch.randn(3, 2, generator=rng),
        d,
        bank,
        _flow(alpha=0.1, beta=0.1, sigma_ker=0.5, steps=4),
        keep_trajectory=True,
    )
    assert len(res.trajectory) == 5
    torch.testing.assert_close(res.trajectory[-1], res.z)


def test_step_schedules():
    constant = _flow(alpha=0.2, beta=0.1, steps=3)
    assert step_schedule(constant) == [constant] * 3
    grow = step_schedule(_flow(alpha=0.3, beta=0.6, steps=3, schedule="growing"))
    assert [round(s.alpha, 6) for s in grow] == [0.1, 0.2, 0.3]
    assert grow[-1].beta == pytest.approx(0.6) and grow[0].sigma_ker == constant.sigma_ker
    with pytest.raises(ValueError):
        step_schedule(_flow(steps=2, schedule="wobbly"))


class DistanceToBank(nn.Module):
    """The exact distance to a finite bank: 0 on every bank point, as an ideal D_S would be."""

    def __init__(self, bank):
        super().__init__()
        self.bank = bank

    def forward(self, z):
        return (z.unsqueeze(1) - self.bank).norm(dim=2).min(1).values  # (B,), exactly 0 on the bank


def test_adaptive_flow_leaves_bank_points_where_they_are(rng):
    bank = torch.randn(30, 3, generator=rng)
    d = DistanceToBank(bank)
    kw = dict(alpha=0.3, beta=0.5, sigma_ker=2.0, steps=5)  # a wide kernel: z_bar of a bank point is far from it
    moved = run_flow(bank.clone(), d, bank, _flow(**kw)).z
    kept = run_flow(bank.clone(), d, bank, _flow(adaptive=True, **kw)).z
    assert (moved - bank).norm(dim=1).mean() > 0.3
    torch.testing.assert_close(kept, bank, atol=1e-5, rtol=0)


def test_adaptive_kernel_step_is_the_papers_far_from_the_data_and_capped_at_d_near_it(rng, fitted):
    d, bank = fitted
    pull = lambda z: kernel_mean(z, bank, 0.5) - z  # noqa: E731
    far = torch.randn(50, 2, generator=rng) * 6.0
    far = far[d(far).detach() >= pull(far).norm(dim=1)]  # where D exceeds the distance to z_bar
    assert len(far) > 5
    torch.testing.assert_close(
        flow_step(far, d, bank, _flow(alpha=0.1, beta=0.3, sigma_ker=0.5, adaptive=True)),
        flow_step(far, d, bank, _flow(alpha=0.1, beta=0.3, sigma_ker=0.5)),
    )
    near = bank + 0.05 * torch.randn(bank.shape, generator=rng)
    step = flow_step(near, d, bank, _flow(alpha=0.0, beta=0.3, sigma_ker=0.5, adaptive=True)) - near
    assert (step.norm(dim=1) <= 0.3 * d(near).detach().clamp_min(0) + 1e-6).all()


def test_the_d_off_ablations_never_evaluate_d(tiny_bundle):
    """Ablation_lmppm and re-encoding only (noise.ablation_rows) run with D made to fail, so D does no
    work in them, even for a model whose calibrated flow uses the adaptive step; the full flow needs D."""
    import dataclasses

    from lmppm_cli.experiments.bench.noise import ABLATION_LMPPM, ablation_rows
    from lmppm_cli.files.weights import load_model
    from lmppm_cli.methods import restorer

    model = load_model(tiny_bundle["lmppm"])
    model.config = dataclasses.replace(
        model.config, flow=dataclasses.replace(model.config.flow, alpha=0.1, beta=0.2, adaptive=True)
    )
    ae = model.config.autoencoder
    x = torch.rand(4, ae.channels, ae.height, ae.width, generator=torch.Generator().manual_seed(0))

    def broken(*_):
        raise AssertionError("D was evaluated")

    model.distance.forward = broken
    rows = ablation_rows(model)
    for name in (ABLATION_LMPPM, next(k for k in rows if k.startswith("re-encoding only"))):
        out = rows[name](x)
        assert out.shape == x.shape and torch.isfinite(out).all()
    with pytest.raises(AssertionError, match="D was evaluated"):
        restorer(model)(x)
