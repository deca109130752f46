"""One restore service behind the CLI and the API, one flow object from the options to Alg. 4, and
thin edges: the CLI's and the API's results agree pixel for pixel, every flow setting of FlowConfig
reaches flow_step from both, and the CLI stays small."""

import ast
import dataclasses
import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import lmppm_cli
from lmppm_cli.cli import app
from lmppm_cli.core import flow as flow_module
from lmppm_cli.core.config import FLOW_OPTIONS, FlowConfig

PACKAGE = Path(lmppm_cli.__file__).parent
SET_TO = {  # a value other than any default, for each user setting of FlowConfig
    "alpha": 0.11,
    "beta": 0.07,
    "steps": 2,
    "tol": 1e-4,
    "sigma_ker": 0.3,
    "schedule": "growing",
    "adaptive": True,
    "top_k": 3,
}


def _flag(name: str, value) -> list[str]:
    if isinstance(value, bool):
        return [f"--{name.replace('_', '-')}" if value else f"--no-{name.replace('_', '-')}"]
    return [f"--{name.replace('_', '-')}", str(value)]


def test_every_flow_setting_is_declared_once():
    assert {f.name for f in FLOW_OPTIONS} == set(SET_TO), "a new FlowConfig option needs a value in SET_TO"


@pytest.mark.parametrize("name", sorted(SET_TO))
def test_a_flow_setting_reaches_flow_step_whole_from_the_cli_and_the_api(name, tiny_model_file, tmp_path, monkeypatch):
    seen: list[FlowConfig] = []
    real = flow_module.flow_step
    monkeypatch.setattr(
        flow_module,
        "flow_step",
        lambda z, d, bank, step, index=None: (seen.append(step), real(z, d, bank, step, index))[1],
    )
    value = SET_TO[name]
    image = np.random.default_rng(0).integers(0, 255, (12, 12), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "in.png")
    extra = [] if name == "steps" else ["--steps", "2"]  # at least one step, so flow_step runs
    done = CliRunner().invoke(
        app,
        [
            "restore",
            str(tmp_path / "in.png"),
            "-o",
            str(tmp_path / "out.png"),
            "-m",
            str(tiny_model_file),
            *extra,
            *_flag(name, value),
        ],
    )
    assert done.exit_code == 0, done.output
    from_cli, seen[:] = list(seen), []
    lmppm_cli.load(str(tiny_model_file), device="cpu").restore(
        image, **{name: value, **({} if name == "steps" else {"steps": 2})}
    )
    for steps in (from_cli, list(seen)):
        assert steps and all(getattr(s, name) == value for s in steps if name not in ("alpha", "beta")), name
        if name in ("alpha", "beta"):  # the constant schedule: every step at the value asked for
            assert all(getattr(s, name) == pytest.approx(value) for s in steps)


@pytest.mark.parametrize("size", [(12, 12), (40, 52)])
def test_the_cli_and_the_api_give_the_same_pixels(size, tmp_path):
    """One pick and one tile-or-resize function: a gray face and a larger gray image (tiles of `faces`,
    a U-Net) restored by `lmppm restore` and by lmppm_cli.load(...).restore are identical."""
    image = np.random.default_rng(1).integers(0, 255, size, dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "in.png")
    done = CliRunner().invoke(
        app, ["restore", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "-m", "faces", "--alpha", "0.1"]
    )
    assert done.exit_code == 0, done.output
    from_cli = np.asarray(Image.open(tmp_path / "out.png"))
    from_api = lmppm_cli.load("faces", device="cpu").restore(Image.open(tmp_path / "in.png"), alpha=0.1)
    assert np.array_equal(from_cli, np.asarray(from_api))


def test_the_pick_of_the_api_is_the_pick_of_the_cli(tmp_path):
    digit = np.zeros((28, 28), dtype=np.uint8)
    digit[8:20, 12:16] = 255
    model, choice = lmppm_cli.pick(digit, device="cpu")
    from lmppm_cli.service import DomainModels

    again = DomainModels.load(torch.device("cpu")).choose(torch.from_numpy(digit / 255.0).float()[None])
    assert model.name == choice.name == again.name == "mnist" and choice.reason == again.reason


def test_a_bench_suite_takes_only_the_options_it_declares(tmp_path):
    from lmppm_cli.experiments.bench import BenchOptions, accepted, run_bench

    assert "split" in accepted("mnist") and "split" not in accepted("faces") and "draws" in accepted("photos")
    from lmppm_cli.core.errors import LmppmError

    with pytest.raises(LmppmError, match="--split is not an option of the faces suite"):
        run_bench("faces", tmp_path, BenchOptions(split="validation"))
    done = CliRunner().invoke(app, ["bench", "--suite", "circle", "--split", "validation", "-o", str(tmp_path)])
    assert done.exit_code == 2 and "not an option of the circle suite" in done.output


def test_the_edges_stay_thin():
    """cli.py under 400 lines, no function of the package over 60 and no module over 420."""
    cli = (PACKAGE / "cli.py").read_text()
    assert len(cli.splitlines()) < 400
    long = {}
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) <= 420, path
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60:
                long[f"{path.name}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert not long, long


def test_restore_request_is_the_whole_set_of_restore_options():
    """Each option of `lmppm restore` lands in one field of the request (or of its settings, tiling and
    output parts)."""
    from lmppm_cli.files.plan import OutputRules
    from lmppm_cli.service import RestoreRequest, RestoreSettings, Tiling

    parts = (RestoreRequest, RestoreSettings, Tiling, OutputRules)
    fields = {f.name for part in parts for f in dataclasses.fields(part)}
    assert {"flow", "ldm", "tiling", "report", "strict", "skip_existing", "overwrite", "suffix"} <= fields
    assert {"precision", "device", "trajectory", "settings"} <= fields


CLI_ONLY = {  # options of `lmppm restore` about files, or the model's loading (lmppm_cli.load's keywords)
    "inputs", "output", "report", "strict", "skip_existing", "overwrite", "suffix", "quiet", "save_trajectory",
    "model", "revision", "offline", "device",
}  # fmt: skip


def _defaults(function) -> dict:
    return {n: p.default for n, p in inspect.signature(function).parameters.items() if n not in ("self", "image")}


def test_the_api_takes_every_restore_option_of_the_cli_by_the_same_name_and_default():
    from lmppm_cli.api import Model
    from lmppm_cli.cli import restore

    cli, api, load = _defaults(restore), _defaults(Model.restore), _defaults(lmppm_cli.load)
    assert set(cli) - CLI_ONLY == set(api), set(cli) ^ set(api)
    assert {n: cli[n] for n in api} == api
    assert {n: cli[n] for n in ("revision", "offline", "device")} == {
        n: load[n] for n in ("revision", "offline", "device")
    }


def test_the_api_and_the_cli_restore_through_the_same_service_function(tiny_model_file, tmp_path, monkeypatch):
    """service.restorer is the one restore chain: patched, both callers reach it with the same settings."""
    from lmppm_cli import service

    seen: list = []
    real = service.restorer
    monkeypatch.setattr(service, "restorer", lambda net, settings: (seen.append(settings), real(net, settings))[1])
    image = np.random.default_rng(0).integers(0, 255, (12, 12), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "in.png")
    args = ["restore", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "-m", str(tiny_model_file)]
    done = CliRunner().invoke(app, [*args, "--steps", "2", "--tile", "0", "--precision", "auto"])
    assert done.exit_code == 0, done.output
    out = lmppm_cli.load(str(tiny_model_file), device="cpu").restore(image, steps=2, tile=0)
    assert len(seen) == 2 and seen[0] == seen[1] and seen[0].flow.steps == 2
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), out)


def test_no_generated_classes_rewritten_signatures_or_patched_click():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for magic in ("make_dataclass", "__signature__", "UsageError.show", ".show = "):
            assert magic not in text, (path.name, magic)
