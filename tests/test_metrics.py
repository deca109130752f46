import math

import torch

from lmppm_cli.core.metrics import PSNR_CAP, domain_fid, frechet_distance, psnr, ssim


def test_psnr_and_ssim_agree_with_a_known_pair():
    clean = torch.zeros(1, 1, 16, 16)
    clean[..., 4:12, 4:12] = 1.0
    off = clean.clone()
    off[..., 0, 0] = 0.5  # one pixel off by 0.5: MSE = 0.25 / 256
    assert psnr(off, clean).item() == pytest_approx(10 * math.log10(256 / 0.25))
    assert ssim(clean, clean).item() == pytest_approx(1.0)
    assert 0.9 < ssim(off, clean).item() < 1.0
    assert psnr(clean, clean).item() == PSNR_CAP  # identical images: capped, not inf


def test_ssim_matches_scikit_image():
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 1, 64, 64, generator=g)
    b = (a + 0.1 * torch.randn(1, 1, 64, 64, generator=g)).clamp(0, 1)
    ref = structural_similarity(
        a[0, 0].numpy(), b[0, 0].numpy(), data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert abs(ssim(b, a).item() - ref) < 2e-3  # the two differ only in how they treat the border


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_noise():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(400, 12, generator=g) @ torch.randn(12, 12, generator=g)
    assert frechet_distance(feats, feats) < 1e-6
    d = [frechet_distance(feats, feats + s * torch.randn(400, 12, generator=g)) for s in (0.1, 0.5, 2.0)]
    assert 0 < d[0] < d[1] < d[2]
    labels = torch.arange(400) % 4
    overall, per_class = domain_fid(feats, feats, labels)
    assert overall < 1e-6 and per_class < 1e-6


def pytest_approx(x):
    import pytest

    return pytest.approx(x, rel=1e-4, abs=1e-5)
