"""A battery of hostile cases through the real command line on real files (issue 13). For each: the exit
code of its class, one line on stderr that says what is wrong, no traceback, every input file unchanged
(hash before and after), nothing written where the command was refused, no temporary file left behind."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_png
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from lmppm_cli.cli import app
from lmppm_cli.files.weights import CONFIG_KEY, read_tensors

USAGE, PARTIAL, MODEL = 2, 1, 3


def _digit(path: Path, size=(28, 28)) -> None:
    arr = np.zeros((size[1], size[0]), np.uint8)
    arr[size[1] // 4 : 3 * size[1] // 4, size[0] // 2 - 2 : size[0] // 2 + 2] = 255
    write_png(path, arr)


def _model_with(root: Path, tensors: dict, meta: dict, name: str) -> str:
    save_file(tensors, root / name, metadata=meta)
    return str(root / name)


def _setup(tmp: Path, tiny: Path) -> dict[str, str]:
    """The files the cases use; every one of them under in/ (hashed) or models/."""
    inp, models = tmp / "in", tmp / "models"
    models.mkdir(parents=True)
    _digit(inp / "a.png")
    _digit(inp / "b.png")
    _digit(inp / "sub" / "c.png")
    for i in range(3):
        _digit(inp / "train" / f"{i}.png", size=(28 + i, 28))
    (inp / "empty").mkdir()
    (inp / "notes.txt").write_text("not an image")
    (inp / "fake.png").write_text("not an image either")
    (inp / "zero.png").write_bytes(b"")
    good = (inp / "a.png").read_bytes()
    (inp / "truncated.png").write_bytes(good[: len(good) // 2])
    frames = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (0, 200)]
    frames[0].save(inp / "anim.gif", save_all=True, append_images=frames[1:])
    nan = np.ones((8, 8), np.float32)
    nan[1, 1] = np.nan
    Image.fromarray(nan, "F").save(inp / "nan.tif")
    Image.fromarray(np.full((8, 8), 1e6, np.float32), "F").save(inp / "huge.tif")
    _digit(inp / "big.png", size=(400, 400))  # a "bomb" once the pixel limit is lowered below
    os.mkfifo(inp / "pipe.png")
    (inp / "dir.png").mkdir()
    _digit(inp / "traj" / "x.png")
    _digit(inp / "traj" / "x.trajectory.png")
    _digit(inp / "nested" / "out" / "a.png")  # the user's own file, in what a case picks as its output folder
    _digit(inp / "nested" / "a.png")
    tensors, meta = read_tensors(tiny)
    config = json.loads(meta[CONFIG_KEY])
    broken = {k: v.clone() for k, v in tensors.items()}
    broken[next(k for k, v in broken.items() if v.is_floating_point())].view(-1)[0] = float("inf")
    raw = tiny.read_bytes()
    (models / "truncated.safetensors").write_bytes(raw[: len(raw) // 2])
    (models / "header.safetensors").write_bytes(struct.pack("<Q", 2**40) + b"{}")
    (models / "text.safetensors").write_text("hello")
    return {
        "tiny": str(tiny),
        "nan": _model_with(models, broken, meta, "nan.safetensors"),
        "nometa": _model_with(models, {"w": torch.zeros(2)}, {}, "nometa.safetensors"),
        "badtype": _model_with(
            models,
            tensors,
            {CONFIG_KEY: json.dumps({**config, "autoencoder": {**config["autoencoder"], "latent_dim": "four"}})},
            "badtype.safetensors",
        ),
        "absurd": _model_with(
            models,
            tensors,
            {CONFIG_KEY: json.dumps({**config, "autoencoder": {**config["autoencoder"], "width": 10**9}})},
            "absurd.safetensors",
        ),
        "listcfg": _model_with(models, tensors, {CONFIG_KEY: "[1, 2, 3]"}, "listcfg.safetensors"),
        "twoch": _model_with(
            models,
            tensors,
            {CONFIG_KEY: json.dumps({**config, "autoencoder": {**config["autoencoder"], "channels": 2}})},
            "twoch.safetensors",
        ),
        "badjson": _model_with(models, tensors, {CONFIG_KEY: "{not json"}, "badjson.safetensors"),
        "truncated": str(models / "truncated.safetensors"),
        "header": str(models / "header.safetensors"),
        "text": str(models / "text.safetensors"),
    }


R = ["restore"]
CASES = {  # name: (arguments, with {in}, {out} and {m_NAME} filled in; exit code; what stderr must say)
    "missing file": (R + ["{in}/nope.png", "-o", "{out}/x.png"], USAGE, "does not exist"),
    "stdin": (R + ["-", "-o", "{out}/x.png"], USAGE, "not standard input"),
    "fifo": (R + ["{in}/pipe.png", "-o", "{out}/x.png"], USAGE, "not a regular file"),
    "empty folder": (R + ["{in}/empty", "-o", "{out}"], USAGE, "holds no image files"),
    "folder named like an image": (R + ["{in}/dir.png", "-o", "{out}"], USAGE, "holds no image files"),
    "glob matching nothing": (R + ["{in}/*.jpeg", "-o", "{out}"], USAGE, "matches no files"),
    "output is the input": (R + ["{in}/a.png", "-o", "{in}/a.png"], USAGE, "one of the inputs"),
    "output is the input folder": (R + ["{in}", "-o", "{in}"], USAGE, "is one of the inputs"),
    "output is a text file": (R + ["{in}/a.png", "-o", "{in}/notes.txt"], USAGE, "not an image"),
    "two inputs, one output file": (R + ["{in}/a.png", "{in}/b.png", "-o", "{out}/x.png"], USAGE, "names one file"),
    "output folder inside the input holds a user file": (
        R + ["{in}/nested", "-o", "{in}/nested/out"],
        USAGE,
        "lies inside an input folder",
    ),
    "trajectory strip over another output": (
        R + ["{in}/traj", "-o", "{out}", "--save-trajectory"],
        USAGE,
        "would both be written",
    ),
    "not an image": (R + ["{in}/fake.png", "-o", "{out}/x.png"], PARTIAL, "not an image file Pillow can read"),
    "output under a file": (R + ["{in}/a.png", "-o", "{in}/notes.txt/x.png"], PARTIAL, "could not write"),
    "zero bytes": (R + ["{in}/zero.png", "-o", "{out}/x.png"], PARTIAL, "not an image file Pillow can read"),
    "truncated image": (R + ["{in}/truncated.png", "-o", "{out}/x.png"], PARTIAL, "could not be read"),
    "animation": (R + ["{in}/anim.gif", "-o", "{out}/x.gif"], PARTIAL, "holds 2 frames"),
    "NaN pixels": (R + ["{in}/nan.tif", "-o", "{out}/x.tif"], PARTIAL, "NaN or infinite"),
    "float pixels off scale": (R + ["{in}/huge.tif", "-o", "{out}/x.tif"], PARTIAL, "0-1 or a 0-255 scale"),
    "decompression bomb": (R + ["{in}/big.png", "-o", "{out}/x.png"], PARTIAL, "too large to decode safely"),
    "negative steps": (R + ["{in}/a.png", "-o", "{out}/x.png", "--steps", "-1"], USAGE, "--steps"),
    "alpha above 1": (R + ["{in}/a.png", "-o", "{out}/x.png", "--alpha", "2"], USAGE, "--alpha"),
    "alpha + beta >= 1": (
        R + ["{in}/a.png", "-o", "{out}/x.png", "--alpha", "0.6", "--beta", "0.5"],
        USAGE,
        "alpha + beta must be below 1",
    ),
    "unknown method": (R + ["{in}/a.png", "-o", "{out}/x.png", "--method", "magic"], USAGE, "'magic' is not one of"),
    "unknown schedule": (R + ["{in}/a.png", "-o", "{out}/x.png", "--schedule", "sideways"], USAGE, "unknown schedule"),
    "negative top-k": (R + ["{in}/a.png", "-o", "{out}/x.png", "--top-k", "-2"], USAGE, "--top-k"),
    "zero batch": (R + ["{in}/a.png", "-o", "{out}/x.png", "--batch-size", "0"], USAGE, "--batch-size"),
    "negative tile": (R + ["{in}/a.png", "-o", "{out}/x.png", "--tile", "-3"], USAGE, "--tile"),
    "absent GPU": (R + ["{in}/a.png", "-o", "{out}/x.png", "--device", "cuda:7"], USAGE, "cuda:7"),
    "unknown device": (R + ["{in}/a.png", "-o", "{out}/x.png", "--device", "tpu"], USAGE, "'tpu' is not a device"),
    "unknown precision": (
        R + ["{in}/a.png", "-o", "{out}/x.png", "--precision", "fp8", "--device", "cpu"],
        USAGE,
        "'fp8' is not one of",
    ),
    "half precision on CPU": (
        R + ["{in}/a.png", "-o", "{out}/x.png", "--precision", "fp16", "--device", "cpu"],
        USAGE,
        "needs a GPU",
    ),
    "report of unknown format": (
        R + ["{in}/a.png", "-o", "{out}/x.png", "--report", "{out}/r.txt"],
        USAGE,
        ".csv, .json or .html",
    ),
    "zero threads": (["--threads", "0"] + R + ["{in}/a.png", "-o", "{out}/x.png"], USAGE, "--threads"),
    "unknown model": (R + ["{in}/a.png", "-o", "{out}/x.png", "-m", "no-such-model"], MODEL, "unknown model"),
    "model file missing": (
        R + ["{in}/a.png", "-o", "{out}/x.png", "-m", "{in}/none.safetensors"],
        MODEL,
        "no model file",
    ),
    "model is text": (R + ["{in}/a.png", "-o", "{out}/x.png", "-m", "{m_text}"], MODEL, "not a readable safetensors"),
    "model truncated": (
        R + ["{in}/a.png", "-o", "{out}/x.png", "-m", "{m_truncated}"],
        MODEL,
        "not a readable safetensors",
    ),
    "model header too large": (
        R + ["{in}/a.png", "-o", "{out}/x.png", "-m", "{m_header}"],
        MODEL,
        "not a readable safetensors",
    ),
    "safetensors without lmppm metadata": (
        R + ["{in}/a.png", "-o", "{out}/x.png", "-m", "{m_nometa}"],
        MODEL,
        "not an lmppm model",
    ),
    "NaN weights": (R + ["{in}/a.png", "-o", "{out}/x.png", "-m", "{m_nan}"], MODEL, "NaN or infinite weights"),
    "config field of the wrong type": (
        R + ["{in}/a.png", "-o", "{out}/x.png", "-m", "{m_badtype}"],
        MODEL,
        "autoencoder.latent_dim",
    ),
    "absurd size in the config": (
        R + ["{in}/a.png", "-o", "{out}/x.png", "-m", "{m_absurd}"],
        MODEL,
        "autoencoder.width",
    ),
    "config not an object": (R + ["{in}/a.png", "-o", "{out}/x.png", "-m", "{m_listcfg}"], MODEL, "not a JSON object"),
    "config not JSON": (
        R + ["{in}/a.png", "-o", "{out}/x.png", "-m", "{m_badjson}"],
        MODEL,
        "configuration is unreadable",
    ),
    "two-channel model": (R + ["{in}/a.png", "-o", "{out}/x.png", "-m", "{m_twoch}"], MODEL, "gray (1) or RGB (3)"),
    "revision for a bundled model": (
        R + ["{in}/a.png", "-o", "{out}/x.png", "-m", "mnist", "--revision", "v2"],
        MODEL,
        "applies to Hugging Face Hub",
    ),
    "method for another kind of model": (
        R + ["{in}/a.png", "-o", "{out}/x.png", "-m", "{m_tiny}", "--method", "dae"],
        MODEL,
        "needs a dae model",
    ),
    "restore with a classifier": (
        R + ["{in}/a.png", "-o", "{out}/x.png", "-m", "mnist-classifier"],
        MODEL,
        "cannot restore",
    ),
    "generate with a classifier": (
        ["generate", "--n", "2", "-o", "{out}", "-m", "mnist-classifier"],
        MODEL,
        "cannot generate",
    ),
    "generate into a file": (["generate", "--n", "2", "-o", "{in}/notes.txt"], USAGE, "is a file"),
    "generate from nowhere": (["generate", "--n", "2", "-o", "{out}", "--start", "sideways"], USAGE, "--start"),
    "generate zero samples": (["generate", "--n", "0", "-o", "{out}"], USAGE, "--n"),
    "degrade, unknown kind": (["degrade", "{in}/a.png", "-o", "{out}/x.png", "--kind", "melt"], USAGE, "melt"),
    "degrade, unknown severity": (
        ["degrade", "{in}/a.png", "-o", "{out}/x.png", "--kind", "noise", "--severity", "extreme"],
        USAGE,
        "extreme",
    ),
    "degrade, missing input": (
        ["degrade", "{in}/nope.png", "-o", "{out}/x.png", "--kind", "noise"],
        USAGE,
        "does not exist",
    ),
    "degrade a bomb": (
        ["degrade", "{in}/big.png", "-o", "{out}/x.png", "--kind", "noise"],
        PARTIAL,
        "too large to decode safely",
    ),
    "train, zero epochs": (["train", "{in}/train", "-o", "{out}", "--epochs", "0"], USAGE, "--epochs"),
    "train, infinite learning rate": (["train", "{in}/train", "-o", "{out}", "--lr", "inf"], USAGE, "--lr"),
    "train, NaN lambdas": (["train", "{in}/train", "-o", "{out}", "--lambdas", "1,1,nan,1,1,1"], USAGE, "--lambdas"),
    "train, backwards noise range": (
        ["train", "{in}/train", "-o", "{out}", "--sigma-range", "0.9,0.1"],
        USAGE,
        "--sigma-range",
    ),
    "train into a file": (["train", "{in}/train", "-o", "{in}/notes.txt", "--epochs", "1"], USAGE, "is a file"),
    "train, resume with nothing": (["train", "{in}/train", "-o", "{out}", "--resume"], USAGE, "nothing to resume"),
    "train, unknown dataset": (["train", "not-a-dataset", "-o", "{out}"], USAGE, "neither a folder"),
    "bench, unknown suite": (["bench", "--suite", "nosuch", "-o", "{out}"], USAGE, "'nosuch' is not one of"),
    "export, missing source": (["export", "{in}/none", "-o", "{out}"], MODEL, "unknown model"),
}


def _hashes(root: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tiny_model_file, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    return root, _setup(root, Path(tiny_model_file))


def test_the_battery_has_at_least_sixty_distinct_cases():
    assert len(CASES) >= 60 and len({tuple(args) for args, _, _ in CASES.values()}) == len(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_case(name, world, monkeypatch):
    root, models = world
    args, code, says = CASES[name]
    out = root / "out" / name.replace(" ", "-").replace("/", "-")
    fill = {"in": str(root / "in"), "out": str(out)} | {f"m_{k}": v for k, v in models.items()}
    argv = [a.format(**fill) for a in args]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)  # big.png (160,000 pixels) is over twice this
    before = _hashes(root / "in") | _hashes(root / "models")
    result = CliRunner().invoke(app, argv, env={"COLUMNS": "300"})
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    flat = " ".join(result.stderr.split())
    assert says in flat, flat
    lines = [line for line in result.stderr.splitlines() if line.startswith(("error:", "failed:"))]
    assert len(lines) == 1 or code == USAGE and not lines and "Usage" in result.stderr, result.stderr
    assert _hashes(root / "in") | _hashes(root / "models") == before  # no input touched
    assert not list(root.rglob("*.part*")), "a temporary file was left behind"
    if code in (USAGE, MODEL):
        written = [p for p in out.rglob("*")] if out.exists() else []
        assert not written, written
