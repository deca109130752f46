import math

import torch

from lmppm_cli.core.bank import default_sigma_ker, kernel_mean


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
