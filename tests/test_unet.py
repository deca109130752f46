"""The U-Net of Table 9 with latent-to-skip projections: shapes, the size rule, and that the flow's z
reaches the image through the skips."""

import pytest
import torch

from lmppm_cli.core.config import AutoencoderConfig
from lmppm_cli.core.errors import LmppmError, ModelError
from lmppm_cli.core.models import build_autoencoder


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
    from lmppm_cli.files.weights import load_model

    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    for i in range(24):
        Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    res = CliRunner().invoke(
        app,
        [
            "train",
            str(tmp_path / "imgs"),
            "-o",
            str(tmp_path / "run"),
            "--arch",
            "unet",
            "--widths",
            "4,8",
            "--latent-dim",
            "8",
            "--image-size",
            "16",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--no-calibrate",
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    model = load_model(tmp_path / "run" / "model.safetensors")
    assert model.config.autoencoder.arch == "unet" and model.config.distance.hidden == (300, 100, 30)
    res = CliRunner().invoke(
        app,
        [
            "restore",
            str(tmp_path / "imgs" / "0.png"),
            "-o",
            str(tmp_path / "out.png"),
            "--model",
            str(tmp_path / "run" / "model.safetensors"),
            "--device",
            "cpu",
        ],
    )
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


def _unet_model(**kw):
    from lmppm_cli.core.config import DistanceConfig, ModelConfig
    from lmppm_cli.core.models import LMPPM

    torch.manual_seed(0)
    ae = AutoencoderConfig(arch="unet", channels=3, height=16, width=16, latent_dim=8, widths=(4, 8), **kw)
    model = LMPPM(ModelConfig(autoencoder=ae, distance=DistanceConfig(hidden=(16, 8), dropout=0.0)), bank_size=0)
    model.build_bank(torch.rand(12, 3, 16, 16, generator=torch.Generator().manual_seed(1)))
    return model.eval()


def test_flow_follows_appendix_b_encoding_each_new_image_again():
    import dataclasses

    from lmppm_cli.core.restoration import restore, single_pass

    model = _unet_model()
    ae, x = model.autoencoder, torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    flow = dataclasses.replace(model.config.flow, alpha=0.0, beta=0.0, steps=1, tol=0.0)
    assert torch.allclose(restore(model, x, flow).images, single_pass(model, x), atol=1e-6)  # a zero step: G(F(x))
    twice = restore(model, x, dataclasses.replace(flow, steps=2), keep_trajectory=True)
    assert torch.allclose(twice.images, single_pass(model, single_pass(model, x)), atol=1e-5)  # skips of F(x^2)
    assert len(twice.trajectory) == len(twice.latents) == 3
    # a real step: x^2 = G(S^1 + S_hat(z^2), z^2) with z^2 the Alg. 4 update of z^1 = F(x)
    step = dataclasses.replace(flow, alpha=0.3, beta=0.3)
    z, skips = ae.encode(x)
    from lmppm_cli.core.flow import flow_step

    z2 = flow_step(z, model.distance, model.bank, step)
    assert torch.allclose(restore(model, x, step).images, ae.decode(z2, skips), atol=1e-5)


def test_with_projections_the_restored_image_follows_z():
    """The flow acts through the skips: moving z moves every skip's projection and so the image, even
    with the bottleneck path fixed; without projections the skips ignore z."""
    from lmppm_cli.core.restoration import SkipFlow

    for projections in (True, False):
        model = _unet_model(projections=projections)
        ae, x = model.autoencoder, torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
        z, skips = ae.encode(x)
        rows = torch.arange(2)
        moved = SkipFlow(ae, z, skips, False)
        moved(z + 0.5, rows)
        kept = SkipFlow(ae, z, skips, False)
        kept(z, rows)
        assert not torch.allclose(moved.images, kept.images)
        through_skips = [a - b for a, b in zip(ae.combined_skips(z + 0.5, skips), ae.combined_skips(z, skips))]
        assert any(d.abs().max() > 1e-4 for d in through_skips) == projections


def test_generation_decodes_latent_noise_without_skips_and_refuses_without_skip_dropout(tmp_path):
    from lmppm_cli.core.restoration import sample_seeds, start_latents
    from lmppm_cli.files.generate_files import generate_files

    model = _unet_model()
    z, skips = start_latents(model, sample_seeds(0, 0, 3), "latent")
    assert z.shape == (3, 8) and skips == ()  # no image yet, so no skips
    z, skips = start_latents(model, sample_seeds(0, 0, 3), "pixel")
    assert [s.shape[-1] for s in skips] == [16, 8]  # those of the noise image
    with pytest.raises(ModelError, match="trained without --skip-dropout"):
        generate_files(model, 3, tmp_path / "a", seed=0)
    assert not (tmp_path / "a").exists()
    trained_with_dropout = _unet_model(skip_dropout=0.5)
    assert len(generate_files(trained_with_dropout, 2, tmp_path / "b", seed=0).written) == 2
