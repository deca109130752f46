"""A new user's first hour through the real command line: no image stops a batch, -o means what it says,
results are replaced knowingly (or not at all), and names and chatter can be set."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_png
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from lmppm_cli.cli import app

RNG = np.random.default_rng(0)
ROOT = Path(__file__).resolve().parents[1]


def _good(path: Path, kind: str) -> None:
    if kind == "digit":
        arr = np.zeros((28, 28), np.uint8)
        arr[7:21, 12:16] = 255
        write_png(path, arr)
    else:  # a small colour photo-like image
        write_png(path, RNG.integers(0, 255, (40, 48, 3), dtype=np.uint8))


HOSTILE = {
    "text.png": lambda p: p.write_text("not an image"),
    "empty.png": lambda p: p.write_bytes(b""),
    "truncated.png": lambda p: p.write_bytes(_png_bytes()[:60]),
    "one-pixel.png": lambda p: write_png(p, np.array([[[200, 10, 10]]], np.uint8)),
    "tiny-colour.png": lambda p: write_png(p, RNG.integers(0, 255, (4, 4, 3), dtype=np.uint8)),
    "odd-colour.png": lambda p: write_png(p, RNG.integers(0, 255, (5, 7, 3), dtype=np.uint8)),
    "tiny-gray.png": lambda p: write_png(p, np.full((2, 2), 128, np.uint8)),
    "nan.tif": lambda p: Image.fromarray(np.full((8, 8), np.nan, np.float32), "F").save(p),
}


def _png_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _restore(*args) -> object:
    return CliRunner().invoke(app, ["restore", *map(str, args)])


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    hostile=st.lists(st.sampled_from(sorted(HOSTILE)), min_size=1, max_size=4, unique=True),
    goods=st.lists(st.sampled_from(["digit", "photo"]), min_size=1, max_size=3),
)
def test_a_folder_of_good_and_hostile_images_restores_every_good_one(tmp_path_factory, hostile, goods):
    root = tmp_path_factory.mktemp("mixed")
    for i, kind in enumerate(goods):
        _good(root / "in" / f"good-{i}.png", kind)
    for name in hostile:
        HOSTILE[name](root / "in" / name)
    done = _restore(root / "in", "-o", root / "out", "--report", root / "report.csv", "--method", "bm3d")
    assert "Traceback" not in done.output and done.exit_code in (0, 1), done.output
    for i in range(len(goods)):
        assert (root / "out" / f"good-{i}.png").is_file(), done.output
    rows = {Path(r["input"]).name: r for r in csv.DictReader((root / "report.csv").open())}
    for name in hostile:  # every hostile file restored or named with its reason, in the output and the report
        restored = (root / "out" / name).is_file()
        named = any(line.startswith("failed:") and name in line for line in done.output.splitlines())
        assert restored or (named and rows[name]["error"]), (name, done.output)
    assert done.exit_code == (1 if any(not (root / "out" / n).is_file() for n in hostile) else 0)


@pytest.mark.parametrize("size", [(1, 1), (4, 4), (7, 5)])
def test_a_colour_image_under_8_pixels_restores_with_the_pick_and_with_bm3d(tmp_path, size):
    write_png(tmp_path / "tiny.png", RNG.integers(0, 255, (*size, 3), dtype=np.uint8))
    for extra, name in (([], "pick.png"), (["--method", "bm3d"], "bm3d.png")):
        done = _restore(tmp_path / "tiny.png", "-o", tmp_path / name, *extra)
        assert done.exit_code == 0, done.output
        assert Image.open(tmp_path / name).size == (size[1], size[0]) and "Warning" not in done.output


def test_o_means_what_it_says(tmp_path):
    _good(tmp_path / "a.png", "digit")
    for bad in ("x.txt", "noext"):
        done = _restore(tmp_path / "a.png", "-o", tmp_path / bad)
        assert done.exit_code == 2 and "is not an image file name" in done.output and "Traceback" not in done.output
        assert not (tmp_path / bad).exists()
    assert _restore(tmp_path / "a.png", "-o", f"{tmp_path / 'folder'}/").exit_code == 0
    assert (tmp_path / "folder" / "a.png").is_file()
    assert _restore(tmp_path / "a.png", "-o", tmp_path / "b.png").exit_code == 0 and (tmp_path / "b.png").is_file()


def test_results_are_replaced_knowingly_or_not_at_all_and_can_carry_a_suffix(tmp_path):
    _good(tmp_path / "in" / "a.png", "digit")
    first = _restore(tmp_path / "in", "-o", tmp_path / "out")
    assert first.exit_code == 0 and "replaced" not in first.output
    before = (tmp_path / "out" / "a.png").stat().st_mtime_ns
    again = _restore(tmp_path / "in", "-o", tmp_path / "out")
    assert again.exit_code == 0 and "1 existing result(s) will be replaced" in again.output
    refused = _restore(tmp_path / "in", "-o", tmp_path / "out", "--no-overwrite")
    assert refused.exit_code == 2 and "already exist" in refused.output
    assert (tmp_path / "out" / "a.png").stat().st_mtime_ns != before  # the second run replaced it; the third did not
    named = _restore(tmp_path / "in", "-o", tmp_path / "out", "--suffix", "_clean", "--quiet")
    assert named.exit_code == 0 and (tmp_path / "out" / "a_clean.png").is_file() and named.output == ""


def test_the_names_checked_early_are_the_registries():
    from lmppm_cli import methods, names
    from lmppm_cli.core.degradations import DEGRADATIONS, DOMAINS
    from lmppm_cli.core.precision import PRECISIONS
    from lmppm_cli.experiments.bench import ALL_SUITES

    assert sorted(names.RESTORING) == sorted(methods.restoring()) and sorted(names.TRAINED) == sorted(methods.trained())
    assert sorted(names.SUITES) == sorted(ALL_SUITES) and names.DEGRADATIONS == tuple(DEGRADATIONS)
    assert names.DOMAINS == DOMAINS and names.PRECISIONS == tuple(PRECISIONS)


@pytest.mark.parametrize(
    "args",
    [
        ["degrade", "x.png", "-o", "y.png", "--kind", "blur"],
        ["restore", "x.png", "-o", "y.png", "--device", "gpu"],
        ["restore", "x.png", "-o", "y.png", "--method", "classifier"],
        ["bench", "--suite", "mnst"],
        ["train", "mnist-5k", "-o", "r", "--loss", "l3"],
        ["generate", "-o", "g", "--start", "middle"],
    ],
)
def test_a_bad_value_is_refused_before_torch_loads(args):
    """The refusal comes from a process that never imported torch (sys.modules, read at exit)."""
    import subprocess
    import sys

    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr))\n"
        "from lmppm_cli.cli import main\nsys.argv = ['lmppm', *sys.argv[1:]]\nmain()\n"
    )
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().endswith("NO-TORCH"), done.stderr


@pytest.mark.parametrize(
    "args",
    [["models"], ["methods"], ["restore", "--help"], ["train", "--help"], ["bench", "--help"], ["generate", "--help"]],
)
def test_output_fits_80_columns_with_no_name_cut(args):
    done = CliRunner().invoke(app, args, env={"COLUMNS": "80"}, terminal_width=80)
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert "…" not in done.output and max(len(line) for line in lines) <= 80
    if args[-1] == "--help":  # every option of the command is named whole
        import re

        names = set(re.findall(r"--[a-z][a-z-]+", done.output))
        assert {"--output", "--device"} & names or args[0] == "bench"


def test_generation_refuses_a_model_that_cannot_and_names_those_that_can(tmp_path):
    done = CliRunner().invoke(app, ["generate", "--model", "faces", "-o", str(tmp_path / "g")])
    assert done.exit_code == 3 and "cannot generate" in done.output and "mnist" in done.output
    assert not (tmp_path / "g").exists()
    listed = CliRunner().invoke(app, ["models"])
    assert "mnist: " in listed.output and "faces: bundled, lmppm, unet, 1x25x25" in listed.output
    assert [line for line in listed.output.splitlines() if line.startswith("faces:")][0].count("does not generate") == 1
    made = CliRunner().invoke(app, ["generate", "--n", "4", "-o", str(tmp_path / "m")])
    assert made.exit_code == 0 and "wrote 4 file(s)" in made.output and (tmp_path / "m" / "grid.png").is_file()


def test_a_large_image_moves_the_bar_tile_by_tile(tmp_path, monkeypatch):
    """The service reports pixels as each batch of tiles is restored, not only when the file is done."""
    import lmppm_cli
    from lmppm_cli import service

    write_png(tmp_path / "big.png", RNG.integers(0, 255, (90, 130), dtype=np.uint8))
    seen, files = [], []
    hooks = service.Hooks(on_pixels=seen.append, on_file=files.append)
    request = service.RestoreRequest(
        (str(tmp_path / "big.png"),),
        str(tmp_path / "out.png"),
        model="faces",
        settings=service.RestoreSettings(tiling=service.Tiling(batch_size=4)),
    )
    service.restore(request, hooks)
    assert len(files) == 1 and len(seen) > 3 and sum(seen) == pytest.approx(90 * 130)
    assert lmppm_cli.load  # the package's entry points are there


def test_the_package_lists_and_documents_its_api():
    import lmppm_cli

    assert {"load", "pick", "Model"} <= set(dir(lmppm_cli))
    assert "Hub repo id" in lmppm_cli.load.__doc__ and "bm3d" in lmppm_cli.pick.__doc__.lower()


def test_every_command_the_readme_shows_parses_and_names_files_that_exist():
    """The README's everyday commands, parsed by the real command line (options and values checked),
    with every input they name present in the clone."""
    import shlex

    import typer

    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Everyday commands", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]
    assert len(lines) >= 8 and all(line.startswith("lmppm ") for line in lines)
    root = typer.main.get_command(app)
    for line in lines:
        args = shlex.split(line)[1:]
        with root.make_context("lmppm", list(args)) as group:
            command = root.get_command(group, args[0])
            command.make_context(args[0], args[1:], parent=group)  # raises on an unknown option or a bad value
        for arg in args:
            if arg.startswith("examples/"):
                assert (ROOT / arg).exists(), arg
        for flag, value in zip(args, args[1:]):
            if flag in ("-o", "--report"):
                assert value.startswith("out/"), line  # under the ignored out/: a clone stays clean


def test_the_report_flags_a_clear_digit_that_became_another_and_a_distance_that_grew():
    """Item 8: a restored digit read as another class, or a result further from the data (D grew),
    carries a `flag`; an unchanged clear digit carries none."""
    import torch

    from lmppm_cli.files.data import mnist_5k
    from lmppm_cli.files.plan import Job
    from lmppm_cli.files.reports import digit, flagged, row
    from lmppm_cli.files.weights import load_model, resolve_model

    model = load_model(resolve_model("mnist"), "cpu")
    test = mnist_5k().test
    clear = [(x, *digit(model, x)) for x in test.images[::100]]  # one digit of each class
    (first, a, _), (second, b, _) = [(x, d, s) for x, d, s in clear if s][:2]
    job = Job(Path("in.png"), Path("out.png"))
    changed = row(job, {}, model, first, second, 1, 0.1)
    assert changed["flag"].startswith(f"a clear {a} became a {b}") and changed["digit_before"] == a
    kept = row(job, {}, model, first, first.clone(), 1, 0.1)
    assert kept["flag"] == "" and flagged([changed, kept]) == 1
    noise = torch.rand(first.shape, generator=torch.Generator().manual_seed(0))
    assert "D grew" in row(job, {}, model, first, noise, 1, 0.1)["flag"]


def test_ctrl_c_in_a_bench_says_nothing_of_restore_options(tmp_path, monkeypatch):
    from lmppm_cli.experiments import bench

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, "run_bench", interrupted)
    done = CliRunner().invoke(app, ["bench", "--suite", "mnist-noise", "-o", str(tmp_path / "b")])
    assert done.exit_code == 130 and "interrupted" in done.output and "--skip-existing" not in done.output


REFUSE = """
import sys, time
from lmppm_cli.cli import main
sys.argv = ["lmppm", *sys.argv[1:]]
try:
    main()
except SystemExit as e:
    code = e.code
print("torch" in sys.modules, code)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["restore", "missing.png", "-o", "x.png"],
        ["restore", "examples/noisy_digit.png", "-o", "x.png", "-m", "nosuchmodel"],
        ["restore", "examples/noisy_digit.png", "-o", "x.txt"],
        ["degrade", "missing.png", "-o", "x.png", "--kind", "noise"],
    ],
)
def test_bad_paths_and_model_names_are_refused_before_torch_loads(args, tmp_path):
    import time

    root = Path(__file__).resolve().parents[1]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", REFUSE, *args], capture_output=True, text=True, cwd=root)
    refused = time.perf_counter() - start
    assert done.stdout.split() == ["False", "2" if "nosuchmodel" not in args else "3"], done.stdout + done.stderr
    assert done.stderr.startswith("error:") and len(done.stderr.strip().splitlines()) == 1
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    assert refused < 0.5 * (time.perf_counter() - start)  # the same machine, side by side
