"""Tiled restoration of a photo larger than the model: scikit-image's `coffee` (never trained on),
resized to 1000x700, Gaussian noise sigma 0.2 (seed 0), restored by `lmppm restore` with the bundled
RGB model. Prints PSNR, seconds and the peak resident memory of the restore process; writes crops at
full size (noisy | restored | clean) to examples/tiled_coffee_noise-0.2.png.

    uv run python examples/tiled_photo.py [--device cpu|cuda] [--batch-size N] [--quick --out DIR]

--quick: the photo resized to 250x175 and one 100x100 crop (checks that the script runs).
"""

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage.data
import torch
from PIL import Image

from lmppm_cli.core.degradations import gaussian_noise
from lmppm_cli.core.metrics import psnr
from lmppm_cli.files.images import read_image, save_image, tensor_to_image

parser = argparse.ArgumentParser()
parser.add_argument("--device", default="cpu")
parser.add_argument("--batch-size", default="64")
parser.add_argument("--quick", action="store_true", help="a 250x175 photo and one crop")
parser.add_argument("--out", default=str(Path(__file__).parent))
args = parser.parse_args()
size, side = ((250, 175), 100) if args.quick else ((1000, 700), 300)
CROPS = ((50, 40),) if args.quick else ((120, 330), (400, 260), (700, 420))  # (x, y) of the crops shown

clean = Image.fromarray(skimage.data.coffee()).resize(size, Image.BICUBIC)
clean = torch.from_numpy(np.array(clean)).permute(2, 0, 1).float().div(255.0)
noisy = gaussian_noise(clean[None], 0.2, torch.Generator().manual_seed(0))[0]
with tempfile.TemporaryDirectory() as tmp:
    src, dst = Path(tmp) / "noisy.png", Path(tmp) / "restored.png"
    save_image(tensor_to_image(noisy), src)
    noisy = read_image(src)[0]  # as the tool reads it (8-bit)
    start = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "lmppm_cli",
        "restore",
        str(src),
        "-o",
        str(dst),
        "--model",
        "photos",
        "--device",
        args.device,
        "--batch-size",
        args.batch_size,
    ]
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - start
    restored = read_image(dst)[0]
peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(
    f"PSNR noisy {psnr(noisy[None], clean[None]).item():.2f} dB, restored {psnr(restored[None], clean[None]).item():.2f} dB; "
    f"{seconds:.1f} s, peak RSS {peak_mib:.0f} MiB ({args.device}, batch {args.batch_size})"
)
rows = [torch.cat([im[:, y : y + side, x : x + side] for im in (noisy, restored, clean)], dim=2) for x, y in CROPS]
save_image(tensor_to_image(torch.cat(rows, dim=1)), Path(args.out) / "tiled_coffee_noise-0.2.png")
