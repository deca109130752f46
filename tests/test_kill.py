"""Runs killed with SIGKILL (issue 13): a training run resumes from its last checkpoint and ends with the
weights of a run that was never killed; a folder restore finishes with --skip-existing, every output
written exactly once and whole."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from conftest import blob_images, write_png
from PIL import Image

from lmppm_cli.files.weights import read_metadata, read_tensors

ENV = os.environ | {"OMP_NUM_THREADS": "1"}
TRAIN = [
    "--epochs",
    "20",
    "--image-size",
    "12",
    "--latent-dim",
    "4",
    "--widths",
    "8,16",
    "--batch-size",
    "8",
    "--patience",
    "50",
    "--no-calibrate",
    "--device",
    "cpu",
    "--seed",
    "1",
]


def _lmppm(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lmppm_cli", *map(str, args)], capture_output=True, text=True, env=ENV, timeout=600
    )


def _epoch_of(checkpoint: Path) -> int:
    try:
        return json.loads(read_metadata(checkpoint)["lmppm.train_state"])["epoch"]
    except Exception:  # noqa: BLE001 - not written yet, or being replaced
        return 0


def _folder(root: Path, n: int) -> Path:
    for i, img in enumerate(blob_images(n, size=12, seed=4)):
        write_png(root / f"{i:03d}.png", (img[0].numpy() * 255).astype(np.uint8))
    return root


def test_training_killed_mid_run_resumes_to_the_weights_of_an_unkilled_run(tmp_path):
    data = _folder(tmp_path / "data", 120)  # ~0.2 s an epoch: the kill lands many epochs before the end
    straight = _lmppm("train", data, "-o", tmp_path / "straight", *TRAIN)
    assert straight.returncode == 0, straight.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "lmppm_cli", "train", str(data), "-o", str(tmp_path / "killed"), *TRAIN],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    target = random.Random(0).randint(1, 4)
    deadline = time.time() + 300
    while (
        _epoch_of(tmp_path / "killed" / "checkpoint.safetensors") < target
        and time.time() < deadline
        and proc.poll() is None
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGSTOP)  # held inside the next epoch however fast the machine (issue 23)
    assert proc.poll() is None, "the run ended before the kill could land"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "model.safetensors").exists(), "killed before the end"
    done_before = _epoch_of(tmp_path / "killed" / "checkpoint.safetensors")
    assert done_before >= target and not list((tmp_path / "killed").glob("*.part*"))
    resumed = _lmppm("train", data, "-o", tmp_path / "killed", *TRAIN, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert summary["epochs_run"] == 20 and [h["epoch"] for h in summary["history"]] == list(range(1, 21))
    a, _ = read_tensors(tmp_path / "straight" / "model.safetensors")
    b, _ = read_tensors(tmp_path / "killed" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


FILES = 2000  # at batch 4, hundreds of batches are left when the signal lands, on any machine


def _restore_until_50_written(tmp_path: Path, seed: int, **popen):
    """FILES noise PNGs and a folder restore of them, stopped (SIGSTOP) once at least 50 results are
    written, so the test's signal lands mid-run however fast the machine: a run that raced to its end
    before the signal made these tests fail at random (issue 23). Resume it with SIGCONT."""
    src, out = tmp_path / "in", tmp_path / "out"
    rng = np.random.default_rng(seed)
    for i in range(FILES):
        write_png(src / f"{i:04d}.png", (rng.random((28, 28)) * 255).astype(np.uint8))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lmppm_cli",
            "restore",
            str(src),
            "-o",
            str(out),
            "-m",
            "mnist",
            "--batch-size",
            "4",
            "--device",
            "cpu",
        ],
        env=ENV,
        **popen,
    )
    deadline = time.time() + 300
    while (not out.exists() or len(list(out.glob("*.png"))) < 50) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGSTOP)
    assert proc.poll() is None and len(list(out.glob("*.png"))) < FILES - 100, (
        "the restore ended before it could be stopped"
    )
    return proc, src, out


def _alive(pid: int) -> bool:
    """A process that runs (an ended one not yet reaped is a zombie, state Z)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_folder_restore_killed_mid_run_finishes_with_skip_existing(tmp_path):
    proc, src, out = _restore_until_50_written(tmp_path, 0, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    assert len(workers) == 2  # the I/O worker processes (io_pool.io_pool)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while any(map(_alive, workers)) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(map(_alive, workers))  # they end with it, none left behind
    first = {p.name for p in out.glob("*.png") if not p.name.startswith(".")}
    assert not list(out.glob(".*")), "a killed worker left a temporary file"
    assert 0 < len(first) < FILES, len(first)
    again = _lmppm("restore", src, "-o", out, "-m", "mnist", "--batch-size", "16", "--device", "cpu", "--skip-existing")
    assert again.returncode == 0, again.stderr
    assert f"restored {FILES - len(first)} file(s)." in again.stdout
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in src.iterdir())  # every output once, no temporary file left
    for name in names[::97]:
        assert Image.open(out / name).size == (28, 28)


def _default_sigint() -> None:
    """In the child: Ctrl-C's default action, even where the tests run with SIGINT ignored (a background
    job of a non-interactive shell), which Python would otherwise inherit and keep."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_a_folder_restore_with_130_and_only_whole_files(tmp_path):
    proc, _, out = _restore_until_50_written(
        tmp_path,
        1,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_default_sigint,
    )
    proc.send_signal(signal.SIGCONT)  # hundreds of batches are still ahead of it
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground process group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err and "--skip-existing" in err and "Traceback" not in err
    assert not list(out.glob("*.part*")) and all(Image.open(p).size == (28, 28) for p in out.glob("*.png"))
