"""Noise, drawn in one place: Gaussian for training (Eq. 20's noisy samples), calibration and the noise
degradation of Table 6; and camera-like Poisson-Gaussian noise (not in the paper), whose variance grows
with the signal as a sensor's does, optionally stored as a JPEG as a camera stores it."""

from __future__ import annotations

import io
import math

import torch
from PIL import Image

# Camera-like range of (a, b) in Var = a x + b on a [0, 1] scale, each drawn log-uniformly: shot-noise
# gains whose standard deviation at mid-gray is about 0.007-0.07 and read noise of 0.001-0.03.
CAMERA_A = (1e-4, 1e-2)
CAMERA_B = (1e-6, 1e-3)
# JPEG qualities a training sample is stored at (`jpeg` share), drawn uniformly: cameras' usual range.
JPEG_QUALITY = (75, 95)


def noisy(x: torch.Tensor, sigma, generator: torch.Generator, share: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """Training samples x + eps, eps ~ N(0, sigma^2), clamped to [0, 1] (as the authors' code).

    `sigma` is sigma_d (the paper: one level) or a range (low, high[, power[, camera[, jpeg]]]): each sample then
    draws its own level low + (high - low) u^power, u ~ U(0, 1) (power 1: uniform), so the model meets
    every strength it may be asked to restore (blind); power > 1 gives low noise and clean inputs more
    weight. `camera` (0 to 1): that share of the samples gets Poisson-Gaussian noise instead
    (`camera_noise`, with a and b drawn over CAMERA_A and CAMERA_B). `jpeg` (0 to 1): that share of
    the noisy samples is then stored as a JPEG of a quality drawn over JPEG_QUALITY and read back.
    `share` = (rank, size): x holds rows rank::size of a global batch (torchrun); every rank draws the
    whole batch's noise and keeps its rows, so N processes see exactly the noise of one."""
    rank, size = share
    rows = len(x) * size
    eps = torch.randn((rows, *x.shape[1:]), generator=generator, device=generator.device)[rank::size].to(x.device)
    camera = jpeg = 0.0
    if isinstance(sigma, tuple):
        low, high, power, camera, jpeg = (*sigma, *(1.0, 0.0, 0.0)[len(sigma) - 2 :])
        u = torch.rand(rows, generator=generator, device=generator.device)[rank::size].to(x.device)
        sigma = (low + (high - low) * u**power).view(-1, *[1] * (x.ndim - 1))  # (B, 1, 1, 1)
    out = (x + sigma * eps).clamp(0.0, 1.0)
    if camera > 0:
        pick = (torch.rand(rows, generator=generator, device=generator.device)[rank::size] < camera).to(x.device)
        a, b = (_log_uniform(r, rows, generator)[rank::size].to(x.device) for r in (CAMERA_A, CAMERA_B))
        out = torch.where(pick.view(-1, *[1] * (x.ndim - 1)), camera_noise(x, a, b, generator), out)
    if jpeg > 0:
        out = _stored_as_jpeg(out, jpeg, generator, rank, size)
    return out


def training_pair(x: torch.Tensor, tcfg, generator: torch.Generator, share: tuple[int, int] = (0, 1)):
    """(input, target) of a training batch of clean images x under a TrainConfig: `noisy` (target x),
    with the `camera_pipeline` share of rows replaced by a camera's file and its noise-free output
    (core/camera.py). Without that share the draws are exactly those of `noisy`."""
    x_noisy = noisy(x, tcfg.training_noise, generator, share)
    if not tcfg.camera_pipeline:
        return x_noisy, x
    from lmppm_cli.core.camera import Camera

    return Camera(tcfg.camera_pipeline).sample(x, x_noisy, generator, share)


def _stored_as_jpeg(x: torch.Tensor, share: float, generator: torch.Generator, rank: int, size: int) -> torch.Tensor:
    """That share of the rows of x, each through a JPEG of a quality drawn over JPEG_QUALITY."""
    rows = len(x) * size
    pick = (torch.rand(rows, generator=generator, device=generator.device)[rank::size] < share).tolist()
    low, high = JPEG_QUALITY
    quality = torch.randint(low, high + 1, (rows,), generator=generator, device=generator.device)[rank::size].tolist()
    stored = [jpeg_round_trip(row.float().cpu(), q).to(x) if p else row for row, p, q in zip(x, pick, quality)]
    return torch.stack(stored)


def jpeg_round_trip(x: torch.Tensor, quality: int, subsampling: int = -1) -> torch.Tensor:
    """(C, H, W) in [0, 1], C 1 or 3 -> the same image after a JPEG of this quality and back (Pillow; colour
    with 4:2:0 chroma as cameras store it; `subsampling`: Pillow's 0 4:4:4, 1 4:2:2, 2 4:2:0, -1 its default), 8-bit."""
    from torchvision.transforms.functional import pil_to_tensor, to_pil_image  # here: torchvision is slow to load

    buffer = io.BytesIO()
    to_pil_image(x.mul(255).round().byte()).save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
    return pil_to_tensor(Image.open(buffer)).float().div(255.0)


def _log_uniform(bounds: tuple[float, float], n: int, generator: torch.Generator) -> torch.Tensor:
    low, high = math.log(bounds[0]), math.log(bounds[1])
    return (low + (high - low) * torch.rand(n, generator=generator, device=generator.device)).exp()


def camera_noise(x: torch.Tensor, a, b, generator: torch.Generator) -> torch.Tensor:
    """Poisson-Gaussian noise, a Poisson(x / a) + N(0, b), clamped to [0, 1]: mean x, variance a x + b
    (shot noise of gain a, read noise of variance b). `a`, `b`: numbers, or one per image (B,)."""
    shape = (-1, *[1] * (x.ndim - 1))
    a = torch.as_tensor(a, dtype=x.dtype, device=x.device).reshape(shape)
    b = torch.as_tensor(b, dtype=x.dtype, device=x.device).reshape(shape)
    on = generator.device
    counts = torch.poisson((x / a).to(on), generator=generator).to(x.device)
    read = torch.randn(x.shape, generator=generator, device=on).to(x.device)
    return (a * counts + b.sqrt() * read).clamp(0.0, 1.0)
