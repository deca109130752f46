"""The README's before/after figures: held-out images of each domain, degraded with Gaussian noise, restored
by the model `lmppm restore` picks for them (lmppm_cli.pick), beside the original. The photo figure adds
blind BM3D (`lmppm restore --method bm3d`), which is ahead on photos.

    uv run python examples/before_after.py      # writes examples/before_after_{digits,faces,photo}.png
    uv run python examples/before_after.py --quick --out DIR   # 2 images per domain, a 64x64 photo crop

Rows (columns for the single photo): degraded | restored (| BM3D) | original. PSNR / SSIM (scikit-image's definitions via torchmetrics,
data range 1) are the means over the images shown, printed and quoted in the README.
"""

import argparse
from pathlib import Path

import skimage.data
import torch
from torchvision.utils import make_grid

import lmppm_cli
from lmppm_cli.core.degradations import gaussian_noise
from lmppm_cli.core.metrics import psnr, ssim
from lmppm_cli.files.data import lfw_faces, mnist_5k, photo_tensor
from lmppm_cli.files.images import save_image, tensor_to_image
from lmppm_cli.methods.classical import denoise

parser = argparse.ArgumentParser(description="The README's before/after figures.")
parser.add_argument("--out", default=str(Path(__file__).parent))
parser.add_argument("--quick", action="store_true", help="2 images per domain and a 64x64 photo crop")
args = parser.parse_args()
here, count, side = Path(args.out), 2 if args.quick else 8, 64 if args.quick else 256


def figure(name: str, clean: torch.Tensor, sigma: float, bm3d: bool = False) -> None:
    noisy = gaussian_noise(clean, sigma, torch.Generator().manual_seed(0))
    model, choice = lmppm_cli.pick(noisy[0], device="cpu")
    restored = torch.stack([model.restore(x) for x in noisy])
    rows = {"degraded": noisy, f"restored ({model.name})": restored}
    if bm3d:
        rows["BM3D"] = torch.stack([denoise(x.unsqueeze(0), "bm3d")[0] for x in noisy])
    scores = {k: f"{psnr(v, clean).mean():.2f} dB / {ssim(v, clean).mean():.3f}" for k, v in rows.items()}
    shown = torch.cat([*rows.values(), clean])
    if shown.shape[-1] < 64:  # small images shown 3x larger, pixels kept sharp
        shown = shown.repeat_interleave(3, dim=-1).repeat_interleave(3, dim=-2)
    grid = make_grid(shown, nrow=len(clean) if len(clean) > 1 else len(shown), padding=2, pad_value=1.0)
    save_image(tensor_to_image(grid if clean.shape[1] == 3 else grid[:1]), here / f"before_after_{name}.png")
    print(
        f"{name}, noise {sigma}, {len(clean)} held-out images, picked {model.name} ({choice.reason}):",
        "; ".join(f"{k} {v}" for k, v in scores.items()),
    )


figure("digits", mnist_5k().test.images[::125][:count], 0.7)
figure("faces", lfw_faces().test.images[:count], 0.2)
coffee = photo_tensor(skimage.data.coffee())
figure("photo", coffee[:, 60 : 60 + side, 120 : 120 + side].unsqueeze(0), 0.1, bm3d=True)
