"""The photo model's options beyond the paper (issue 33): deeper U-Net blocks, FFDNet's noise-level
map, camera-like Poisson-Gaussian noise, the DAE's pixel losses and an EMA of the weights."""

import dataclasses
import math

import pytest
import torch
from conftest import blob_images

from lmppm_cli.core.config import AutoencoderConfig, DistanceConfig, ModelConfig
from lmppm_cli.core.data import Dataset, Split
from lmppm_cli.core.errors import LmppmError
from lmppm_cli.core.losses import denoising_error
from lmppm_cli.core.models import build_autoencoder
from lmppm_cli.core.noise import (
    GaussianNoise,
    JpegStorage,
    PoissonGaussianNoise,
    camera_noise,
    jpeg_round_trip,
    training_pair,
)
from lmppm_cli.core.noise_level import noise_levels
from lmppm_cli.core.train import TrainConfig
from lmppm_cli.files.weights import load_model
from lmppm_cli.training import train


def _unet(**kw):
    base = dict(arch="unet", channels=3, height=16, width=16, latent_dim=8, widths=(4, 8), unshuffle=2, residual=True)
    return build_autoencoder(AutoencoderConfig(**{**base, **kw}))


def _convs(net) -> int:
    return sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_depth_sets_the_convolutions_per_block_and_keeps_shapes(depth):
    net = _unet(depth=depth).eval()
    assert _convs(net) == 2 * 2 * depth + 1  # two levels, encoder and decoder blocks, and the head
    x = torch.rand(2, 3, 16, 16)
    z, skips = net.encode(x)
    assert z.shape == (2, 8) and net.decode(z, skips).shape == x.shape


def test_the_default_depth_is_table_9s_pair_with_the_same_weights_names():
    old, new = _unet(), _unet(depth=2)
    assert list(old.state_dict()) == list(new.state_dict())
    assert _convs(old) == 9


def test_the_noise_map_feeds_the_estimated_level_to_f(rng):
    torch.manual_seed(0)
    net = _unet(noise_map=True).eval()
    assert net.down[0][0].in_channels == 3 * 4 + 1
    x = torch.rand(2, 3, 16, 16, generator=rng)
    first = net.down[0][0]
    seen = []
    hook = first.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    net.encode(x)
    hook.remove()
    level = seen[0][:, -1]  # (B, h, w): the map, constant over the image
    torch.testing.assert_close(level, noise_levels(x).view(2, 1, 1).expand_as(level))
    # the same pixels with the map set to 0 give another latent: F reads the map
    z, _ = net.encode(x)

    def zero_map(module, inputs):
        return (torch.cat([inputs[0][:, :-1], torch.zeros_like(inputs[0][:, -1:])], 1),)

    hook = first.register_forward_pre_hook(zero_map)
    z_zero, _ = net.encode(x)
    hook.remove()
    assert not torch.allclose(z, z_zero)


def test_camera_noise_has_mean_x_and_variance_a_x_plus_b():
    levels = (0.1, 0.4, 0.7)  # 4 or more standard deviations from 0 and 1: clamping changes nothing measurable
    x = torch.tensor(levels).view(3, 1, 1, 1).expand(3, 1, 200, 200).contiguous()
    a, b = 0.004, 2e-4
    out = camera_noise(x, a, b, torch.Generator().manual_seed(0))
    for i, level in enumerate(levels):
        sample = out[i].flatten()
        assert abs(float(sample.mean()) - level) < 0.002
        assert float(sample.var()) == pytest.approx(a * level + b, rel=0.05)
    again = camera_noise(x, a, b, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # seeded


def _drawn(x: torch.Tensor, *kinds) -> torch.Tensor:
    return training_pair(x, kinds, torch.Generator().manual_seed(1))[0]


def test_a_camera_share_replaces_that_share_of_gaussian_samples():
    x = torch.full((400, 1, 8, 8), 0.5)
    gaussian = GaussianNoise(0.1, 0.1)
    plain = _drawn(x, gaussian)
    mixed = _drawn(x, gaussian, PoissonGaussianNoise(0.5))
    changed = (plain != mixed).flatten(1).any(1).float().mean()
    assert 0.4 < float(changed) < 0.6
    torch.testing.assert_close(_drawn(x, gaussian, PoissonGaussianNoise(0.0)), plain)


def test_a_jpeg_share_stores_that_share_of_noisy_samples_as_jpegs():
    """Those rows equal a JPEG round trip of the noisy sample at some quality in 75-95; the rest are
    untouched, and the draws before it are the same as without the share (seeded)."""
    x = torch.rand(200, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    kinds = (GaussianNoise(0.05, 0.05), PoissonGaussianNoise(0.25))
    plain = _drawn(x, *kinds)
    stored = _drawn(x, *kinds, JpegStorage(0.5))
    changed = (plain != stored).flatten(1).any(1)
    assert 0.4 < float(changed.float().mean()) < 0.6
    row = int(changed.nonzero()[0])
    assert any(torch.equal(stored[row], jpeg_round_trip(plain[row], q)) for q in range(75, 96))
    assert torch.equal(stored, _drawn(x, *kinds, JpegStorage(0.5)))


def test_a_jpeg_round_trip_keeps_the_image_and_its_channels():
    gray = torch.linspace(0, 1, 256).view(1, 16, 16)
    colour = torch.stack([gray[0], gray[0].flip(0), gray[0].T])
    for image in (gray, colour):
        back = jpeg_round_trip(image, 95)
        assert back.shape == image.shape and not torch.equal(back, image)
        assert float((back - image).abs().mean()) < 0.02
    assert float((jpeg_round_trip(colour, 75) - colour).abs().mean()) > float(
        (jpeg_round_trip(colour, 95) - colour).abs().mean()
    )


@pytest.mark.parametrize("kind", ["l2", "l1", "charbonnier", "relative", "psnr"])
def test_pixel_losses(kind):
    class Identity:
        def decode(self, z, skips):
            return z

    out, target = torch.full((2, 1, 2, 2), 0.5), torch.full((2, 1, 2, 2), 0.2)
    noisy_input = torch.full((2, 1, 2, 2), 0.8)  # the input's error: 0.6 per pixel
    value = float(denoising_error(Identity(), out, (), target, kind, noisy_input))
    relative = 0.09 / (0.36 + (2 / 255) ** 2)  # the error left as a share of the input's
    psnr = 10 * math.log10(0.09 + (0.5 / 255) ** 2)  # minus the PSNR of the output
    expected = {"l2": 4 * 0.09, "l1": 4 * 0.3, "charbonnier": 4 * (0.09 + 1e-6) ** 0.5, "relative": relative}
    expected = {**expected, "psnr": psnr}[kind]
    assert value == pytest.approx(expected, rel=1e-5)


def test_the_relative_loss_weighs_every_noise_level_alike():
    """Halving the error at noise 0.05 and at 0.2 lowers the relative loss by the same amount."""

    class Identity:
        def decode(self, z, skips):
            return z

    x = torch.zeros(1, 1, 8, 8)
    loss = lambda out, sigma: float(denoising_error(Identity(), out, (), x, "relative", x + sigma))  # noqa: E731
    for sigma in (0.05, 0.2):
        gain = loss(x + sigma / 2, sigma) - loss(x + sigma / 4, sigma)
        assert gain == pytest.approx(0.25 - 0.0625, rel=0.05)


def test_the_psnr_loss_gains_alike_for_a_halved_error_at_any_noise():
    """Halving the error of one sample lowers the psnr loss by 10 log10(4) / batch, whatever its size,
    where L2 gains 16 times more from the sample whose error is 4 times larger."""

    class Identity:
        def decode(self, z, skips):
            return z

    x = torch.zeros(2, 1, 8, 8)
    errors = torch.tensor([0.02, 0.08]).view(2, 1, 1, 1)
    for kind, ratio in (("psnr", 1.0), ("l2", 16.0)):
        base = float(denoising_error(Identity(), x + errors, (), x, kind))
        gains = []
        for i in range(2):
            halved = errors.clone()
            halved[i] /= 2
            gains.append(base - float(denoising_error(Identity(), x + halved, (), x, kind)))
        assert gains[1] / gains[0] == pytest.approx(ratio, rel=0.03)  # the floor tilts psnr by 2 %
    assert gains[0] > 0


def _dae_config():
    ae = AutoencoderConfig(arch="unet", channels=1, height=12, width=12, latent_dim=4, widths=(4, 8), depth=3)
    return ModelConfig(autoencoder=ae, distance=DistanceConfig(hidden=(8,)), method="dae")


def _data():
    return Dataset("blobs", Split(blob_images(32, seed=1)), Split(blob_images(8, seed=2)))


def test_ema_weights_are_validated_kept_and_resumed_exactly(tmp_path, device):
    tcfg = TrainConfig(epochs=3, batch_size=8, lr=3e-3, seed=0, ema=0.9, calibrate=False, loss="charbonnier")
    train(_dae_config(), _data(), tcfg, tmp_path / "straight", device)
    train(_dae_config(), _data(), dataclasses.replace(tcfg, epochs=1), tmp_path / "split", device)
    train(_dae_config(), _data(), tcfg, tmp_path / "split", device, resume=True)
    a = load_model(tmp_path / "straight" / "model.safetensors").state_dict()
    b = load_model(tmp_path / "split" / "model.safetensors").state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    raw = train(_dae_config(), _data(), dataclasses.replace(tcfg, ema=0.0), tmp_path / "raw", device)
    c = load_model(tmp_path / "raw" / "model.safetensors").state_dict()
    assert raw["train_config"]["ema"] == 0.0
    assert any(not torch.equal(a[k], c[k]) for k in a if k.endswith("weight"))  # the average, not the last step


def test_camera_training_and_the_new_architecture_options_train_and_load(tmp_path, device):
    tcfg = TrainConfig(epochs=1, batch_size=8, seed=0, sigma_range=(0.0, 0.2), camera=0.5, jpeg=0.5, calibrate=False)
    config = dataclasses.replace(
        _dae_config(),
        autoencoder=dataclasses.replace(_dae_config().autoencoder, channels=3, unshuffle=2, noise_map=True),
    )
    data = Dataset("blobs", Split(blob_images(16, channels=3, seed=1)), Split(blob_images(8, channels=3, seed=2)))
    summary = train(config, data, tcfg, tmp_path, device)
    model = load_model(tmp_path / "model.safetensors")
    assert model.config.autoencoder.noise_map and model.config.autoencoder.depth == 3
    assert summary["train_config"]["camera"] == 0.5 and summary["train_config"]["jpeg"] == 0.5


def test_a_flow_that_gains_less_than_min_flow_gain_leaves_the_single_pass(tmp_path, device):
    """--min-flow-gain: calibration keeps 0 steps when no setting gains that much at both noise levels."""
    from conftest import tiny_config

    data = Dataset("blobs", Split(blob_images(32, seed=1)), Split(blob_images(16, seed=2)))
    tcfg = TrainConfig(epochs=2, batch_size=8, seed=0, calibration_grid="small")
    free = train(tiny_config(), data, tcfg, tmp_path / "free", device)
    costly = train(tiny_config(), data, dataclasses.replace(tcfg, min_flow_gain=100.0), tmp_path / "costly", device)
    assert costly["flow"]["steps"] == 0 and load_model(tmp_path / "costly" / "model.safetensors").config.flow.steps == 0
    assert free["flow"]["steps"] > 0  # without the bar, the calibrated flow as before


def test_calibration_noise_reaches_the_calibration_and_survives_the_checkpoint(tmp_path, device):
    """lmppm train --calibration-noise 0,0.2: the flow's gains are judged at those levels, and the option is
    kept in the model file's training configuration."""
    from conftest import tiny_config

    data = Dataset("blobs", Split(blob_images(32, seed=1)), Split(blob_images(16, seed=2)))
    tcfg = TrainConfig(epochs=1, batch_size=8, seed=0, calibration_grid="small", calibration_noise=(0.0, 0.2))
    summary = train(tiny_config(), data, tcfg, tmp_path, device)
    assert all(list(r["gains"]) == ["sigma 0", "sigma 0.2"] for r in summary["calibration_top"])
    assert TrainConfig.from_dict(summary["train_config"]).calibration_noise == (0.0, 0.2)


def _rgb_unet(widths, **changes):
    ae = AutoencoderConfig(
        arch="unet", channels=3, height=16, width=16, latent_dim=6, widths=widths, residual=True, **changes
    )
    return build_autoencoder(ae)


@pytest.mark.parametrize("depth", [2, 3])
def test_a_grown_unet_computes_what_the_narrow_one_did_and_then_learns_with_its_new_channels(depth):
    from lmppm_cli.core.models.growth import grow

    torch.manual_seed(0)
    small, large = _rgb_unet((4, 6), depth=depth), _rgb_unet((7, 9), depth=depth)
    small.train()
    x = torch.rand(5, 3, 16, 16)
    with torch.no_grad():  # running statistics that are not the defaults, so that BN's copy is tested too
        for _ in range(3):
            small.decode(*small.encode(x))
    grow(large, small)
    small.eval(), large.eval()
    expected, got = small.decode(*small.encode(x)), large.decode(*large.encode(x))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert not torch.equal(large.encode(x)[1][0][:, 4:], torch.zeros_like(large.encode(x)[1][0][:, 4:]))
    large.train()  # the new channels learn: the weights that read them get gradients at once
    loss = (large.decode(*large.encode(x)) - x).pow(2).mean()
    loss.backward()
    reads_new = large.down[1][0].weight.grad[:, 4:]
    assert reads_new.abs().sum() > 0


@pytest.mark.parametrize("depths", [(2, 3), (3, 5)])
def test_a_deepened_unet_computes_what_the_shallow_one_did_and_its_new_layers_learn(depths):
    from lmppm_cli.core.models.growth import grow

    torch.manual_seed(0)
    small, large = _rgb_unet((4, 6), depth=depths[0]), _rgb_unet((5, 6), depth=depths[1])
    x = torch.rand(5, 3, 16, 16)
    small.train()
    with torch.no_grad():
        for _ in range(3):
            small.decode(*small.encode(x))
    grow(large, small)
    small.eval(), large.eval()
    torch.testing.assert_close(large.decode(*large.encode(x)), small.decode(*small.encode(x)), rtol=1e-5, atol=1e-6)
    assert torch.equal(large.down[0][-3].weight[:4, :4], small.down[0][-3].weight)  # the last conv, moved down
    new_layer = large.up[0].body[1 + depths[0]]  # the first added residual layer of the first decoder block
    assert torch.equal(new_layer.body[1].weight, torch.zeros_like(new_layer.body[1].weight))
    large.train()
    (large.decode(*large.encode(x)) - x).pow(2).mean().backward()
    assert new_layer.body[1].weight.grad.abs().sum() > 0  # the zero scale learns, so the layer does


def test_growing_refuses_a_narrower_or_shallower_target():
    from lmppm_cli.core.models.growth import grow

    with pytest.raises(LmppmError, match="cannot grow"):
        grow(_rgb_unet((4, 6)), _rgb_unet((5, 6)))
    with pytest.raises(LmppmError, match="cannot grow"):
        grow(_rgb_unet((5, 6), depth=2), _rgb_unet((4, 6), depth=3))


def test_train_init_grows_a_narrower_dae_into_the_wider_one_it_trains(tmp_path, device):
    """`lmppm train --init NARROW --widths WIDER`: the run starts from the narrow model's function."""
    from lmppm_cli.core.objectives import DaeObjective

    tcfg = TrainConfig(epochs=2, batch_size=8, lr=3e-3, seed=0, calibrate=False)
    train(_dae_config(), _data(), tcfg, tmp_path / "narrow", device)
    narrow = load_model(tmp_path / "narrow" / "model.safetensors")
    wide_config = dataclasses.replace(
        _dae_config(), autoencoder=dataclasses.replace(_dae_config().autoencoder, widths=(6, 8))
    )
    start = DaeObjective(wide_config, _data(), tcfg, narrow.device, base=narrow).model.autoencoder.eval()
    x = _data().val.images.to(narrow.device)
    torch.testing.assert_close(start.decode(*start.encode(x)), narrow.autoencoder.decode(*narrow.autoencoder.encode(x)))
    init = str(tmp_path / "narrow" / "model.safetensors")
    train(wide_config, _data(), dataclasses.replace(tcfg, init=init), tmp_path / "wide", device)
    assert load_model(tmp_path / "wide" / "model.safetensors").config.autoencoder.widths == (6, 8)
