import numpy as np
import pytest
import torch
from conftest import blob_images
from PIL import Image
from typer.testing import CliRunner

from lmppm_cli.cli import app
from lmppm_cli.core.degradations import DEGRADATIONS, degrade, strength
from lmppm_cli.core.errors import LmppmError

KINDS = list(DEGRADATIONS)


def _digits(n=16, channels=1, size=(28, 28)):
    """Thick strokes on black, like digits, at any size and channel count."""
    x = torch.zeros(n, channels, *size)
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        r = int(torch.randint(3, size[0] - 8, (1,), generator=g))
        x[i, :, r : r + 4, 2:-2] = 1.0
        x[i, :, 2:-2, r : r + 3] = 0.8
    return x


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_for_a_seed(kind):
    x = _digits()
    a = degrade(x, kind, strength(kind, "severe"), torch.Generator().manual_seed(7))
    b = degrade(x, kind, strength(kind, "severe"), torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    if kind not in ("downsample", "sharpen"):  # these two draw nothing
        c = degrade(x, kind, strength(kind, "severe"), torch.Generator().manual_seed(8))
        assert not torch.equal(a, c)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("channels,size", [(1, (28, 28)), (3, (33, 47)), (4, (40, 21))])
def test_keeps_shape_and_range(kind, channels, size):
    x = _digits(4, channels, size)
    y = degrade(x, kind, strength(kind, "mild"), torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert 0.0 <= y.min() and y.max() <= 1.0
    single = degrade(x[0], kind, strength(kind, "mild"), torch.Generator().manual_seed(0))
    assert single.shape == x[0].shape


@pytest.mark.parametrize("kind", KINDS)
def test_more_severe_is_farther_from_the_input(kind):
    x = _digits(32)
    mild, severe = (strength(kind, s) for s in ("mild", "severe"))
    stronger = severe + (severe - mild)  # one more step in the same direction
    if not DEGRADATIONS[kind].bounds[0] <= stronger <= DEGRADATIONS[kind].bounds[1]:
        stronger = severe
    dist = [
        (degrade(x, kind, v, torch.Generator().manual_seed(3)) - x).abs().mean().item()
        for v in (mild, severe, stronger)
    ]
    assert dist[0] > 0
    assert dist[0] < dist[1] <= dist[2] + 1e-9, dist


def test_presets_follow_table_6():
    assert strength("noise", "mild") == 0.7 and strength("noise", "severe") == 0.85
    assert strength("noise", "mild", "faces") == 0.2 and strength("noise", "severe", "faces") == 0.3
    assert strength("elastic", "severe") == 1.8 and DEGRADATIONS["elastic"].severe_is_lower()
    assert strength("downsample", "severe") == 0.35 and strength("missing-pixels", "severe") == 0.1
    assert strength("scribbles", "mild") == 6 and strength("sharpen", "severe") == 18
    assert strength("noise", "0.33") == 0.33


def test_missing_pixels_covers_the_fraction_with_black():
    x = torch.ones(8, 3, 50, 60)
    y = degrade(x, "missing-pixels", 0.1, torch.Generator().manual_seed(0))
    covered = (y == 0).all(dim=1).float().mean(dim=(1, 2))
    assert ((covered >= 0.1) & (covered < 0.1 + 25 / 3000 + 1e-6)).all()  # within one 5x5 patch


def test_bad_strengths_and_sizes():
    with pytest.raises(LmppmError, match="unknown degradation"):
        strength("blur", "mild")
    with pytest.raises(LmppmError, match="out of range"):
        strength("noise", 5.0)
    with pytest.raises(LmppmError, match="mild, severe or a number"):
        strength("noise", "extreme")
    with pytest.raises(LmppmError, match="unknown domain"):
        strength("noise", "mild", "cats")
    with pytest.raises(LmppmError, match="too small"):
        degrade(torch.rand(1, 1, 2, 2), "downsample", 0.35, torch.Generator())
    with pytest.raises(LmppmError, match="too small"):
        degrade(torch.rand(1, 1, 8, 8), "elastic", 2.3, torch.Generator())


def test_degrade_cli_writes_same_mode_and_size_reproducibly(tmp_path):
    arr = (blob_images(1, size=30)[0, 0].numpy() * 255).astype(np.uint8)
    Image.fromarray(arr).convert("RGBA").save(tmp_path / "a.png")
    Image.fromarray(arr).save(tmp_path / "b.png")
    runner = CliRunner()
    for out in ("o1", "o2"):
        res = runner.invoke(
            app,
            [
                "degrade",
                str(tmp_path / "a.png"),
                str(tmp_path / "b.png"),
                "-o",
                str(tmp_path / out),
                "--kind",
                "scribbles",
                "--severity",
                "mild",
                "--seed",
                "4",
            ],
        )
        assert res.exit_code == 0, res.output
    for name in ("a.png", "b.png"):
        a, b = Image.open(tmp_path / "o1" / name), Image.open(tmp_path / "o2" / name)
        assert a.size == (30, 30) and a.mode == Image.open(tmp_path / name).mode
        assert np.array_equal(np.asarray(a), np.asarray(b))
    res = runner.invoke(
        app, ["degrade", str(tmp_path / "a.png"), "-o", str(tmp_path / "x.png"), "--kind", "noise", "--severity", "9"]
    )
    assert res.exit_code == 2 and "out of range" in res.stderr and not (tmp_path / "x.png").exists()
