"""Throughput of a folder run against the in-memory rate (issue 14): writes N noisy held-out digits
(mnist-5k test split, repeated, noise 0.4) as PNG files, times `lmppm restore FOLDER -o OUT -m mnist` as
a whole process (start-up, reading, restoring, writing), and times the same restorer on the same images
held in memory at the same batch size (64, restore's default) in this process.

    uv run python examples/folder_speed.py [--n 10000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import lmppm_cli
from lmppm_cli.files.data import mnist_5k
from lmppm_cli.methods import restorer

BATCH = 64


def noisy_digits(n: int) -> torch.Tensor:
    test = mnist_5k().test.images
    clean = test.repeat(-(-n // len(test)), 1, 1, 1)[:n]
    return (clean + 0.4 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)


def in_memory_rate(x: torch.Tensor) -> float:
    fn = restorer(lmppm_cli.load("mnist", device="cpu").net)
    fn(x[:BATCH])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(x), BATCH):
        fn(x[i : i + BATCH])
    return len(x) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    x = noisy_digits(args.n)
    lmppm = shutil.which("lmppm") or sys.exit("the lmppm console script is not on PATH (run through `uv run`).")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for i, img in enumerate(x):
            Image.fromarray(np.rint(img[0].numpy() * 255).astype(np.uint8)).save(folder / f"{i:05d}.png")
        start = time.perf_counter()
        subprocess.run(
            [lmppm, "restore", str(folder), "-o", str(Path(tmp) / "out"), "-m", "mnist", "--device", "cpu"],
            check=True,
            capture_output=True,
        )
        folder_rate = args.n / (time.perf_counter() - start)
        written = len(list((Path(tmp) / "out").iterdir()))
    memory_rate = in_memory_rate(x)
    print(f"folder of {args.n} PNG digits, whole process: {folder_rate:,.0f} images/s ({written} files written)")
    print(f"same images in memory, batch {BATCH}: {memory_rate:,.0f} images/s")
    print(
        f"in-memory / folder: {memory_rate / folder_rate:.2f}x (target: within 2x); torch threads {torch.get_num_threads()}"
    )


if __name__ == "__main__":
    main()
