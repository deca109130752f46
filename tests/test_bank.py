import math

import pytest
import torch

from lmppm_cli.core.bank import default_sigma_ker, kernel_mean
from lmppm_cli.core.neighbours import faiss_available


def test_kernel_mean_of_bank_point_with_small_sigma_is_that_point(rng):
    bank = torch.randn(50, 6, generator=rng)
    z_bar = kernel_mean(bank[:10], bank, sigma_ker=1e-3)
    torch.testing.assert_close(z_bar, bank[:10])


def test_kernel_mean_with_huge_sigma_is_bank_mean(rng):
    bank = torch.randn(50, 6, generator=rng)
    z = torch.randn(4, 6, generator=rng)
    z_bar = kernel_mean(z, bank, sigma_ker=1e4)
    torch.testing.assert_close(z_bar, bank.mean(0).expand(4, 6), atol=1e-4, rtol=0)


def test_kernel_mean_matches_softmax_formula_and_is_chunk_independent(rng):
    bank = torch.randn(37, 5, generator=rng, dtype=torch.float64)
    z = torch.randn(6, 5, generator=rng, dtype=torch.float64)
    sigma = 0.7
    w = torch.softmax(-torch.cdist(z, bank).pow(2) / (2 * sigma**2), dim=1)
    expected = w @ bank
    torch.testing.assert_close(kernel_mean(z, bank, sigma), expected)
    torch.testing.assert_close(kernel_mean(z, bank, sigma, chunk=4), expected)


def test_kernel_mean_stays_finite_far_from_the_bank(rng):
    """All weights underflow in a naive softmax; the streaming log-sum-exp keeps the nearest point."""
    bank = torch.randn(30, 4, generator=rng)
    far = bank[3:4] + 1e3
    z_bar = kernel_mean(far, bank, sigma_ker=0.01, chunk=7)
    assert torch.isfinite(z_bar).all()
    nearest = torch.cdist(far, bank).argmin()
    torch.testing.assert_close(z_bar[0], bank[nearest])


def test_default_sigma_ker_scales_with_the_bank(rng):
    bank = torch.randn(200, 8, generator=rng)
    s1, s3 = default_sigma_ker(bank), default_sigma_ker(3.0 * bank)
    assert s1 > 0
    assert math.isclose(s3, 3.0 * s1, rel_tol=1e-4)


def test_clamped_underflow_leaves_the_kernel_mean_unchanged(rng):
    """Most shifted logits fall far below exp's float32 range here; clamping them before exp (for speed)
    gives the float64 softmax's answer to float32 precision."""
    bank = torch.randn(2000, 18, generator=rng)
    z = bank[:64] + 0.05 * torch.randn(64, 18, generator=rng)
    sigma = 0.3
    logits = -torch.cdist(z.double(), bank.double()).pow(2) / (2 * sigma**2)
    assert (logits - logits.max(1, keepdim=True).values < -87).float().mean() > 0.9
    expected = (torch.softmax(logits, dim=1) @ bank.double()).float()
    torch.testing.assert_close(kernel_mean(z, bank, sigma), expected, atol=1e-5, rtol=1e-5)


def test_top_k_kernel_mean_is_exact_at_k_equal_n_and_close_for_small_k(rng):
    bank = torch.randn(500, 6, generator=rng)
    z = torch.randn(8, 6, generator=rng)
    exact = kernel_mean(z, bank, 0.4)
    torch.testing.assert_close(kernel_mean(z, bank, 0.4, top_k=500, chunk=64), exact)
    torch.testing.assert_close(kernel_mean(z, bank, 0.4, top_k=499, chunk=64), exact, atol=1e-5, rtol=0)
    rough = kernel_mean(z, bank, 0.4, top_k=32, chunk=64)
    assert (rough - exact).norm(dim=1).max() < 0.05 * exact.norm(dim=1).min()


def test_kernel_mean_keeps_float32_under_autocast_and_for_half_inputs(rng):
    bank = torch.randn(300, 6, generator=rng)
    z = torch.randn(5, 6, generator=rng)
    exact = kernel_mean(z, bank, 0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = kernel_mean(z, bank, 0.5)
    assert auto.dtype == torch.float32
    torch.testing.assert_close(auto, exact)
    half = kernel_mean(z.bfloat16(), bank, 0.5)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), kernel_mean(z.bfloat16().float(), bank, 0.5), atol=1e-2, rtol=1e-2)


def test_the_default_kernel_width_from_a_sample_of_a_large_bank_is_near_the_full_one(rng):
    bank = torch.randn(3000, 6, generator=rng)
    full, sampled = default_sigma_ker(bank, chunk=500), default_sigma_ker(bank, chunk=500, sample=400)
    assert full == default_sigma_ker(bank, sample=3000) and abs(sampled - full) / full < 0.1


@pytest.mark.skipif(not faiss_available(), reason="FAISS is optional (pip install 'lmppm[scale]')")
def test_top_k_through_the_bank_index_matches_the_exact_top_k_and_is_rebuilt_when_the_bank_changes(rng, monkeypatch):
    """A bank past INDEX_MIN_BANK gets a FAISS index, built once and rebuilt when S changes; the top-k
    kernel mean through it matches the exact-scan top-k, and both approach Eq. 21 as k grows."""
    from conftest import tiny_config

    from lmppm_cli.core.models import LMPPM
    from lmppm_cli.core.models import lmppm as lmppm_module

    monkeypatch.setattr(lmppm_module, "INDEX_MIN_BANK", 500)
    model = LMPPM(tiny_config(latent_dim=8))
    model.bank = torch.randn(4000, 8, generator=rng)
    index = model.bank_index()
    assert index is not None and model.bank_index() is index
    z = model.bank[:64] + 0.3 * torch.randn(64, 8, generator=rng)
    sigma = default_sigma_ker(model.bank)
    via_index = kernel_mean(z, model.bank, sigma, top_k=32, index=index)
    torch.testing.assert_close(via_index, kernel_mean(z, model.bank, sigma, top_k=32), atol=1e-4, rtol=1e-3)
    exact = kernel_mean(z, model.bank, sigma)
    error = lambda k: (kernel_mean(z, model.bank, sigma, top_k=k, index=index) - exact).norm(dim=1).mean()  # noqa: E731
    assert error(64) < error(4)
    model.bank.mul_(2.0)  # S changed in place: a new index
    assert model.bank_index() is not index
    model.bank = model.bank[:400]
    assert model.bank_index() is None  # small banks scan exactly
