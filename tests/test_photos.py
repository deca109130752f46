"""The photo model of issue 20: the pixel-unshuffled residual U-Net, photo-crops drawn anew every epoch,
the cosine schedule, the default pick between the learned photo model and blind BM3D, and a tiny photo
model trained and restoring a whole photo in tiles through the real command line."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from lmppm_cli.cli import app
from lmppm_cli.core.config import AutoencoderConfig, DistanceConfig, ModelConfig
from lmppm_cli.core.data import Dataset, Split
from lmppm_cli.core.errors import LmppmError
from lmppm_cli.core.models.unet import UNetAutoencoder
from lmppm_cli.core.train import TrainConfig
from lmppm_cli.files import domain
from lmppm_cli.files.data import CropDrawer, grid_crops, load_dataset
from lmppm_cli.training import train

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


def photo_unet(size: int = 16, unshuffle: int = 2, residual: bool = True, widths=(4, 8)) -> UNetAutoencoder:
    cfg = AutoencoderConfig(
        arch="unet",
        channels=3,
        height=size,
        width=size,
        latent_dim=6,
        widths=widths,
        unshuffle=unshuffle,
        residual=residual,
    )
    torch.manual_seed(0)
    return UNetAutoencoder(cfg).eval()


def test_unshuffled_residual_unet_corrects_its_input_and_keeps_shapes(rng):
    net = photo_unet()
    x = torch.rand(3, 3, 16, 16, generator=rng)
    z, skips = net.encode(x)
    assert z.shape == (3, 6) and torch.equal(skips[-1], x)  # the image G corrects is the last skip
    assert skips[0].shape == (3, 4, 8, 8)  # the first level runs at half resolution (pixel-unshuffle 2)
    torch.nn.init.zeros_(net.head.weight), torch.nn.init.zeros_(net.head.bias)
    assert torch.equal(net.decode(z, skips), x)  # a zero correction gives the input back exactly
    torch.nn.init.constant_(net.head.bias, 5.0)
    assert torch.equal(net.decode(z, skips), torch.ones_like(x))  # clamped to [0, 1]
    assert torch.allclose(net.decode(z, ()), torch.ones_like(x))  # a latent alone corrects mid-gray


def test_unshuffle_needs_divisible_sizes_and_a_large_enough_image():
    with pytest.raises(LmppmError, match="does not divide"):
        photo_unet(size=15)
    with pytest.raises(LmppmError, match="too small"):
        photo_unet(size=4, widths=(4, 8, 8))


def test_unet_options_are_refused_for_the_conv_architecture_and_bad_training_options_in_one_sentence():
    from lmppm_cli.core.config import AutoencoderConfig
    from lmppm_cli.core.train_config import TrainConfig
    from lmppm_cli.training import model_config

    conv = AutoencoderConfig(channels=3, height=16, width=16, latent_dim=4)
    for option, value in (("residual", True), ("unshuffle", 2), ("depth", 3), ("noise_map", True)):
        with pytest.raises(LmppmError, match=f"--{option.replace('_', '-')} is an option of the unet"):
            model_config("dae", dataclasses.replace(conv, **{option: value}))
    assert model_config("dae", dataclasses.replace(conv, arch="unet", widths=None, residual=True)).autoencoder.widths
    with pytest.raises(LmppmError, match="lr-schedule"):
        TrainConfig(lr_schedule="linear")


def test_crops_are_new_every_epoch_the_same_for_the_same_seed_and_epoch(rng):
    photos = [torch.rand(3, 40, 50, generator=rng), torch.rand(3, 30, 30, generator=rng)]
    draw = CropDrawer(photos, 16, 64, seed=0)
    first, again, second = draw(0), draw(0), draw(1)
    assert first.shape == (64, 3, 16, 16) and torch.equal(first, again) and not torch.equal(first, second)
    assert not torch.equal(first, CropDrawer(photos, 16, 64, seed=1)(0))
    # every crop is a flipped / turned window of one of the photos
    windows = {p.unfold(1, 16, 1).unfold(2, 16, 1).permute(1, 2, 0, 3, 4).reshape(-1, 3, 16, 16) for p in photos}
    views = [torch.rot90(w.flip(-1) if f else w, k, dims=(2, 3)) for w in windows for f in (0, 1) for k in range(4)]
    pool = torch.cat(views).flatten(1)
    assert (
        torch.cdist(first.flatten(1), pool, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values < 1e-5
    ).all()
    with pytest.raises(LmppmError, match="smaller than"):
        CropDrawer([torch.rand(3, 10, 40)], 16, 4, seed=0)


def test_grid_crops_cover_the_photo_at_the_stride():
    photo = torch.arange(3 * 20 * 30, dtype=torch.float32).view(3, 20, 30)
    crops = grid_crops(photo, 10, 5)
    assert crops.shape == (3 * 5, 3, 10, 10)
    assert torch.equal(crops[0], photo[:, :10, :10]) and torch.equal(crops[-1], photo[:, 10:, 20:])


def test_photo_crops_split_by_scene_and_take_extra_photos(tmp_path):
    base = load_dataset("photo-crops", 3, 32, 32)
    assert base.train.images.shape == (4096, 3, 32, 32) and base.val.images.shape[1:] == (3, 32, 32)
    assert base.test.images.shape == (1, 3, 400, 600)  # coffee, whole
    Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(tmp_path / "flat.png")
    extra = load_dataset("photo-crops", 3, 32, 32, extra_photos=str(tmp_path))
    assert len(extra.draw.photos) == len(base.draw.photos) + 1 and extra.digest != base.digest
    with pytest.raises(LmppmError, match="photo-crops dataset only"):
        load_dataset("mnist-5k", 1, 28, 28, extra_photos=str(tmp_path))
    with pytest.raises(LmppmError, match="square RGB"):
        load_dataset("photo-crops", 1, 32, 32)


def test_crop_sides_add_each_large_photo_at_every_scale_and_small_ones_once(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (1000, 2000, 3), dtype=np.uint8)).save(tmp_path / "large.png")
    Image.fromarray(rng.integers(0, 256, (300, 500, 3), dtype=np.uint8)).save(tmp_path / "small.png")
    one = load_dataset("photo-crops", 3, 32, 32, extra_photos=str(tmp_path))
    two = load_dataset("photo-crops", 3, 32, 32, extra_photos=str(tmp_path), crop_sides=(768, 1280))
    shapes = lambda ds: Counter(tuple(p.shape) for p in ds.draw.photos)  # noqa: E731
    added = shapes(two) - shapes(one)
    assert added[(3, 640, 1280)] == 1 and shapes(one)[(3, 384, 768)] >= 1  # the large photo at both sides
    assert shapes(two)[(3, 300, 500)] == shapes(one)[(3, 300, 500)] == 1  # the small one once, as it is
    assert all(max(shape[1:]) <= 1280 for shape in added) and two.digest != one.digest
    assert two.draw(0).shape == (4096, 3, 32, 32) and torch.equal(two.val.images, one.val.images)
    with pytest.raises(LmppmError, match="photo-crops dataset only"):
        load_dataset("mnist-5k", 1, 28, 28, crop_sides=(512,))
    result = CliRunner().invoke(app, ["train", "photo-crops", "-o", str(tmp_path / "run"), "--crop-sides", "768,x"])
    assert result.exit_code != 0 and "--crop-sides needs positive whole numbers" in result.output
    assert "Traceback" not in result.output


def _crops_dataset(seed_images: int = 0) -> Dataset:
    g = torch.Generator().manual_seed(seed_images)
    photos = [torch.rand(3, 24, 24, generator=g).clamp(0.2, 0.8) for _ in range(2)]
    draw = CropDrawer(photos, 16, 32, seed=0)
    return Dataset("crops", Split(draw(0)), Split(grid_crops(photos[0], 16, 8)), draw=draw, digest="test-photos")


def _photo_config(method: str = "dae") -> ModelConfig:
    ae = AutoencoderConfig(
        arch="unet", channels=3, height=16, width=16, latent_dim=6, widths=(4, 8), unshuffle=2, residual=True
    )
    return ModelConfig(autoencoder=ae, distance=DistanceConfig(hidden=(8,), dropout=0.0), method=method)


@pytest.mark.parametrize("method", ["dae", "lmppm"])
def test_training_on_redrawn_crops_resumes_exactly_and_follows_the_cosine_schedule(tmp_path, method):
    tcfg = TrainConfig(
        epochs=3, batch_size=16, sigma_d=0.2, sigma_range=(0.0, 0.3), lr_schedule="cosine", patience=10, calibrate=False
    )
    whole = train(_photo_config(method), _crops_dataset(), tcfg, tmp_path / "whole", torch.device("cpu"))
    train(
        _photo_config(method),
        _crops_dataset(),
        TrainConfig(**{**tcfg.__dict__, "epochs": 1}),
        tmp_path / "part",
        torch.device("cpu"),
    )
    resumed = train(_photo_config(method), _crops_dataset(), tcfg, tmp_path / "part", torch.device("cpu"), resume=True)
    assert whole["best_val_loss"] == resumed["best_val_loss"]
    from safetensors.torch import load_file

    left, right = (
        load_file(tmp_path / "whole" / "model.safetensors"),
        load_file(tmp_path / "part" / "model.safetensors"),
    )
    assert all(torch.equal(left[k], right[k]) for k in left)
    history = json.loads((tmp_path / "whole" / "summary.json").read_text())["history"]
    assert len(history) == 3 and 0 <= history[0]["seconds"] <= history[1]["seconds"] <= history[2]["seconds"]
    with pytest.raises(LmppmError, match="images of crops changed"):
        train(
            _photo_config(method),
            Dataset(**{**_crops_dataset().__dict__, "digest": "other"}),
            tcfg,
            tmp_path / "part",
            torch.device("cpu"),
            resume=True,
        )


def test_each_epoch_trains_on_its_own_crops_with_the_scheduled_rate(monkeypatch, tmp_path):
    from lmppm_cli.core import train as train_module

    seen, rates = [], []
    real_epoch = train_module._Loop.epoch

    def spy(self, progress):
        out = real_epoch(self, progress)
        seen.append(self.train_x.clone())
        rates.append(self.optimizer.param_groups[0]["lr"])
        return out

    monkeypatch.setattr(train_module._Loop, "epoch", spy)
    data = _crops_dataset()
    tcfg = TrainConfig(
        epochs=4, batch_size=16, lr=1e-3, sigma_d=0.2, lr_schedule="cosine", patience=10, calibrate=False
    )
    train(_photo_config(), data, tcfg, tmp_path / "run", torch.device("cpu"))
    assert all(torch.equal(x, data.draw(e)) for e, x in enumerate(seen))
    assert not torch.equal(seen[0], seen[1])
    expected = [1e-3 * (0.01 + 0.99 * (1 + math.cos(math.pi * e / 4)) / 2) for e in range(4)]
    assert rates == pytest.approx(expected)


TABLE = {
    "estimated_noise": [0.004, 0.05, 0.1, 0.2],
    "model_psnr": [40.0, 33.0, 30.5, 27.0],
    "bm3d_psnr": [55.0, 33.5, 30.0, 26.5],
}


@pytest.mark.parametrize(
    ("sigma", "expected"),
    [(0.0, "bm3d"), (0.004, "bm3d"), (0.06, "bm3d"), (0.07, None), (0.09, None), (0.15, None), (0.5, None)],
)
def test_photo_method_takes_the_learned_model_only_where_it_beat_bm3d(sigma, expected):
    method, reason = domain.photo_method(sigma, TABLE)
    assert method == expected
    assert ("--model photos forces" in reason) == (expected == "bm3d") and ("--method bm3d forces" in reason) == (
        expected is None
    )


def test_photo_method_takes_the_faster_model_only_within_the_margin_of_bm3d():
    # TABLE between 0.05 and 0.1: BM3D ahead by 0.5 - 20 (sigma - 0.05) dB, level at 0.075
    for sigma, lead in ((0.0625 - 0.002, 0.29), (0.0625 + 0.002, 0.21), (0.074, 0.02)):
        method, reason = domain.photo_method(sigma, TABLE)
        assert (method is None) == (lead < domain.SPEED_MARGIN)
        assert ("within 0.25 dB of blind BM3D" in reason) == (method is None)


def test_photo_method_without_a_table_for_the_model_is_bm3d():
    assert domain.photo_method(0.1, None)[0] == "bm3d"


def test_choose_sends_a_colour_photo_to_bm3d_or_to_the_photo_model_by_its_noise(rng, tiny_model):
    photo_net = type("Net", (), {"config": _photo_config()})()
    models = {"photos": photo_net, "mnist": tiny_model}
    clean = torch.stack(
        [
            torch.linspace(0, 1, 64).expand(64, 64),
            torch.full((64, 64), 0.3),
            torch.linspace(1, 0, 64)[:, None].expand(64, 64),
        ]
    )
    noisy = (clean + 0.15 * torch.randn(clean.shape, generator=rng)).clamp(0, 1)
    assert domain.choose(clean, models, photo_table=TABLE).name == "bm3d"
    picked = domain.choose(noisy, models, photo_table=TABLE)
    assert picked.name == "photos" and picked.method is None


def test_the_bundled_pick_table_was_measured_on_the_bundled_photo_model():
    table = json.loads((WEIGHTS / domain.PICK_TABLE).read_text())
    assert table["sha256"] == hashlib.sha256((WEIGHTS / "photos.safetensors").read_bytes()).hexdigest()
    assert domain.pick_table(WEIGHTS / "photos.safetensors") == table
    assert domain.pick_table(WEIGHTS / "faces.safetensors") is None
    assert len(table["sigma"]) == len(table["model_psnr"]) == len(table["bm3d_psnr"]) == len(table["estimated_noise"])


def test_restore_with_no_model_follows_the_table_for_a_clean_photo_and_says_how_to_override(tmp_path):
    """A clean photo goes where the bundled table says (at its estimated noise), the run names the
    option that overrides the pick, and the photo comes back nearly untouched either way."""
    import skimage.data

    from lmppm_cli.core.noise_level import estimate_noise
    from lmppm_cli.files.weights import resolve_model

    src = tmp_path / "in" / "astronaut.png"
    src.parent.mkdir()
    Image.fromarray(skimage.data.astronaut()[:96, :128]).save(src)
    result = CliRunner().invoke(app, ["restore", str(src), "-o", str(tmp_path / "out.png"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    x = torch.from_numpy(np.array(Image.open(src))).permute(2, 0, 1).float().div(255)
    method, _ = domain.photo_method(estimate_noise(x), domain.pick_table(resolve_model(domain.GENERAL)))
    override = "--model photos forces" if method == "bm3d" else "--method bm3d forces"
    assert override in result.stderr, result.stderr
    out = np.asarray(Image.open(tmp_path / "out.png"), dtype=np.float64)
    ref = np.asarray(Image.open(src), dtype=np.float64)
    assert 10 * math.log10(255.0**2 / ((out - ref) ** 2).mean()) > 40.0  # a clean photo is barely touched


def test_api_pick_follows_the_same_rule():
    import skimage.data

    import lmppm_cli

    clean = skimage.data.astronaut()[:96, :128]
    model, choice = lmppm_cli.pick(clean, device="cpu")
    assert choice.method == "bm3d" and model.method == "bm3d" and model.name == "bm3d"
    assert "bm3d" in repr(model) and "photos" not in repr(model)  # it names what runs
    out = np.asarray(model.restore(clean), dtype=np.float64)
    assert out.shape == clean.shape and 10 * math.log10(255.0**2 / ((out - clean) ** 2).mean()) > 40.0


def test_a_tiny_photo_model_trains_on_photo_crops_and_restores_a_whole_photo_in_tiles(tmp_path):
    """Through the real CLI: a DAE, then LMPPM started from it on the redrawn crops, then a 150x200
    photo restored in 16-pixel tiles (much larger than the model's input) with the model's flow."""
    run = CliRunner()
    common = [
        "--arch",
        "unet",
        "--image-size",
        "16",
        "--latent-dim",
        "6",
        "--widths",
        "4,8",
        "--unshuffle",
        "2",
        "--residual",
        "--sigma-range",
        "0,0.3",
        "--sigma-d",
        "0.2",
        "--batch-size",
        "256",
        "--epochs",
        "1",
        "--lr-schedule",
        "cosine",
        "--device",
        "cpu",
    ]
    dae = run.invoke(
        app, ["train", "photo-crops", "-o", str(tmp_path / "dae"), "--method", "dae", "--no-calibrate", *common]
    )
    assert dae.exit_code == 0, dae.output
    lm = run.invoke(
        app,
        [
            "train",
            "photo-crops",
            "-o",
            str(tmp_path / "lm"),
            "--init",
            str(tmp_path / "dae" / "model.safetensors"),
            "--freeze-init",
            "--no-calibrate",
            *common,
        ],
    )
    assert lm.exit_code == 0, lm.output
    import skimage.data

    clean = skimage.data.chelsea()[:150, :200].astype(np.float64) / 255
    noisy = np.clip(clean + 0.1 * np.random.default_rng(0).standard_normal(clean.shape), 0, 1)
    Image.fromarray(np.rint(noisy * 255).astype(np.uint8)).save(tmp_path / "noisy.png")
    out = run.invoke(
        app,
        [
            "restore",
            str(tmp_path / "noisy.png"),
            "-o",
            str(tmp_path / "clean.png"),
            "--model",
            str(tmp_path / "lm" / "model.safetensors"),
            "--device",
            "cpu",
        ],
    )
    assert out.exit_code == 0, out.output
    restored = np.asarray(Image.open(tmp_path / "clean.png"), dtype=np.float64) / 255
    assert restored.shape == clean.shape and np.isfinite(restored).all()
    assert np.abs(restored - noisy).mean() > 1e-3  # the model changed the photo


def test_photo_bench_scores_paired_draws_and_builds_the_pick_table():
    from lmppm_cli.experiments.bench.photo_pick import pick_table, pooled
    from lmppm_cli.experiments.bench.photos import compare, degraded_by, markdown, noise_levels, score_photo

    ramp = torch.linspace(0.2, 0.8, 32)
    clean = (
        torch.stack([ramp.expand(24, 32), ramp.flip(0).expand(24, 32), torch.full((24, 32), 0.5)])
        .mul(255)
        .round()
        .div(255)
    )
    methods = {"LMPPM": lambda x: (x + clean) / 2, "BM3D (blind)": lambda x: clean.clone()}
    cells = compare(score_photo(clean, methods, noise_levels((0.0, 0.1)), seed=0, draws=2))
    by = {(c["sigma"], c["method"]): c for c in cells}
    assert len(by[0.1, "LMPPM"]["psnr"]) == 2 and by[0.0, "BM3D (blind)"]["psnr"][0] == 100.0  # exact: the PSNR cap
    diff = by[0.1, "BM3D (blind)"]["psnr_minus_lmppm"]
    assert diff["low"] > 0  # the exact method is ahead of the half-way one in every draw
    scenes = [c | {"scene": s} for s in ("a", "b") for c in cells]  # two scenes, the same figures
    table = pick_table(scenes, "m", "abc", ["a", "b"])
    assert table["sigma"] == [0.0, 0.1] and table["estimated_noise"][1] > table["estimated_noise"][0]
    assert table["bm3d_ssim"][1] > table["model_ssim"][1]
    assert domain.photo_method(0.1, table)[0] == "bm3d"
    rows = {(r["degradation"], r["method"]): r for r in pooled(scenes)}
    assert rows["noise 0.1", "BM3D (blind)"]["versus"]["psnr"].low > 0  # paired over scenes and draws
    assert "win" in markdown(cells)
    scribbled = score_photo(clean, methods, {"scribbles 6": (None, degraded_by("scribbles", 6))}, seed=0, draws=1)
    assert scribbled[0]["sigma"] is None and scribbled[0]["psnr"][0] < 40 and scribbled[1]["psnr"][0] == 100.0


def test_the_default_row_of_photo_pick_is_the_cell_of_the_method_picked_draw_by_draw():
    from lmppm_cli.experiments.bench.photo_pick import BM3D, DEFAULT, MODEL, default_cells, default_section

    def cell(scene, method, psnr, noise, sigma=0.1):
        return {"scene": scene, "degradation": f"noise {sigma}", "sigma": sigma, "method": method, "psnr": psnr,
                "ssim": [p / 100 for p in psnr], "chroma_rmse": [0.01, 0.02], "seconds_per_mp": 1.0 if method == MODEL else 50.0,
                "estimated_noise": noise}  # fmt: skip

    noise = [0.04, 0.09]  # TABLE: BM3D ahead by 0.7 dB at 0.04; the model ahead at 0.09
    cells = [cell(s, MODEL, [30.0, 31.0], noise) for s in "ab"] + [cell(s, BM3D, [32.0, 29.0], noise) for s in "ab"]
    cells += [cell(s, m, [20.0, 20.0], noise, sigma=None) for s in "ab" for m in (MODEL, BM3D)]  # not Gaussian
    made = default_cells(cells, TABLE)
    assert [c["method"] for c in made] == [DEFAULT, DEFAULT]
    assert all(c["picked"] == [BM3D, MODEL] and c["psnr"] == [32.0, 31.0] for c in made)
    assert made[0]["ssim"] == [0.32, 0.31] and made[0]["seconds_per_mp"] == 25.5
    section = default_section(cells + made)
    assert "| noise 0.1 | 2 of 4 |" in section and section.count("+1.00 [") == 2  # 2 dB ahead of each in half the pairs


def test_photo_pick_keeps_bm3d_cells_of_an_earlier_run_with_the_same_seed_and_draws(tmp_path):
    import json

    from lmppm_cli.experiments.bench.photo_pick import BM3D, MODEL, classical_cells
    from lmppm_cli.experiments.bench.photos import noise_levels, score_photo

    clean = torch.full((3, 16, 16), 0.5)
    earlier = [
        {"scene": "a", "degradation": "noise 0.1", "method": m, "psnr": [p], "ssim": [0.9]}
        for m, p in ((BM3D, 31.5), (MODEL, 30.0))
    ]
    (tmp_path / "results.json").write_text(json.dumps({"seed": 3, "draws": 1, "cells": earlier}))
    assert classical_cells(tmp_path / "results.json", 4, 1) == {}  # another seed: measured anew
    assert classical_cells(tmp_path / "results.json", 3, 3) == {}  # other draws: measured anew
    (tmp_path / "older.json").write_text(json.dumps({"seed": 3, "cells": earlier}))
    assert classical_cells(tmp_path / "older.json", 3, 1) == {}  # draws not recorded: measured anew
    known = classical_cells(tmp_path / "results.json", 3, 1)
    assert list(known) == [("a", "noise 0.1", BM3D)]  # the model's own cells are never kept
    failed = earlier + [
        {"scene": "b", "degradation": "noise 0", "method": BM3D, "psnr": [math.nan], "ssim": [math.nan]}
    ]
    (tmp_path / "failed.json").write_text(json.dumps({"seed": 3, "draws": 1, "cells": failed}))
    assert list(classical_cells(tmp_path / "failed.json", 3, 1)) == list(known)  # a cell without numbers: anew

    def never(x):
        raise AssertionError("a kept cell was measured again")

    found = {k[1:]: c for k, c in known.items()}
    cells = score_photo(clean, {BM3D: never, MODEL: lambda x: x}, noise_levels((0.1,)), 3, 1, known=found)
    assert cells[0]["psnr"] == [31.5] and cells[1]["method"] == MODEL and cells[1]["psnr"][0] < 40


def test_an_interrupted_photo_pick_keeps_bm3d_cells_of_the_scenes_it_finished(tmp_path, monkeypatch):
    """results.json is written scene by scene: a run stopped in the second scene, run again, measures
    BM3D only for the scenes it had not finished."""
    from lmppm_cli.experiments.bench import photo_pick

    scenes = {name: torch.full((3, 16, 16), v) for name, v in (("a", 0.4), ("b", 0.6))}
    calls = []

    def bm3d(x, stop_in=None):
        calls.append(round(x.mean().item(), 1))
        if stop_in is not None and abs(calls[-1] - stop_in) < 0.05:
            raise KeyboardInterrupt
        return x.clamp(0.45, 0.65)

    weights = tmp_path / "m.safetensors"
    weights.write_bytes(b"weights")
    monkeypatch.setattr(photo_pick, "resolve_model", lambda name: weights)
    monkeypatch.setattr(photo_pick, "load_model", lambda path, device: None)
    monkeypatch.setattr(
        photo_pick, "learned_rows", lambda net, _: {photo_pick.MODEL: lambda x: x, photo_pick.SINGLE: lambda x: x}
    )
    monkeypatch.setattr(photo_pick, "validation_photos", lambda extra: scenes)
    monkeypatch.setattr(photo_pick, "PICK_LEVELS", (0.0, 0.1))
    monkeypatch.setattr(photo_pick, "CAMERA_ROWS", {})
    monkeypatch.setattr(photo_pick, "camera_rows", lambda: {})
    monkeypatch.setattr(photo_pick, "classical_rows", lambda: {photo_pick.BM3D: lambda x: bm3d(x, stop_in=0.6)})
    with pytest.raises(KeyboardInterrupt):
        photo_pick.run_photo_pick(tmp_path, seed=0, device="cpu")
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["partial"] and {c["scene"] for c in saved["cells"]} == {"a"}
    calls.clear()
    monkeypatch.setattr(photo_pick, "classical_rows", lambda: {photo_pick.BM3D: bm3d})
    photo_pick.run_photo_pick(tmp_path, seed=0, device="cpu")
    assert calls and all(abs(c - 0.6) < 0.05 for c in calls)  # scene a's BM3D cells were kept
    final = json.loads((tmp_path / "results.json").read_text())
    assert not final["partial"] and {c["scene"] for c in final["cells"]} == {"a", "b"}
    assert json.loads((tmp_path / "photos-vs-bm3d.json").read_text())["scenes"] == ["a", "b"]
