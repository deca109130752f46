"""Score restorers as a user would meet them: held-out clean images saved as 8-bit PNG files, noised
with `lmppm degrade`, restored with `lmppm restore` (each method a separate CLI run), and scored with
scikit-image's PSNR and SSIM (data range 1) against the clean PNGs. Prints one Markdown table.

    uv run python examples/user_check.py digits 0.4 0.7 0.85 --n 200
    uv run python examples/user_check.py faces 0.2 0.3
    uv run python examples/user_check.py photos 0.1 0.2     # coffee (test) and scikit-learn's two photos (outside check)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lmppm_cli.files.data import lfw_faces, mnist_5k, photo_tensor
from lmppm_cli.files.images import save_image, tensor_to_image

METHODS = {  # domain -> row label -> extra `lmppm restore` arguments
    "digits": {"LMPPM (mnist)": [], "DAE (mnist-dae)": ["--method", "dae"]},
    "faces": {"LMPPM (faces)": ["--model", "faces"], "DAE (faces-dae)": ["--model", "faces-dae", "--method", "dae"]},
    "photos": {
        "default (no --model)": [],
        "LMPPM (photos)": ["--model", "photos"],
        "DAE (photos-dae)": ["--model", "photos-dae", "--method", "dae"],
    },
}
# colour photos no bundled model saw: the test photo, and scikit-learn's, never used for any choice
PHOTOS = {
    "coffee": lambda: __import__("skimage.data").data.coffee(),
    "china": lambda: __import__("sklearn.datasets").datasets.load_sample_image("china.jpg"),
    "flower": lambda: __import__("sklearn.datasets").datasets.load_sample_image("flower.jpg"),
}
CLASSICAL = {"BM3D": ["--method", "bm3d"], "NL-means": ["--method", "nlmeans"], "wavelet": ["--method", "wavelet"]}


def held_out(domain: str, n: int):
    if domain == "photos":
        return [photo_tensor(load()) for load in PHOTOS.values()]
    images = mnist_5k().test.images if domain == "digits" else lfw_faces().test.images
    idx = np.linspace(0, len(images) - 1, min(n, len(images))).round().astype(int)
    return images[idx]


def lmppm(*args) -> None:
    subprocess.run([sys.executable, "-m", "lmppm_cli", *map(str, args)], check=True, capture_output=True)


def score(clean_dir: Path, out_dir: Path) -> tuple[float, float]:
    p, s = [], []
    for f in sorted(clean_dir.glob("*.png")):
        a = np.asarray(Image.open(f), np.float64) / 255
        b = np.asarray(Image.open(out_dir / f.name), np.float64) / 255
        p.append(peak_signal_noise_ratio(a, b, data_range=1.0))
        s.append(structural_similarity(a, b, data_range=1.0, channel_axis=-1 if a.ndim == 3 else None))
    return float(np.mean(p)), float(np.mean(s))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("domain", choices=METHODS)
    ap.add_argument("sigmas", nargs="+", type=float)
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()
    rows = {**METHODS[args.domain], **CLASSICAL}
    table: dict[str, list[str]] = {label: [] for label in ["noisy input", *rows]}
    with tempfile.TemporaryDirectory() as tmp:
        clean = Path(tmp) / "clean"
        clean.mkdir()
        images = held_out(args.domain, args.n)
        for i, x in enumerate(images):
            save_image(tensor_to_image(x), clean / f"{i:04d}.png")
        for sigma in args.sigmas:
            noisy = Path(tmp) / f"noisy-{sigma}"
            lmppm("degrade", clean, "-o", noisy, "--kind", "noise", "--severity", sigma, "--seed", 0)
            table["noisy input"].append("{:.2f} / {:.3f}".format(*score(clean, noisy)))
            for label, extra in rows.items():
                out = Path(tmp) / f"{label}-{sigma}".replace(" ", "_")
                start = time.perf_counter()
                lmppm("restore", noisy, "-o", out, "--device", "cpu", *extra)
                seconds = time.perf_counter() - start
                table[label].append("{:.2f} / {:.3f}".format(*score(clean, out)) + f" ({seconds:.0f} s)")
    print(
        f"| {args.domain}, {len(images)} held-out images | "
        + " | ".join(f"sigma {s:g}: PSNR / SSIM (time)" for s in args.sigmas)
        + " |"
    )
    print("|---|" + "---|" * len(args.sigmas))
    for label, cells in table.items():
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
