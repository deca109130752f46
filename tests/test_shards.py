"""Folder runs sharded across torchrun's processes (files/shards.py): 2 gloo ranks on CPU write the
same files as one process."""

import os
import subprocess
import sys

import numpy as np
import torch
from conftest import write_png
from PIL import Image

from lmppm_cli.core.world import World
from lmppm_cli.files.shards import rank_device, share


def test_shares_are_disjoint_cover_every_job_and_are_balanced():
    jobs = list(range(11))
    parts = [share(jobs, World(rank, 3)) for rank in range(3)]
    assert sorted(j for p in parts for j in p) == jobs and [len(p) for p in parts] == [4, 4, 3]
    assert share(jobs, World()) == jobs
    assert rank_device(torch.device("cpu"), World(1, 2, 1)) == torch.device("cpu")


def test_torchrun_with_two_gloo_ranks_writes_the_files_of_one_process(tiny_model_file, tmp_path):
    rng = np.random.default_rng(0)
    for i in range(7):
        write_png(tmp_path / "in" / f"{i}.png", (rng.random((12 + i, 12)) * 255).astype(np.uint8))
    (tmp_path / "in" / "broken.png").write_bytes(b"not an image")
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    args = ["restore", str(tmp_path / "in"), "--model", str(tiny_model_file), "--device", "cpu"]
    one = subprocess.run(
        [sys.executable, "-m", "lmppm_cli", *args, "-o", str(tmp_path / "one")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "lmppm_cli",
            *args,
            "-o",
            str(tmp_path / "two"),
            "--report",
            str(tmp_path / "two.csv"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert one.returncode == 1 and "restored 7 file(s), 1 failed." in one.stdout, one.stderr
    assert "restored 7 file(s), 1 failed." in two.stdout, two.stdout + two.stderr  # one summary, from rank 0
    assert two.stdout.count("restored") == 1 and two.returncode == 1  # torchrun passes the partial failure on
    assert [line for line in two.stderr.splitlines() if line.startswith("failed:")] == [
        f"failed: {tmp_path / 'in' / 'broken.png'} is not an image file Pillow can read."
    ]
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "two").iterdir()) and len(names) == 7
    for name in names:
        a = np.asarray(Image.open(tmp_path / "one" / name), dtype=int)
        b = np.asarray(Image.open(tmp_path / "two" / name), dtype=int)
        assert np.abs(a - b).max() <= 1  # the same up to float rounding of differently batched kernels
    rows = (tmp_path / "two.csv").read_text().splitlines()
    assert len(rows) == 1 + 8 and sum("is not an image file" in row for row in rows) == 1  # the failed file too
