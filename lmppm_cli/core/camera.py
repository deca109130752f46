"""A camera in code (not in the paper): what a camera writes of a scene, to train and bench on photos as
cameras make them. After Brooks et al. 2019 ("Unprocessing Images for Learned Raw Denoising"), a clean
sRGB photo is unprocessed into a camera's linear raw Bayer mosaic, gets the sensor's Poisson-Gaussian
noise there, and is processed back as a camera's ISP does: demosaic, white balance, colour correction,
gamma, tone curve, sharpening, 8 bits, JPEG. The target of a sample is the same camera on the same scene
without the noise and without the JPEG.

Each sample draws its own camera (a `Shot`) over `CameraRanges`, seeded; the demosaicing methods come
from the `colour-demosaicing` package. Menon 2007 is never drawn for training (`HELD_OUT_DEMOSAIC`): the
bench's held-out row uses it, to show a model that did not only fit the cameras it saw.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch
from torchvision.transforms.functional import gaussian_blur

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.core.noise import Pair, Ranks, jpeg_round_trip, mine

PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
HELD_OUT_DEMOSAIC = "Menon2007"
GAMMA = 2.2
# Brooks et al.'s fit of read noise to shot noise over real sensors: log b = 2.18 log a + 1.20 + N(0, 0.26^2)
READ_SLOPE, READ_OFFSET, READ_SPREAD = 2.18, 1.20, 0.26


@dataclass(frozen=True)
class CameraRanges:
    """The cameras drawn for training: each field the range one sample's parameter is drawn over.

    shot: a of Var = a x + b in raw, log-uniform (Brooks et al.: 1e-4 to 0.012; wider here, to night
    scenes at 0.03); read: b from a by Brooks et al.'s fit; clean: share with no sensor noise (a clean
    camera JPEG); red_gain, blue_gain: white balance (Brooks et al.); exposure: raw = linear x exposure,
    N(0.8, 0.1) clipped (Brooks et al.'s brightness); mixing: how much of each camera channel comes from
    the other two (0 = the sRGB primaries; the colour correction inverts it and so mixes the noise across
    channels); blur: share of samples with a lens blur and its sigma in pixels; sharpen: unsharp-mask
    amount (radius 1 pixel); demosaic: the methods drawn; quality: JPEG quality, uniform; lossless: share
    stored without a JPEG; subsampling: PIL's JPEG chroma subsampling (0 4:4:4, 1 4:2:2, 2 4:2:0)."""

    shot: tuple[float, float] = (1e-4, 3e-2)
    clean: float = 0.1
    red_gain: tuple[float, float] = (1.9, 2.4)
    blue_gain: tuple[float, float] = (1.5, 1.9)
    exposure: tuple[float, float] = (0.8, 0.1)
    mixing: tuple[float, float] = (0.1, 0.5)
    blur: tuple[float, float, float] = (0.3, 0.3, 1.0)
    sharpen: tuple[float, float] = (0.0, 1.5)
    demosaic: tuple[str, ...] = ("bilinear", "Malvar2004")
    quality: tuple[int, int] = (60, 98)
    lossless: float = 0.1
    subsampling: tuple[int, ...] = (0, 1, 2)


@dataclass(frozen=True)
class Shot:
    """One camera, as drawn for one sample. rgb2cam: 3x3 row-major, rows summing to 1 (grey stays grey);
    shot, read: a and b of Var = a x + b in raw (0, 0: no sensor noise); quality None: no JPEG."""

    pattern: str = "RGGB"
    rgb2cam: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    red_gain: float = 2.0
    blue_gain: float = 1.7
    exposure: float = 0.8
    blur: float = 0.0
    shot: float = 0.0
    read: float = 0.0
    demosaic: str = "Malvar2004"
    sharpen: float = 0.0
    quality: int | None = None
    subsampling: int = 2

    def quiet(self) -> Shot:
        """The same camera without sensor noise and without the JPEG: the target's camera."""
        return replace(self, shot=0.0, read=0.0, quality=None)


def read_noise(shot: float, spread: float) -> float:
    """b from a by Brooks et al.'s log-linear fit, `spread` standard deviations off the line."""
    return math.exp(READ_SLOPE * math.log(shot) + READ_OFFSET + READ_SPREAD * spread)


def draw_shot(ranges: CameraRanges, generator: torch.Generator) -> Shot:
    """One camera over `ranges`, every draw from `generator`."""
    u = torch.rand(16, generator=generator, dtype=torch.float64).tolist()
    normal = torch.randn(2, generator=generator, dtype=torch.float64).tolist()

    def between(bounds, t):
        return bounds[0] + (bounds[1] - bounds[0]) * t

    def pick(options, t):
        return options[min(int(t * len(options)), len(options) - 1)]

    shot = math.exp(between((math.log(ranges.shot[0]), math.log(ranges.shot[1])), u[0]))
    noisy = u[1] >= ranges.clean
    mix = [between(ranges.mixing, t) for t in u[2:5]]
    weights = torch.rand(3, 3, generator=generator, dtype=torch.float64) * (1 - torch.eye(3, dtype=torch.float64))
    weights = weights / weights.sum(1, keepdim=True)
    rgb2cam = torch.stack([(1 - m) * torch.eye(3, dtype=torch.float64)[i] + m * weights[i] for i, m in enumerate(mix)])
    mean, sd = ranges.exposure
    return Shot(
        pattern=pick(PATTERNS, u[5]),
        rgb2cam=tuple(rgb2cam.flatten().tolist()),
        red_gain=between(ranges.red_gain, u[6]),
        blue_gain=between(ranges.blue_gain, u[7]),
        exposure=min(max(mean + sd * normal[0], 0.5), 1.1),
        blur=between(ranges.blur[1:], u[9]) if u[8] < ranges.blur[0] else 0.0,
        shot=shot if noisy else 0.0,
        read=read_noise(shot, normal[1]) if noisy else 0.0,
        demosaic=pick(ranges.demosaic, u[10]),
        sharpen=between(ranges.sharpen, u[11]),
        quality=None if u[12] < ranges.lossless else round(between(ranges.quality, u[13])),
        subsampling=pick(ranges.subsampling, u[14]),
    )


def tone(x: torch.Tensor) -> torch.Tensor:
    """The global tone curve of Brooks et al., the smoothstep 3x^2 - 2x^3."""
    return 3 * x**2 - 2 * x**3


def untone(y: torch.Tensor) -> torch.Tensor:
    """The inverse of `tone` on [0, 1]."""
    return 0.5 - torch.sin(torch.asin(1 - 2 * y.clamp(0, 1)) / 3)


def _matrix(shot: Shot, x: torch.Tensor) -> torch.Tensor:
    return torch.tensor(shot.rgb2cam, dtype=x.dtype, device=x.device).view(3, 3)


def _gains(shot: Shot, x: torch.Tensor) -> torch.Tensor:
    """What the camera multiplies the raw channels by: white balance over exposure, (3, 1, 1)."""
    gains = [shot.red_gain, 1.0, shot.blue_gain]
    return torch.tensor(gains, dtype=x.dtype, device=x.device).view(3, 1, 1) / shot.exposure


def unprocess(x: torch.Tensor, shot: Shot, mosaic: bool = True) -> torch.Tensor:
    """A clean sRGB photo (3, H, W) in [0, 1] -> the camera's linear raw: untone, inverse gamma, sRGB to
    camera colours, inverse white balance and exposure, lens blur, then the Bayer mosaic (H, W); with
    mosaic=False the three raw planes (3, H, W)."""
    linear = untone(x).clamp_min(1e-8) ** GAMMA
    cam = torch.einsum("ij,jhw->ihw", _matrix(shot, x), linear) / _gains(shot, x)  # (3, H, W)
    if shot.blur > 0:
        cam = gaussian_blur(cam[None], _kernel(shot.blur), [shot.blur, shot.blur])[0]
    if not mosaic:
        return cam
    mosaiced = _demosaicing().mosaicing_CFA_Bayer(cam.permute(1, 2, 0).double().numpy(), shot.pattern)
    return torch.from_numpy(mosaiced).to(x)


def sensor_noise(raw: torch.Tensor, shot: float, read: float, generator: torch.Generator) -> torch.Tensor:
    """Poisson-Gaussian noise in linear raw: shot x Poisson(raw / shot) + N(0, read), whose mean is raw
    and variance shot x raw + read. No noise where both are 0."""
    if shot <= 0 and read <= 0:
        return raw
    signal = shot * torch.poisson(raw.clamp_min(0).double() / shot, generator=generator) if shot > 0 else raw.double()
    return (signal + math.sqrt(read) * torch.randn(raw.shape, generator=generator, dtype=torch.float64)).to(raw)


def demosaic(raw: torch.Tensor, shot: Shot) -> torch.Tensor:
    """A Bayer mosaic (H, W) -> (3, H, W) by the shot's method (colour-demosaicing)."""
    cd = _demosaicing()
    method = {
        "bilinear": cd.demosaicing_CFA_Bayer_bilinear,
        "Malvar2004": cd.demosaicing_CFA_Bayer_Malvar2004,
        "Menon2007": cd.demosaicing_CFA_Bayer_Menon2007,
    }[shot.demosaic]
    return torch.from_numpy(np.asarray(method(raw.double().numpy(), shot.pattern))).permute(2, 0, 1).to(raw)


def process(raw: torch.Tensor, shot: Shot) -> torch.Tensor:
    """The camera's ISP: a raw mosaic (H, W) (or raw planes (3, H, W)) -> the sRGB photo (3, H, W) in
    8-bit steps: demosaic, white balance and exposure, colour correction, clip, gamma, tone curve,
    unsharp-mask sharpening, 8 bits."""
    cam = demosaic(raw, shot) if raw.ndim == 2 else raw
    cam = cam * _gains(shot, cam)
    rgb = torch.einsum("ij,jhw->ihw", torch.linalg.inv(_matrix(shot, cam).double()).to(cam), cam)  # (3, H, W)
    srgb = tone(rgb.clamp(0, 1) ** (1 / GAMMA))
    if shot.sharpen > 0:
        srgb = srgb + shot.sharpen * (srgb - gaussian_blur(srgb[None], 5, [1.0, 1.0])[0])
    return srgb.clamp(0, 1).mul(255).round().div(255)


def store(x: torch.Tensor, quality: int | None, subsampling: int) -> torch.Tensor:
    """An 8-bit sRGB photo (3, H, W) as the camera's file holds it: a JPEG of that quality and chroma
    subsampling read back (Pillow), or unchanged where quality is None."""
    return x if quality is None else jpeg_round_trip(x, quality, subsampling).to(x)


def photograph(x: torch.Tensor, shot: Shot, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A clean sRGB photo (3, H, W) -> (what the camera writes, the target): the same raw mosaic
    processed with the sensor's noise and stored, and processed without either."""
    if x.ndim != 3 or x.shape[0] != 3:
        raise LmppmError(f"the camera pipeline takes colour photos (3, H, W), not a tensor of shape {tuple(x.shape)}.")
    raw = unprocess(x.float().cpu(), shot)  # (H, W)
    written = store(process(sensor_noise(raw, shot.shot, shot.read, generator), shot), shot.quality, shot.subsampling)
    return written.to(x), process(raw, shot.quiet()).to(x)


def _demosaicing():
    """The colour-demosaicing package, imported without its SciPy deprecation warnings (its own, not ours)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import colour_demosaicing
    except ImportError as e:
        raise LmppmError("the camera pipeline needs colour-demosaicing: pip install 'lmppm[camera]'.") from e
    return colour_demosaicing


def _kernel(sigma: float) -> int:
    return 2 * math.ceil(3 * sigma) + 1


@dataclass(frozen=True)
class Camera:
    """Training samples through the camera (a noise.TrainingNoise): `share` of a batch's rows replaced by
    (written, target) of cameras drawn over `ranges`. Every row draws from its own seed, which comes from
    the batch's generator, so torchrun's ranks (each holding rows rank::size) draw exactly what one
    process would."""

    share: float
    ranges: CameraRanges = CameraRanges()

    def sample(self, pair: Pair, generator: torch.Generator, ranks: Ranks = (0, 1)) -> Pair:
        """(input, target) rows of clean targets -> the same with the picked rows taken by the camera."""
        x_noisy, x = pair
        rows = len(x) * ranks[1]
        on = generator.device
        pick = (mine(torch.rand(rows, generator=generator, device=on), ranks) < self.share).tolist()
        seeds = mine(torch.randint(0, 2**62, (rows,), generator=generator, device=on), ranks).tolist()
        if not any(pick):
            return x_noisy, x
        inputs, targets = x_noisy.clone(), x.clone()
        for i, (p, seed) in enumerate(zip(pick, seeds)):
            if p:
                g = torch.Generator().manual_seed(seed)
                inputs[i], targets[i] = photograph(x[i], draw_shot(self.ranges, g), g)
        return inputs, targets
