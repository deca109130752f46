"""Tiled restoration: coverage, the one-tile identity, blended seams, bad tile sizes, and CLI runs."""

import dataclasses

import numpy as np
import pytest
import torch
from conftest import tiny_config
from PIL import Image
from typer.testing import CliRunner

from lmppm_cli.cli import app
from lmppm_cli.core.config import AutoencoderConfig
from lmppm_cli.core.errors import LmppmError
from lmppm_cli.core.models import LMPPM
from lmppm_cli.files.tiling import ramp, restore_tiled, tile_starts
from lmppm_cli.files.weights import save_model


def test_tiles_cover_the_image_and_the_last_is_aligned_to_the_end():
    for size, tile, overlap in ((100, 32, 8), (32, 32, 8), (20, 32, 8), (65, 16, 0)):
        starts = tile_starts(size, min(tile, size), overlap)
        covered = torch.zeros(size, dtype=torch.bool)
        for s in starts:
            covered[s : s + min(tile, size)] = True
        assert covered.all() and starts[-1] + min(tile, size) == size
        assert all(b - a <= min(tile, size) - overlap for a, b in zip(starts, starts[1:]))
    w = ramp(32, 8)
    assert w.min() > 0 and w.max() == 1 and torch.equal(w, w.flip(0))


def test_one_tile_reproduces_the_untiled_restoration():
    image = torch.rand(3, 32, 32)
    fn = lambda b: (b * 0.5 + 0.2).sqrt()  # noqa: E731  any per-image map
    torch.testing.assert_close(restore_tiled(image, fn, (32, 32), 32, 8, 4), fn(image[None])[0])


def _offset_per_tile():
    """A 'restorer' that shifts every other tile by 0.2: the worst case for seams."""
    count = {"n": 0}

    def fn(batch):
        out = []
        for t in batch:
            out.append(t + 0.2 * (count["n"] % 2))
            count["n"] += 1
        return torch.stack(out)

    return fn


def test_seams_are_blended_on_a_smooth_image():
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 96), indexing="ij")
    smooth = (0.3 + 0.3 * (yy + xx) / 2).expand(1, 96, 96)
    smooth_step = max(smooth.diff(dim=1).abs().max(), smooth.diff(dim=2).abs().max())
    blended = restore_tiled(smooth, _offset_per_tile(), (32, 32), 32, 16, 3)
    hard = restore_tiled(smooth, _offset_per_tile(), (32, 32), 32, 0, 3)
    step = lambda x: max(x.diff(dim=1).abs().max(), x.diff(dim=2).abs().max())  # noqa: E731
    assert step(hard) > 0.15  # without overlap the tiles meet in a visible step
    assert step(blended) < smooth_step + 0.2 / 16  # with it, at most one ramp increment per pixel


def test_tiles_smaller_than_the_model_or_bad_overlaps_are_refused():
    with pytest.raises(LmppmError, match="smaller than the model's input"):
        restore_tiled(torch.rand(1, 40, 40), lambda b: b, (32, 32), 16, 4, 2)
    with pytest.raises(LmppmError, match="tile-overlap"):
        restore_tiled(torch.rand(1, 40, 40), lambda b: b, (32, 32), 32, 32, 2)


@pytest.fixture(scope="module")
def unet_file(tmp_path_factory):
    torch.manual_seed(0)
    cfg = tiny_config(channels=3, height=16, width=16)
    cfg = dataclasses.replace(
        cfg, autoencoder=AutoencoderConfig(arch="unet", channels=3, height=16, width=16, latent_dim=4, widths=(4, 8))
    )
    model = LMPPM(cfg, bank_size=0).eval()
    model.build_bank(torch.rand(10, 3, 16, 16))
    path = tmp_path_factory.mktemp("unet") / "unet.safetensors"
    save_model(model, path)
    return path


def test_cli_restores_a_large_photo_in_tiles_at_its_size_and_mode(unet_file, tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((23, 40, 3)) * 255).astype(np.uint8)).convert("RGBA").save(tmp_path / "big.png")
    runner = CliRunner()
    base = ["restore", str(tmp_path / "big.png"), "--model", str(unet_file), "--device", "cpu"]
    assert runner.invoke(app, [*base, "-o", str(tmp_path / "tiled.png")]).exit_code == 0
    assert runner.invoke(app, [*base, "-o", str(tmp_path / "whole.png"), "--tile", "0"]).exit_code == 0
    tiled, whole = Image.open(tmp_path / "tiled.png"), Image.open(tmp_path / "whole.png")
    assert tiled.size == whole.size == (40, 23) and tiled.mode == "RGBA"
    assert not np.array_equal(np.asarray(tiled), np.asarray(whole))
    res = runner.invoke(app, [*base, "-o", str(tmp_path / "bad.png"), "--tile", "8"])
    assert res.exit_code == 2 and "smaller than the model's input" in res.stderr and not (tmp_path / "bad.png").exists()
