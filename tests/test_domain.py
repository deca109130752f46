"""Choosing the bundled model for an image, its warnings, per-image reports and the Python API."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import lmppm_cli
import lmppm_cli.api  # the lazy package does not import it; these tests call it directly
from lmppm_cli.cli import app
from lmppm_cli.files.data import photo_tensor
from lmppm_cli.files.domain import (
    DOMAIN_MODELS,
    GENERAL,
    choose,
    estimate_noise,
    photo_method,
    pick_table,
    scores,
    training_summary,
)
from lmppm_cli.files.weights import load_model, model_metadata, resolve_model

skdata = pytest.importorskip("skimage.data")
runner = CliRunner()


@pytest.fixture(scope="module")
def bundled():
    models = {n: load_model(resolve_model(n)) for n in DOMAIN_MODELS}
    return models, {n: training_summary(model_metadata(resolve_model(n))) for n in DOMAIN_MODELS}


MODEL_AHEAD = {
    "estimated_noise": [0.0, 1.0],
    "model_psnr": [40.0, 20.0],
    "bm3d_psnr": [30.0, 10.0],
}  # the learned model wins


def expected_photo_route(x: torch.Tensor) -> str:
    """What the rule says for a colour image under the bundled table (the test follows the measured table)."""
    method, _ = photo_method(estimate_noise(x), pick_table(resolve_model(GENERAL)))
    return method or GENERAL


def _gray(array) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).float().div(255).unsqueeze(0)


def test_noise_estimate_recovers_the_added_level():
    x = _gray(skdata.camera())
    for sigma in (0.05, 0.1, 0.2):
        noisy = x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
        assert abs(estimate_noise(noisy) - sigma) < 0.15 * sigma + 0.01
    assert estimate_noise(x) < 0.02


def test_each_domain_gets_its_model(bundled):
    models, training = bundled
    g = torch.Generator().manual_seed(0)
    digit = torch.zeros(1, 28, 28)
    digit[:, 6:22, 12:16] = 1.0
    cases = {
        "photos": photo_tensor(skdata.astronaut()),  # colour
        "mnist": (digit + 0.5 * torch.randn(digit.shape, generator=g)).clamp(0, 1),  # a noisy 28x28 digit
        "faces": torch.rand(1, 25, 25, generator=g) * 0.2 + 0.4,  # a 25x25 gray crop
    }
    for expected, x in cases.items():
        assert choose(x, models, training, MODEL_AHEAD).name == expected
    assert choose(cases["photos"], models, training).name == "bm3d"  # no table: BM3D, the measured safe choice
    big_gray = choose(_gray(skdata.camera()), models, training)
    assert big_gray.name == "photos" and "tiles" in big_gray.reason


def test_noise_image_is_warned_and_a_clean_photo_is_not(bundled):
    models, training = bundled
    noise = (torch.rand(3, 96, 96, generator=torch.Generator().manual_seed(1)) > 0.5).float()  # sigma ~0.5, beyond 0.3
    assert any("noise" in w for w in choose(noise, models, training, MODEL_AHEAD).warnings)
    assert choose(photo_tensor(skdata.coffee()), models, training, MODEL_AHEAD).warnings == []


def test_restoring_lowers_the_residual_of_a_noisy_digit(bundled):
    models, _ = bundled
    digit = torch.zeros(1, 28, 28)
    digit[:, 6:22, 12:16] = 1.0
    noisy = (digit + 0.5 * torch.randn(digit.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    restored = lmppm_cli.load("mnist", device="cpu").restore(noisy)
    before, after = scores(models["mnist"], noisy), scores(models["mnist"], restored)
    assert after.residual < 0.5 * before.residual and after.noise < 0.5 * before.noise
    assert before.distance is not None and after.distance is not None


def test_cli_picks_by_the_measured_rule_for_a_colour_photo_and_says_so(tmp_path):
    photo = np.clip(
        skdata.astronaut()[:96, :128] + np.random.default_rng(0).normal(0, 0.15 * 255, (96, 128, 3)), 0, 255
    )
    Image.fromarray(photo.astype(np.uint8)).save(tmp_path / "astronaut.png")
    route = expected_photo_route(lmppm_cli.api._tensors(Image.open(tmp_path / "astronaut.png"))[0])
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    Image.fromarray(digit).save(tmp_path / "digit.png")
    result = runner.invoke(
        app,
        [
            "restore",
            str(tmp_path / "astronaut.png"),
            str(tmp_path / "digit.png"),
            "-o",
            str(tmp_path / "out"),
            "--report",
            str(tmp_path / "r.csv"),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    kind = "method" if route == "bm3d" else "model"
    assert f"{kind}: {route} for 1 file(s) (colour image, estimated noise" in result.stderr
    assert "model: mnist for 1 file(s)" in result.stderr
    assert Image.open(tmp_path / "out" / "astronaut.png").size == (128, 96)
    rows = {r["input"].rsplit("/", 1)[-1]: r for r in csv.DictReader(open(tmp_path / "r.csv"))}
    assert rows["digit.png"]["model"] == "mnist"
    assert (rows["astronaut.png"]["model"], rows["astronaut.png"]["method"]) == (
        ("", "bm3d") if route == "bm3d" else ("photos", "lmppm")
    )
    assert float(rows["digit.png"]["steps"]) >= 1 and float(rows["astronaut.png"]["seconds"]) > 0
    assert float(rows["digit.png"]["distance_before"]) > 0


def test_cli_warns_on_noise_and_strict_writes_nothing(tmp_path):
    noise = (np.random.default_rng(0).random((64, 64)) > 0.5).astype(np.uint8) * 255  # gray binary noise: sigma ~0.5
    Image.fromarray(noise).save(tmp_path / "noise.png")
    result = runner.invoke(
        app, ["restore", str(tmp_path / "noise.png"), "-o", str(tmp_path / "a.png"), "--device", "cpu"]
    )
    assert result.exit_code == 0 and "warning:" in result.stderr and "noise" in result.stderr
    result = runner.invoke(
        app, ["restore", str(tmp_path / "noise.png"), "-o", str(tmp_path / "b.png"), "--strict", "--device", "cpu"]
    )
    assert result.exit_code != 0 and "--strict" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "b.png").exists()


def test_report_as_json_and_a_bad_suffix(tmp_path):
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    Image.fromarray(digit).save(tmp_path / "d.png")
    args = ["restore", str(tmp_path / "d.png"), "-o", str(tmp_path / "o.png"), "-m", "mnist-dae", "--device", "cpu"]
    assert runner.invoke(app, args + ["--report", str(tmp_path / "r.json")]).exit_code == 0
    (entry,) = json.loads((tmp_path / "r.json").read_text())
    assert entry["model"] == "mnist-dae" and entry["method"] == "dae" and entry["distance_before"] is None
    result = runner.invoke(app, args + ["--report", str(tmp_path / "r.txt")])
    assert result.exit_code != 0 and ".csv, .json or .html" in result.stderr


def test_api_returns_the_input_type_size_and_channels():
    model = lmppm_cli.load("photos", device="cpu")
    pil = Image.fromarray(skdata.astronaut()[:70, :90])
    out = model.restore(pil)
    assert isinstance(out, Image.Image) and out.size == (90, 70) and out.mode == "RGB"
    gray = skdata.camera()[:40, :50]
    arr = model.restore(gray)
    assert arr.shape == gray.shape and arr.dtype == np.uint8
    assert np.abs(arr.astype(float) - gray).mean() < 20  # a clean photo stays close to itself
    batch = torch.rand(2, 1, 28, 28)
    assert lmppm_cli.load("mnist", device="cpu").restore(batch).shape == batch.shape
    picked, choice = lmppm_cli.pick(pil, device="cpu")
    assert picked.name == choice.name and choice.reason.startswith("colour image, estimated noise")
    assert (choice.method or "photos") == expected_photo_route(lmppm_cli.api._tensors(pil)[0])
    with pytest.raises(lmppm_cli.api.LmppmError):
        model.restore("not an image")


def test_the_readme_examples_go_to_their_models(tmp_path):
    """The README's "Choosing a model" command, on the committed example files."""
    result = runner.invoke(
        app, ["restore", "examples/noisy_photo.png", "examples/noisy_digit.png", "-o", str(tmp_path), "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    route = expected_photo_route(lmppm_cli.api._tensors(Image.open("examples/noisy_photo.png"))[0])
    assert (
        f"{'method' if route == 'bm3d' else 'model'}: {route} for 1 file(s) (colour image, estimated noise"
        in result.stderr
    )
    assert "model: mnist for 1 file(s) (gray 28x28 image" in result.stderr
    assert Image.open(tmp_path / "noisy_photo.png").size == (256, 256)


def test_a_malformed_training_summary_is_ignored_not_fatal():
    from lmppm_cli.files.domain import trained_noise, training_summary

    assert training_summary({"lmppm.training": "[1, 2]"}) == {} and training_summary({"lmppm.training": "{oops"}) == {}
    assert (
        trained_noise({"train_config": "sigma"}) is None and trained_noise({"train_config": {"sigma_range": 5}}) is None
    )
    assert trained_noise({"train_config": {"sigma_d": 0.4}}) == 0.4
