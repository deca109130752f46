"""One restore service behind the CLI and the API, one flow object from the options to Alg. 4, and
thin edges: the CLI's and the API's results agree pixel for pixel, every flow setting of FlowConfig
reaches flow_step from both, and the CLI stays small."""

import ast
import dataclasses
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
    """cli.py under 500 lines with no command over about 50; no module of the package over about 400."""
    cli = (PACKAGE / "cli.py").read_text()
    assert len(cli.splitlines()) < 500
    commands = [n for n in ast.parse(cli).body if isinstance(n, ast.FunctionDef)]
    assert all(n.end_lineno - n.lineno < 55 for n in commands), [(n.name, n.end_lineno - n.lineno) for n in commands]
    sizes = {p.relative_to(PACKAGE).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert max(sizes.values()) <= 420, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]


def test_restore_request_is_the_whole_set_of_restore_options():
    """Each option of `lmppm restore` lands in one field of the request (or of its tiling and LDM parts)."""
    from lmppm_cli.files.plan import OutputRules
    from lmppm_cli.service import RestoreRequest, Tiling

    fields = {f.name for f in dataclasses.fields(RestoreRequest)} | {f.name for f in dataclasses.fields(Tiling)}
    fields |= {f.name for f in dataclasses.fields(OutputRules)}
    assert {"flow", "ldm", "tiling", "report", "strict", "skip_existing", "overwrite", "suffix"} <= fields
    assert {"precision", "device", "trajectory"} <= fields
