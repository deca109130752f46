"""Shapes the tools can read: mypy passes over the package at its default strictness (settings in
pyproject.toml), the explicit classes and options match the config fields they stand for, and the
configuration holds no circle back to the architectures."""

import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import lmppm_cli
from lmppm_cli.core.config import ARCHITECTURE_NAMES, FLOW_OPTIONS, AutoencoderConfig, DiffusionConfig, FlowOverride
from lmppm_cli.core.train_config import TrainConfig

ROOT = Path(lmppm_cli.__file__).parent.parent


def test_mypy_finds_no_error_in_the_package():
    pytest.importorskip("mypy")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "Success: no issues found" in done.stdout


def test_flow_override_has_one_field_per_flow_option():
    assert [f.name for f in dataclasses.fields(FlowOverride)] == [f.name for f in FLOW_OPTIONS]
    assert FlowOverride(alpha=0.2, adaptive=False).given() == {"alpha": 0.2, "adaptive": False}


def test_the_configuration_names_the_architectures_without_importing_them():
    from lmppm_cli.core.models.architectures import ARCHITECTURES

    assert tuple(ARCHITECTURES) == ARCHITECTURE_NAMES
    assert "lmppm_cli.core.models" not in (ROOT / "lmppm_cli" / "core" / "config.py").read_text()


def test_every_config_option_is_an_option_of_train_with_the_field_default():
    from lmppm_cli.cli import train

    options = inspect.signature(train).parameters
    for owner in (TrainConfig, AutoencoderConfig, DiffusionConfig):
        for f in dataclasses.fields(owner):
            if "help" not in f.metadata:
                continue
            name = f.metadata.get("flag", f.name).replace("-", "_")
            assert name in options, f"{owner.__name__}.{f.name} has no option of lmppm train"
            shown = f.metadata.get("shown", f.default)
            default = ",".join(map(str, shown)) if "parse" in f.metadata and shown is not None else shown
            assert options[name].default == default, (name, options[name].default, default)


def _folder(path: Path, n: int = 16) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    path.mkdir(parents=True)
    for i in range(n):
        Image.fromarray((rng.random((12, 12)) * 255).astype(np.uint8)).save(path / f"{i}.png")
    return path


def test_the_cli_builds_one_training_request_and_the_api_trains_from_it(tmp_path, monkeypatch):
    """`lmppm train` passes one TrainRequest whole to lmppm_cli.train; that request, given to the API
    directly, trains the same run (the same summary up to time)."""
    from typer.testing import CliRunner

    from lmppm_cli import api
    from lmppm_cli.cli import app
    from lmppm_cli.core.train_config import DataSource, RunOptions, TrainRequest

    data = _folder(tmp_path / "data")
    seen: list[TrainRequest] = []
    monkeypatch.setattr(api, "train", lambda request, progress=None, say=None: seen.append(request))
    args = ["train", str(data), "-o", str(tmp_path / "cli"), "--method", "dae", "--epochs", "1", "--batch-size", "4"]
    args += ["--image-size", "8", "--latent-dim", "4", "--widths", "4,8", "--sigma-range", "0,0.2", "--device", "cpu"]
    done = CliRunner().invoke(app, [*args, "--jpeg", "0.5", "--no-calibrate", "--seed", "3"])
    assert done.exit_code == 0, done.output
    (request,) = seen
    expected = TrainRequest(
        DataSource(str(data)),
        RunOptions(str(tmp_path / "cli"), device="cpu"),
        method="dae",
        autoencoder=AutoencoderConfig(channels=1, height=8, width=8, latent_dim=4, widths=(4, 8)),
        train=TrainConfig(epochs=1, batch_size=4, sigma_range=(0.0, 0.2), jpeg=0.5, calibrate=False, seed=3),
    )
    assert request == expected
    monkeypatch.undo()
    summary = lmppm_cli.train(dataclasses.replace(request, run=RunOptions(str(tmp_path / "api"), device="cpu")))
    assert summary is not None and summary["epochs_run"] == 1 and (tmp_path / "api" / "model.safetensors").is_file()
    assert summary["train_config"]["jpeg"] == 0.5 and summary["method"] == "dae"
