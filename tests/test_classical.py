"""The classical blind denoisers (BM3D, NL-means, wavelet): on tiny images of odd sizes, through the
core and through `lmppm restore --method` with no model."""

import numpy as np
import pytest
import torch
from conftest import write_png
from PIL import Image
from typer.testing import CliRunner

from lmppm_cli.cli import app
from lmppm_cli.core.errors import LmppmError
from lmppm_cli.methods import default_model, restorer
from lmppm_cli.methods.classical import CLASSICAL, denoise, estimate_noise


def smooth_image(channels: int, height: int = 23, width: int = 17) -> torch.Tensor:
    """A smooth (1, C, H, W) test image: gradients and a soft blob, a different one per channel."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    planes = [
        0.2
        + 0.5 * (c * 0.3 + yy * (1 - c * 0.2) + xx * 0.3) / 2
        + 0.2 * torch.exp(-((yy - 0.5) ** 2 + (xx - 0.4) ** 2) * 8)
        for c in range(channels)
    ]
    return torch.stack(planes).unsqueeze(0).clamp(0, 1)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("method", CLASSICAL)
def test_each_classical_method_lowers_the_error_and_keeps_the_shape(method, channels, rng):
    clean = smooth_image(channels)
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=rng)).clamp(0, 1)
    out = denoise(noisy, method)
    assert out.shape == noisy.shape and out.dtype == noisy.dtype
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert (out - clean).pow(2).mean() < 0.7 * (noisy - clean).pow(2).mean(), method


def test_two_channel_images_are_denoised_plane_by_plane(rng):
    clean = smooth_image(2, 19, 21)
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=rng)).clamp(0, 1)
    out = denoise(noisy, "wavelet")
    assert out.shape == (1, 2, 19, 21)
    for c in range(2):
        torch.testing.assert_close(out[:, c : c + 1], denoise(noisy[:, c : c + 1], "wavelet"))


@pytest.mark.parametrize("method", CLASSICAL)
def test_a_gray_photo_stored_as_rgb_is_denoised_as_gray_with_finite_pixels(method, rng):
    """bm3d_rgb divides by the range of the chroma planes, which a gray photo in RGB does not have (all
    NaN before): such a photo is denoised as one plane and repeated, clean or noisy."""
    gray = smooth_image(1, 40, 36)
    noisy = (gray + 0.05 * torch.randn(gray.shape, generator=rng)).clamp(0, 1)
    for image in (gray, noisy):
        out = denoise(image.repeat(1, 3, 1, 1), method)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out, denoise(image, method).repeat(1, 3, 1, 1))


def test_the_noise_level_is_estimated_from_the_image(rng):
    flat = torch.full((64, 64, 1), 0.5)
    for sigma in (0.05, 0.1):
        noisy = (flat + sigma * torch.randn(flat.shape, generator=rng)).numpy()
        assert estimate_noise(noisy) == pytest.approx(sigma, rel=0.2)


def test_classical_methods_need_no_model_and_unknown_ones_are_refused():
    assert all(default_model(m) is None for m in CLASSICAL)
    fn = restorer(None, "wavelet")
    x = smooth_image(1)
    assert fn(x).images.shape == x.shape and fn(x).steps_taken.tolist() == [0]
    with pytest.raises(LmppmError, match="unknown classical method"):
        denoise(x, "median")


def test_cli_restores_files_with_a_classical_method_at_their_own_size_and_mode(tmp_path, rng):
    noisy = (smooth_image(3, 31, 45)[0] + 0.1 * torch.randn(3, 31, 45, generator=rng)).clamp(0, 1)
    write_png(tmp_path / "in" / "rgb.png", (noisy.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    write_png(tmp_path / "in" / "gray.png", (noisy[0].numpy() * 255).round().astype(np.uint8))
    res = CliRunner().invoke(app, ["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--method", "nlmeans"])
    assert res.exit_code == 0, res.output
    rgb, gray = Image.open(tmp_path / "out" / "rgb.png"), Image.open(tmp_path / "out" / "gray.png")
    assert (rgb.size, rgb.mode, gray.size, gray.mode) == ((45, 31), "RGB", (45, 31), "L")
    before = np.asarray(Image.open(tmp_path / "in" / "rgb.png"), np.float32)
    after = np.asarray(rgb, np.float32)
    clean = smooth_image(3, 31, 45)[0].permute(1, 2, 0).numpy() * 255
    assert np.abs(after - clean).mean() < np.abs(before - clean).mean()


def test_bm3d_on_a_large_image_reports_progress_tile_by_tile_and_matches_the_whole_image():
    """Larger than CLASSICAL_TILE: restored in blended tiles at the whole image's noise estimate, the
    progress moving with each tile, no more than 0.05 dB behind BM3D on the whole image (here it is 0.08 dB
    ahead; on chelsea at noise 0.1, 0.007 dB)."""
    from lmppm_cli.core.metrics import psnr
    from lmppm_cli.files.tiling import CLASSICAL_TILE, restore_images
    from lmppm_cli.methods import restorer
    from lmppm_cli.methods.classical import denoise

    g = torch.Generator().manual_seed(0)
    side = CLASSICAL_TILE + 40
    yy, xx = torch.meshgrid(torch.linspace(0, 6, side), torch.linspace(0, 6, side), indexing="ij")
    clean = (0.5 + 0.3 * torch.sin(yy) * torch.cos(xx)).unsqueeze(0)  # (1, H, W)
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    moves = []
    (tiled,) = restore_images(None, restorer(None, "bm3d"), [noisy], (0, 0), 1, on_pixels=moves.append)
    assert len(moves) >= 4 and abs(sum(moves) - side * side) < 1  # one move per tile, the whole image in all
    whole = denoise(noisy[None], "bm3d")[0]
    gap = float(psnr(tiled.image[None], clean[None])[0] - psnr(whole[None], clean[None])[0])
    assert gap > -0.05
