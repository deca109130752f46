"""The camera in code (core/camera.py): its round trips, its raw noise, its seeds, and training on it."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from lmppm_cli.core.camera import (
    HELD_OUT_DEMOSAIC,
    Camera,
    CameraRanges,
    Shot,
    draw_shot,
    photograph,
    process,
    read_noise,
    sensor_noise,
    tone,
    unprocess,
    untone,
)
from lmppm_cli.core.noise import training_pair
from lmppm_cli.core.train_config import TrainConfig


def _photo(h: int = 24, w: int = 30, seed: int = 0) -> torch.Tensor:
    """A smooth colour image in 8-bit steps, away from 0 and 1 (odd sizes on purpose)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 4, 5, generator=g) * 0.8 + 0.1
    x = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0]
    return x.mul(255).round().div(255)


def _shot(seed: int = 3, **changes) -> Shot:
    return dataclasses.replace(draw_shot(CameraRanges(), torch.Generator().manual_seed(seed)), **changes)


def test_the_tone_curve_and_its_inverse_are_inverse_on_0_1():
    y = torch.linspace(0, 1, 101)
    torch.testing.assert_close(tone(untone(y)), y, atol=1e-5, rtol=0)
    assert float(untone(torch.tensor(0.5))) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unprocess_then_process_without_the_mosaic_gives_the_photo_back(seed):
    """Inverse tone, gamma, colour and gains, then the forward ones: the same 8-bit photo (no blur, no
    sharpening, no noise), whatever camera was drawn."""
    x = _photo(seed=seed)
    shot = _shot(seed, blur=0.0, sharpen=0.0)
    back = process(unprocess(x, shot, mosaic=False), shot)
    assert float((back - x).abs().max()) <= 1 / 255 + 1e-6


def test_the_colour_matrix_mixes_channels_and_keeps_grey():
    shot = _shot(5)
    m = torch.tensor(shot.rgb2cam).view(3, 3)
    torch.testing.assert_close(m.sum(1), torch.ones(3, dtype=m.dtype))
    assert float(m.diagonal().max()) < 1.0  # every camera channel takes some of the others


def test_without_noise_and_stored_losslessly_the_file_is_the_target():
    x = _photo()
    shot = _shot(7, shot=0.0, read=0.0, quality=None)
    written, target = photograph(x, shot, torch.Generator().manual_seed(0))
    assert torch.equal(written, target)
    assert written.shape == x.shape and written.dtype == x.dtype


def test_the_target_is_the_quiet_camera_and_the_file_differs_by_noise_and_jpeg():
    x = _photo(32, 32)
    shot = _shot(7, shot=5e-3, read=read_noise(5e-3, 0.0), quality=80)
    written, target = photograph(x, shot, torch.Generator().manual_seed(0))
    quiet, again = photograph(x, shot.quiet(), torch.Generator().manual_seed(9))
    assert torch.equal(target, quiet) and torch.equal(quiet, again)
    assert float((written - target).pow(2).mean().sqrt()) > 0.01


@pytest.mark.parametrize("level", [0.05, 0.2, 0.5])
def test_raw_noise_has_mean_x_and_variance_a_x_plus_b(level):
    raw = torch.full((300, 300), level)
    a, b = 4e-3, 2e-4
    out = sensor_noise(raw, a, b, torch.Generator().manual_seed(0))
    assert float(out.mean()) == pytest.approx(level, abs=2e-3)
    assert float(out.var()) == pytest.approx(a * level + b, rel=0.05)


def test_read_noise_follows_the_log_linear_fit():
    """Brooks et al.: log b = 2.18 log a + 1.20 on the line; a tenfold shot noise gives 10^2.18 the read."""
    assert read_noise(1e-3, 0.0) / read_noise(1e-4, 0.0) == pytest.approx(10**2.18)
    assert read_noise(1e-3, 1.0) > read_noise(1e-3, 0.0) > read_noise(1e-3, -1.0)


def test_the_draws_stay_in_their_ranges_and_never_hold_out_menon():
    ranges = CameraRanges()
    g = torch.Generator().manual_seed(0)
    shots = [draw_shot(ranges, g) for _ in range(300)]
    noisy = [s for s in shots if s.shot > 0]
    assert all(ranges.shot[0] <= s.shot <= ranges.shot[1] for s in noisy)
    assert 0.03 < 1 - len(noisy) / len(shots) < 0.2  # the clean share
    assert {s.demosaic for s in shots} == set(ranges.demosaic) and HELD_OUT_DEMOSAIC not in ranges.demosaic
    qualities = [s.quality for s in shots if s.quality is not None]
    assert min(qualities) >= ranges.quality[0] and max(qualities) <= ranges.quality[1]
    assert {s.subsampling for s in shots} == set(ranges.subsampling)
    assert len({s.pattern for s in shots}) == 4


def test_the_camera_is_seeded():
    x = _photo(32, 32)
    shot = _shot(2, shot=2e-3, read=read_noise(2e-3, 0.0), quality=90)
    one = photograph(x, shot, torch.Generator().manual_seed(4))[0]
    assert torch.equal(one, photograph(x, shot, torch.Generator().manual_seed(4))[0])
    assert not torch.equal(one, photograph(x, shot, torch.Generator().manual_seed(5))[0])
    assert draw_shot(CameraRanges(), torch.Generator().manual_seed(1)) == draw_shot(
        CameraRanges(), torch.Generator().manual_seed(1)
    )


def test_a_camera_share_of_a_batch_and_torchruns_ranks_draw_the_same_rows():
    x = torch.stack([_photo(16, 16, seed=i) for i in range(8)])
    noisy = x + 0.01
    whole = Camera(0.5).sample((noisy, x), torch.Generator().manual_seed(0))
    taken = (whole[1] != x).flatten(1).any(1)
    assert 0 < int(taken.sum()) < 8  # some rows are the camera's, whose target is not the clean photo
    assert torch.equal(whole[0][~taken], noisy[~taken])
    for rank in (0, 1):
        part = Camera(0.5).sample((noisy[rank::2], x[rank::2]), torch.Generator().manual_seed(0), ranks=(rank, 2))
        assert torch.equal(part[0], whole[0][rank::2]) and torch.equal(part[1], whole[1][rank::2])


def test_training_pairs_without_the_camera_share_are_the_old_noise_draws():
    x = torch.stack([_photo(16, 16, seed=i) for i in range(4)])
    plain = TrainConfig(sigma_d=0.1)
    noisy, target = training_pair(x, plain.noise, torch.Generator().manual_seed(0))
    assert target is x and noisy.shape == x.shape
    with_camera = TrainConfig(sigma_d=0.1, camera_pipeline=1.0)
    inputs, targets = training_pair(x, with_camera.noise, torch.Generator().manual_seed(0))
    assert not torch.equal(targets, x) and inputs.shape == targets.shape == x.shape


def test_the_camera_refuses_a_gray_image():
    from lmppm_cli.core.errors import LmppmError

    with pytest.raises(LmppmError, match="colour photos"):
        photograph(torch.rand(1, 8, 8), Shot(), torch.Generator())


CAMERA_TABLE = {  # a camera table: the camera model ahead of BM3D from an estimated noise of 0.01 up
    "estimated_noise": [0.005, 0.012, 0.03, 0.07],
    "model_psnr": [27.0, 28.0, 27.0, 23.0],
    "bm3d_psnr": [27.5, 26.5, 23.0, 17.0],
}


def _colour_photo(noise: float, seed: int = 0) -> torch.Tensor:
    clean = torch.stack(
        [
            torch.linspace(0, 1, 64).expand(64, 64),
            torch.full((64, 64), 0.3),
            torch.linspace(1, 0, 64)[:, None].expand(64, 64),
        ]
    )
    return (clean + noise * torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed))).clamp(0, 1)


def test_a_colour_jpeg_goes_to_the_camera_model_where_its_table_says_it_beats_bm3d():
    from lmppm_cli.core.config import AutoencoderConfig, ModelConfig
    from lmppm_cli.files import domain

    net = type(
        "Net", (), {"config": ModelConfig(autoencoder=AutoencoderConfig(arch="unet", channels=3, height=16, width=16))}
    )()
    models = {"photos": net, "photos-camera": net}
    gaussian = {"estimated_noise": [0.0, 0.3], "model_psnr": [30.0, 30.0], "bm3d_psnr": [31.0, 31.0]}  # BM3D always
    noisy = _colour_photo(0.05)
    as_jpeg = domain.choose(noisy, models, photo_table=gaussian, camera=domain.CameraPick(True, CAMERA_TABLE))
    assert as_jpeg.name == "photos-camera" and as_jpeg.method is None and "colour JPEG" in as_jpeg.reason
    as_png = domain.choose(noisy, models, photo_table=gaussian, camera=domain.CameraPick(False, CAMERA_TABLE))
    assert as_png.name == "bm3d"
    clean_jpeg = domain.choose(
        _colour_photo(0.0), models, photo_table=gaussian, camera=domain.CameraPick(True, CAMERA_TABLE)
    )
    assert clean_jpeg.name == "bm3d" and "colour JPEG" in clean_jpeg.reason  # where the camera table says BM3D
    no_table = domain.choose(noisy, models, photo_table=gaussian, camera=domain.CameraPick(True, None))
    assert no_table.name == "bm3d"  # unmeasured: the safe choice


def test_a_camera_model_measured_close_in_bf16_runs_in_bf16_where_the_device_computes_it(monkeypatch):
    """The camera table's bf16 column (bench camera): within 0.05 dB of fp32 at every level, a picked
    camera JPEG runs in bf16 on a device with native bf16; further off, or without it, in fp32. The
    service takes the pick's precision only under `auto`."""
    from lmppm_cli.core.config import AutoencoderConfig, ModelConfig
    from lmppm_cli.files import domain
    from lmppm_cli.service import Group, RestoreSettings, _settings

    config = ModelConfig(autoencoder=AutoencoderConfig(arch="unet", channels=3, height=16, width=16))
    net = type("Net", (), {"config": config, "device": torch.device("cpu")})()
    models = {"photos": net, "photos-camera": net}
    close = CAMERA_TABLE | {"bf16_psnr": [v - 0.01 for v in CAMERA_TABLE["model_psnr"]]}
    far = CAMERA_TABLE | {"bf16_psnr": [v - 0.2 for v in CAMERA_TABLE["model_psnr"]]}
    noisy = _colour_photo(0.05)
    for native, table, expected in ((True, close, "bf16"), (True, far, None), (False, close, None)):
        monkeypatch.setattr(domain, "cpu_has_bf16", lambda native=native: native)
        choice = domain.choose(noisy, models, camera=domain.CameraPick(True, table))
        assert choice.name == "photos-camera" and choice.precision == expected, (native, expected)
        assert ("in bf16" in choice.reason) == (expected == "bf16")
    group = Group(net, None, precision="bf16")
    assert _settings(RestoreSettings(), group).precision == "bf16"  # auto: the pick's
    assert _settings(RestoreSettings(precision="fp32"), group).precision == "fp32"  # asked for: kept
    assert _settings(RestoreSettings(), Group(net, None)).precision == "auto"  # service.restorer: fp32


def test_the_file_format_reaches_the_pick(tmp_path):
    from PIL import Image

    from lmppm_cli.files.images import read_image

    pixels = (_colour_photo(0.05).permute(1, 2, 0).numpy() * 255).astype("uint8")
    Image.fromarray(pixels).save(tmp_path / "a.jpg", quality=90)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.jpg")[1].format == "JPEG"
    assert read_image(tmp_path / "a.png")[1].format == "PNG"


@pytest.mark.parametrize("method", ["dae", "lmppm"])
def test_training_with_a_camera_share_learns_toward_the_cameras_own_output(tmp_path, method):
    """`--camera-pipeline 1`: every sample a camera's file, every target that camera without noise and
    JPEG; the loss falls over a few epochs, the model loads, and the share is in its training summary."""
    from lmppm_cli.core.config import AutoencoderConfig, DistanceConfig, ModelConfig
    from lmppm_cli.core.data import Dataset, Split
    from lmppm_cli.files.weights import load_model
    from lmppm_cli.training import train

    ae = AutoencoderConfig(arch="unet", channels=3, height=16, width=16, latent_dim=6, widths=(4, 8), residual=True)
    config = ModelConfig(autoencoder=ae, distance=DistanceConfig(hidden=(8,), dropout=0.0), method=method)
    images = torch.stack([_photo(16, 16, seed=i) for i in range(24)])
    data = Dataset("photos", Split(images[:16]), Split(images[16:]))
    tcfg = TrainConfig(epochs=4, batch_size=8, lr=3e-3, sigma_d=0.05, camera_pipeline=1.0, calibrate=False)
    summary = train(config, data, tcfg, tmp_path, torch.device("cpu"))
    assert summary["train_config"]["camera_pipeline"] == 1.0
    history = json.loads((tmp_path / "summary.json").read_text())["history"]
    assert history[-1]["train"]["total"] < history[0]["train"]["total"]
    assert load_model(tmp_path / "model.safetensors").config.method == method


def test_the_camera_bench_default_takes_the_model_or_bm3d_cell_by_the_pick_rule():
    from lmppm_cli.experiments.bench import camera_pick as cp

    def cell(scene, method, psnr, noise):
        return {
            "scene": scene,
            "degradation": "camera, night",
            "method": method,
            "psnr": [psnr],
            "estimated_noise": [noise],
        }

    cells = [cell("a", cp.MODEL, 25.0, 0.05), cell("a", cp.BM3D, 20.0, 0.05)]
    cells += [cell("b", cp.MODEL, 27.0, 0.004), cell("b", cp.BM3D, 27.4, 0.004)]
    picked = {c["scene"]: c for c in cp.default_cells(cells, CAMERA_TABLE)}
    assert picked["a"]["psnr"] == [25.0] and picked["a"]["picked"] == cp.MODEL  # ahead of BM3D at 0.05
    assert picked["b"]["psnr"] == [27.4] and picked["b"]["picked"] == cp.BM3D  # behind it at 0.004
    assert {c["method"] for c in picked.values()} == {cp.DEFAULT}
    cells += [cell("a", cp.BF16, 24.99, 0.05)]  # where restore runs the model in bf16, the default is that cell
    table = CAMERA_TABLE | {"bf16_psnr": [v - 0.01 for v in CAMERA_TABLE["model_psnr"]]}
    net = type("Net", (), {"device": torch.device("cuda")})()  # a device that computes bf16
    picked = {c["scene"]: c for c in cp.default_cells(cells, table, net)}
    assert picked["a"]["psnr"] == [24.99] and picked["a"]["picked"] == cp.BF16


def test_the_bundled_camera_table_was_measured_on_the_bundled_camera_model_and_sends_jpegs_to_it():
    import hashlib
    from pathlib import Path

    from lmppm_cli.files import domain

    weights = Path(__file__).resolve().parents[1] / "weights"
    table = json.loads((weights / domain.CAMERA_TABLE).read_text())
    model = weights / f"{domain.CAMERA}.safetensors"
    assert table["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert domain.pick_table(model, domain.CAMERA_TABLE) == table
    assert domain.CAMERA in domain.DOMAIN_MODELS
    night = table["estimated_noise"][-1]
    assert domain.photo_method(night, table, domain.CAMERA)[0] is None  # the measured lead at night
