"""Real CLI runs on real files: train, restore, generate, and one-sentence errors for bad input."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import write_png
from PIL import Image
from typer.testing import CliRunner

from lmppm_cli import __version__
from lmppm_cli.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_sentence_error(result):
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def _digit_like(path, size=(28, 28), mode="L"):
    arr = np.zeros((size[1], size[0]), np.uint8)
    arr[size[1] // 4 : 3 * size[1] // 4, size[0] // 2 - 2 : size[0] // 2 + 2] = 255
    img = Image.fromarray(arr)
    if mode == "RGBA":
        img = img.convert("RGBA")
        img.putalpha(Image.fromarray(np.tile(np.arange(size[0], dtype=np.uint8) * 5, (size[1], 1))))
    elif mode == "I;16":
        img = Image.fromarray(arr.astype(np.uint16) * 257)
    elif mode != "L":
        img = img.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.stdout


def test_train_one_epoch_on_a_folder_then_restore_and_generate_with_it(tmp_path):
    r = np.random.default_rng(0)
    for i in range(20):
        write_png(tmp_path / "data" / f"{i}.png", (r.random((16, 16)) * 255).astype(np.uint8))
    result = run(
        "train",
        tmp_path / "data",
        "-o",
        tmp_path / "run",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--image-size",
        "12",
        "--latent-dim",
        "4",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    assert "epoch   1" in result.stderr and "recon" in result.stderr
    model = tmp_path / "run" / "model.safetensors"
    assert model.is_file() and (tmp_path / "run" / "summary.md").is_file()
    _digit_like(tmp_path / "x.png", size=(20, 20))
    assert run("restore", tmp_path / "x.png", "-o", tmp_path / "y.png", "-m", model).exit_code == 0
    assert Image.open(tmp_path / "y.png").size == (20, 20)
    result = run("generate", "--n", "4", "-o", tmp_path / "gen", "-m", model, "--seed", "1")
    assert result.exit_code == 0 and len(list((tmp_path / "gen").glob("sample_*.png"))) == 4


def test_restore_file_with_bundled_model_and_trajectory(tmp_path):
    _digit_like(tmp_path / "in.png")
    result = run(
        "restore",
        tmp_path / "in.png",
        "-o",
        tmp_path / "out.png",
        "--save-trajectory",
        "--steps",
        "3",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    out = Image.open(tmp_path / "out.png")
    assert out.size == (28, 28) and out.mode == "L"
    strip = Image.open(tmp_path / "out.trajectory.png")
    assert strip.size == (4 * 30 + 2, 32)  # z^1 .. z^4 decoded, 2 px padding


@pytest.mark.parametrize("mode,size", [("RGBA", (31, 17)), ("I;16", (40, 40)), ("P", (28, 28)), ("RGB", (13, 50))])
def test_restore_odd_modes_and_sizes_come_back_in_kind(tmp_path, mode, size):
    src = tmp_path / "in.png"
    _digit_like(src, size=size, mode=mode)
    result = run("restore", src, "-o", tmp_path / "out.png", "-m", "mnist", "--device", "cpu")
    assert result.exit_code == 0, result.output
    out, orig = Image.open(tmp_path / "out.png"), Image.open(src)
    assert out.size == orig.size and out.mode == orig.mode
    if mode == "RGBA":
        np.testing.assert_array_equal(np.asarray(out.getchannel("A")), np.asarray(orig.getchannel("A")))
    if mode in ("RGBA", "RGB", "P"):
        assert "converted to grayscale" in result.stderr


def test_restore_folder_keeps_names_and_survives_a_bad_file(tmp_path):
    for name in ("a.png", "sub/b.png", "sub/deeper/c.jpg"):
        _digit_like(tmp_path / "in" / name)
    (tmp_path / "in" / "sub" / "broken.png").write_text("this is text")
    result = run("restore", tmp_path / "in", "-o", tmp_path / "out", "--batch-size", "2")
    assert result.exit_code == 1
    for name in ("a.png", "sub/b.png", "sub/deeper/c.jpg"):
        assert (tmp_path / "out" / name).is_file()
    assert "broken.png" in result.stderr and "restored 3 file(s), 1 failed" in result.stdout


def test_output_never_overwrites_an_input(tmp_path):
    _digit_like(tmp_path / "in.png")
    before = (tmp_path / "in.png").read_bytes()
    assert "one of the inputs" in one_sentence_error(run("restore", tmp_path / "in.png", "-o", tmp_path / "in.png"))
    assert (tmp_path / "in.png").read_bytes() == before


def test_generate_is_reproducible_with_a_seed(tmp_path):
    for d in ("a", "b"):
        assert run("generate", "--n", "6", "-o", tmp_path / d, "--seed", "5", "--progression").exit_code == 0
    for f in ("sample_0000.png", "sample_0005.png", "grid.png", "progression.png"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_bad_inputs_get_one_sentence(tmp_path):
    _digit_like(tmp_path / "ok.png")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.safetensors").write_text("not a model")
    cases = {
        "does not exist": ("restore", tmp_path / "missing.png", "-o", tmp_path / "o.png"),
        "not an image file": ("restore", tmp_path / "notes.txt", "-o", tmp_path / "o.png"),
        "not a readable safetensors": (
            "restore",
            tmp_path / "ok.png",
            "-o",
            tmp_path / "o.png",
            "-m",
            tmp_path / "fake.safetensors",
        ),
        "unknown model": ("restore", tmp_path / "ok.png", "-o", tmp_path / "o.png", "-m", "nonexistent-model"),
        "is not a device": ("restore", tmp_path / "ok.png", "-o", tmp_path / "o.png", "--device", "tpu"),
        "CUDA is not available": ("restore", tmp_path / "ok.png", "-o", tmp_path / "o.png", "--device", "cuda:0"),
        "alpha + beta must be below 1": (
            "restore",
            tmp_path / "ok.png",
            "-o",
            tmp_path / "o.png",
            "--alpha",
            "0.6",
            "--beta",
            "0.5",
        ),
        "neither a folder": ("train", "not-a-dataset", "-o", tmp_path / "run"),
        "--image-size": ("train", "mnist-5k", "-o", tmp_path / "run", "--image-size", "big"),
    }
    for expected, args in cases.items():
        if expected == "CUDA is not available" and torch.cuda.is_available():
            continue
        result = run(*args)
        if expected == "not an image file":  # a single bad file is reported as failed, exit 1
            assert result.exit_code == 1 and expected in result.stderr and "Traceback" not in result.output
            continue
        assert expected in one_sentence_error(result), (expected, result.stderr)
    assert not (tmp_path / "o.png").exists()


def test_wrong_shapes_model_file_is_one_sentence(tiny_model_file, tmp_path):
    from conftest import tiny_config
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(tiny_model_file), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, tmp_path / "wrong.safetensors", metadata={"lmppm.config": tiny_config(latent_dim=9).to_json()})
    _digit_like(tmp_path / "ok.png")
    assert "does not match" in one_sentence_error(
        run("restore", tmp_path / "ok.png", "-o", tmp_path / "o.png", "-m", tmp_path / "wrong.safetensors")
    )


def test_console_script_runs_as_installed(tmp_path):
    exe = shutil.which("lmppm")
    assert exe, "the lmppm console script is not on PATH"
    _digit_like(tmp_path / "in.png")
    proc = subprocess.run(
        [exe, "restore", tmp_path / "in.png", "-o", tmp_path / "out.png"],
        capture_output=True,
        text=True,
        env=os.environ,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.png").is_file()


def test_restore_with_each_method_and_its_model(tiny_bundle, tmp_path):
    _digit_like(tmp_path / "in.png", size=(12, 12))
    for method, kind in (
        ("lmppm", "lmppm"),
        ("ablation-lmppm", "lmppm"),
        ("dae", "dae"),
        ("ablation-dae", "dae"),
        ("ldm", "ldm"),
    ):
        res = run(
            "restore",
            tmp_path / "in.png",
            "-o",
            tmp_path / f"{method}.png",
            "--method",
            method,
            "-m",
            tiny_bundle[kind],
        )
        assert res.exit_code == 0, (method, res.output)
        assert Image.open(tmp_path / f"{method}.png").size == (12, 12)
    assert "needs a ldm model" in one_sentence_error(
        run("restore", tmp_path / "in.png", "-o", tmp_path / "x.png", "--method", "ldm", "-m", tiny_bundle["lmppm"])
    )
    assert "Value error" not in one_sentence_error(run("degrade", "x.png", "-o", "y.png", "--kind", "nois"))
    assert "'gan' is not one of" in one_sentence_error(
        run("restore", tmp_path / "in.png", "-o", tmp_path / "x.png", "--method", "gan", "-m", tiny_bundle["lmppm"])
    )
    assert "cannot restore" in one_sentence_error(
        run("restore", tmp_path / "in.png", "-o", tmp_path / "x.png", "-m", tiny_bundle["classifier"])
    )


def test_generate_with_the_ldm_runs_its_chain(tiny_bundle, tmp_path):
    res = run("generate", "--n", "3", "-o", tmp_path / "g", "-m", tiny_bundle["ldm"], "--seed", "2")
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "g").glob("sample_*.png"))) == 3


def test_restoring_a_digit_does_not_import_the_metrics_or_torchvision(tmp_path):
    """Start-up: `lmppm restore` with an LMPPM model loads none of torchmetrics,
    scipy, matplotlib or torchvision (whose import pulls in torch._dynamo, ~1.5 s) (issue 14); a fresh
    process, so earlier tests' imports do not count."""
    code = (
        "import sys\nfrom lmppm_cli.cli import main\n"
        f"sys.argv = ['lmppm', 'restore', 'examples/noisy_digit.png', '-o', {str(tmp_path / 'x.png')!r}, '--device', 'cpu']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print(sorted(m for m in ('torchmetrics', 'scipy', 'matplotlib', 'torchvision', 'torch._dynamo') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]" and (tmp_path / "x.png").is_file()


def test_threads_option_and_passive_openmp_wait(tmp_path):
    before = torch.get_num_threads()
    try:
        result = run("--threads", "1", "restore", "examples/noisy_digit.png", "-o", tmp_path / "x.png", "-m", "mnist")
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    refused = run("--threads", "0", "restore", "examples/noisy_digit.png", "-o", tmp_path / "y.png")
    assert refused.exit_code == 2 and "Traceback" not in refused.output and not (tmp_path / "y.png").exists()
    probe = "import os, lmppm_cli.cli; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert (
        subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True).stdout.strip()
        == "PASSIVE"
    )
    mine = subprocess.run(
        [sys.executable, "-c", probe], env=env | {"OMP_WAIT_POLICY": "ACTIVE"}, capture_output=True, text=True
    )
    assert mine.stdout.strip() == "ACTIVE"


def test_a_bomb_a_pipe_and_stdin_are_named_and_the_rest_restored(tmp_path, monkeypatch):
    import os

    from PIL import Image as PILImage

    for name in ("a.png", "c.png"):
        _digit_like(tmp_path / "in" / name)
    _digit_like(tmp_path / "in" / "b.png", size=(100, 100))  # 10,000 pixels: over twice the limit below
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 2000)
    result = run("restore", tmp_path / "in", "-o", tmp_path / "out", "-m", "mnist")
    assert (
        result.exit_code == 1 and "restored 2 file(s), 1 failed." in result.output and "Traceback" not in result.output
    )
    assert "b.png is too large to decode safely" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]
    degraded = run("degrade", tmp_path / "in", "-o", tmp_path / "deg", "--kind", "noise", "--severity", "mild")
    assert degraded.exit_code == 1 and sorted(p.name for p in (tmp_path / "deg").iterdir()) == ["a.png", "c.png"]
    os.mkfifo(tmp_path / "pipe.png")
    assert "not a regular file" in one_sentence_error(run("restore", tmp_path / "pipe.png", "-o", tmp_path / "p.png"))
    assert "not standard input" in one_sentence_error(run("restore", "-", "-o", tmp_path / "s.png"))


def test_generate_with_a_classifier_model_is_one_sentence(tmp_path):
    assert "cannot generate" in one_sentence_error(
        run("generate", "--n", "2", "-o", tmp_path / "g", "-m", "mnist-classifier")
    )
    assert not (tmp_path / "g").exists()


def test_exit_codes_by_class_are_those_of_the_help(tmp_path):
    from lmppm_cli.core.errors import EXIT_CODES

    _digit_like(tmp_path / "a.png")
    (tmp_path / "broken.png").write_bytes(b"no")
    assert run("restore", tmp_path / "a.png", "-o", tmp_path / "o.png", "--steps", "-1").exit_code == 2  # usage
    assert run("restore", tmp_path / "nothing.png", "-o", tmp_path / "o.png").exit_code == 2  # input
    assert run("restore", tmp_path / "a.png", "-o", tmp_path / "o.png", "-m", "no-such-model").exit_code == 3  # model
    assert (
        run("restore", tmp_path / "a.png", tmp_path / "broken.png", "-o", tmp_path / "out", "-m", "mnist").exit_code
        == 1
    )  # partial
    assert (tmp_path / "out" / "a.png").is_file()
    shown = " ".join(run("--help").output.split())
    assert all(f"{code} {meaning.split()[0]}" in shown for code, meaning in EXIT_CODES.items())


def test_skip_existing_finishes_an_interrupted_folder_run(tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        _digit_like(tmp_path / "in" / name)
    assert run("restore", tmp_path / "in", "-o", tmp_path / "out", "-m", "mnist").exit_code == 0
    (tmp_path / "out" / "b.png").unlink()  # as if the run had been stopped before b.png
    kept = (tmp_path / "out" / "a.png").stat().st_mtime_ns
    again = run("restore", tmp_path / "in", "-o", tmp_path / "out", "-m", "mnist", "--skip-existing")
    assert again.exit_code == 0 and "restored 1 file(s)." in again.output
    assert (tmp_path / "out" / "b.png").is_file() and (tmp_path / "out" / "a.png").stat().st_mtime_ns == kept
    done = run("restore", tmp_path / "in", "-o", tmp_path / "out", "-m", "mnist", "--skip-existing")
    assert done.exit_code == 0 and "nothing to do" in done.output


def test_every_command_summary_in_the_top_level_help_is_a_whole_sentence_at_80_columns():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "80"}, terminal_width=80)
    commands = result.output.split("Commands:")[1].strip().splitlines()
    assert len(commands) == 8
    for line in commands:
        assert len(line) <= 80 and line.rstrip().endswith(".") and not line.rstrip().endswith("..."), line
