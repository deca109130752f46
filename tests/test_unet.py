"""The U-Net of Table 9 with latent-to-skip projections: shapes, the size rule, and that the flow's z
reaches the image through the skips."""

import pytest
import torch

from lmppm_cli.config import AutoencoderConfig
from lmppm_cli.errors import LmppmError
from lmppm_cli.models.autoencoder import build_autoencoder


def _unet(**kw) -> torch.nn.Module:
    base = dict(arch="unet", channels=3, height=32, width=32, latent_dim=16, widths=(8, 16))
    return build_autoencoder(AutoencoderConfig(**{**base, **kw})).eval()


@pytest.mark.parametrize("channels,height,width", [(3, 32, 32), (1, 30, 30), (4, 17, 23), (3, 4, 4)])
def test_shapes_for_sizes_and_channel_counts(channels, height, width):
    net = _unet(channels=channels, height=height, width=width)
    x = torch.rand(2, channels, height, width)
    z, skips = net.encode(x)
    assert z.shape == (2, 16) and [s.shape[-2:] for s in skips] == [(height, width), (height // 2, width // 2)]
    y = net.decode(z, skips)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    assert net.decode(z).shape == x.shape  # a latent alone (generation): skips count as zero


def test_the_papers_120px_configuration_is_valid():
    net = _unet(height=120, width=120, latent_dim=1024, widths=(32, 64, 128, 256))
    assert net.grid == (256, 7, 7) and net.to_latent[1].in_features == 12544  # Table 9: Linear(12544 -> 1024)
    z, skips = net.encode(torch.rand(1, 3, 120, 120))
    assert z.shape == (1, 1024) and [s.shape[-1] for s in skips] == [120, 60, 30, 15]
    assert net.decode(z, skips).shape == (1, 3, 120, 120)


def test_sizes_the_architecture_cannot_take_are_refused():
    with pytest.raises(LmppmError, match="too small for a 2-level U-Net"):
        _unet(height=3, width=32)
    with pytest.raises(LmppmError, match="takes 32x32 images"):
        _unet().encode(torch.rand(1, 3, 30, 32))


def test_projections_carry_z_into_the_skips_and_the_ablation_does_not():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    with_proj, without = _unet(), _unet(projections=False)
    for net, changes in ((with_proj, True), (without, False)):
        z, skips = net.encode(x)
        a, b = net.combined_skips(z, skips), net.combined_skips(z + 1.0, skips)
        assert any(not torch.allclose(s, t) for s, t in zip(a, b)) == changes
        assert not torch.allclose(net.decode(z, skips), net.decode(z + 1.0, skips))  # the bottleneck path always


def test_unet_model_trains_and_restores_from_the_cli(tmp_path):
    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    from lmppm_cli.cli import app
    from lmppm_cli.weights import load_model

    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    for i in range(24):
        Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    res = CliRunner().invoke(app, ["train", str(tmp_path / "imgs"), "-o", str(tmp_path / "run"), "--arch", "unet",
                                   "--widths", "4,8", "--latent-dim", "8", "--image-size", "16", "--epochs", "1",
                                   "--batch-size", "8", "--no-calibrate", "--device", "cpu"])  # fmt: skip
    assert res.exit_code == 0, res.output
    model = load_model(tmp_path / "run" / "model.safetensors")
    assert model.config.autoencoder.arch == "unet" and model.config.distance.hidden == (300, 100, 30)
    res = CliRunner().invoke(app, ["restore", str(tmp_path / "imgs" / "0.png"), "-o", str(tmp_path / "out.png"),
                                   "--model", str(tmp_path / "run" / "model.safetensors"), "--device", "cpu"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "out.png").size == (16, 16)


def test_skip_dropout_zeroes_skips_only_in_training():
    torch.manual_seed(0)
    net = _unet(skip_dropout=1.0)
    x = torch.rand(3, 3, 32, 32)
    z, skips = net.encode(x)
    assert not torch.allclose(net.decode(z, skips), net.decode(z))  # eval: skips used
    net.train()
    a, b = net.combined_skips(z, skips), net.combined_skips(z, ())
    assert all(torch.allclose(s, t) for s, t in zip(a, b))  # training with p = 1: as if no skips
