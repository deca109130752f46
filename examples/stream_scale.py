"""A folder of 100,000 images trained with `--stream` (issue 11): cache build time, epoch time and the
peak memory of the whole run, beside what the same images would take held in memory as floats.

Writes N random 64x64 crops of scikit-image's four training photos (the photo-patches training
photos; chelsea and coffee stay out) as PNG, JPEG and BMP files in nested folders, plus one file that is
no image. Then it runs, as a process of its own:

    lmppm train DIR -o RUN --stream --neighbours faiss --epochs 1 --no-calibrate --image-size 64 --channels 3

    uv run python examples/stream_scale.py [--n 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 64


def write_folder(root: Path, n: int) -> None:
    import skimage.data

    from lmppm_cli.files.data import PHOTOS, photo_tensor

    photos = [
        (photo_tensor(getattr(skimage.data, name)()) * 255).round().byte().permute(1, 2, 0).numpy()
        for name in PHOTOS["train"]
    ]
    rng = np.random.default_rng(0)
    for i in range(n):
        photo = photos[i % len(photos)]
        y, x = rng.integers(0, photo.shape[0] - SIZE), rng.integers(0, photo.shape[1] - SIZE)
        crop = np.ascontiguousarray(photo[y : y + SIZE, x : x + SIZE])
        folder = root / f"{i % 10}" / f"{i // 10 % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(crop).save(folder / f"{i:06d}.{('png', 'jpg', 'bmp')[i % 3]}")
    (root / "0" / "broken.png").write_bytes(b"not an image")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--keep", help="write the images here and keep them (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp) / "images"
        start = time.perf_counter()
        write_folder(root, args.n)
        print(f"wrote {args.n:,} files in {time.perf_counter() - start:.0f} s", flush=True)
        cmd = [
            sys.executable,
            "-m",
            "lmppm_cli",
            "train",
            str(root),
            "-o",
            str(Path(tmp) / "run"),
            "--stream",
            "--neighbours",
            "faiss",
            "--epochs",
            "1",
            "--no-calibrate",
            "--image-size",
            str(SIZE),
            "--channels",
            "3",
            "--latent-dim",
            "64",
            "--device",
            "cpu",
        ]
        start = time.perf_counter()
        run = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
        print(run.stderr[-1500:], run.stdout[-500:])
        summary = (Path(tmp) / "run" / "summary.md").read_text()
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        floats = args.n * 3 * SIZE * SIZE * 4 / 2**20
        print(summary)
        print(
            f"whole run {wall:.0f} s; peak memory of the training process {peak:,.0f} MiB; the images as float32 "
            f"in memory would be {floats:,.0f} MiB; cache {(Path(tmp) / 'run' / 'cache' / 'images.u8').stat().st_size / 2**20:,.0f} MiB"
        )
        assert run.returncode == 0, run.stderr[-2000:]


if __name__ == "__main__":
    main()
