"""Classical blind denoisers, the tools a user would otherwise reach for: BM3D (the `bm3d` package),
non-local means and wavelet shrinkage (scikit-image). Blind: each image's noise level is estimated from
the image itself (scikit-image's `estimate_sigma`, a wavelet median-absolute-deviation estimate), as a
user without ground truth would have to. They need no model and run at the image's own size.

bm3d     bm3d.bm3d (gray) / bm3d.bm3d_rgb (colour, its opponent colour transform), sigma estimated
nlmeans  denoise_nl_means, fast mode, patch 5, search distance 6, h = 0.8 sigma (scikit-image's example)
wavelet  denoise_wavelet, BayesShrink, soft thresholds, YCbCr for colour, its own sigma estimate
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.methods.registry import Method, plain, register

CLASSICAL = ("bm3d", "nlmeans", "wavelet")
INSTALL = "pip install 'lmppm[classical]'"


def estimate_noise(image: np.ndarray) -> float:
    """The noise standard deviation of one image (H, W, C) in [0, 1], averaged over channels."""
    try:
        from skimage.restoration import estimate_sigma
    except ImportError as exc:
        raise LmppmError(f"the classical methods need scikit-image: {INSTALL}.") from exc

    with warnings.catch_warnings():  # its advice on small images goes to the user as a raw warning otherwise
        warnings.simplefilter("ignore")
        return float(estimate_sigma(image, channel_axis=-1, average_sigmas=True))


def denoise(images: torch.Tensor, method: str, sigma: float | None = None) -> torch.Tensor:
    """(B, C, H, W) in [0, 1] -> the same shape, each image denoised on its own by `method`, at its own
    estimated noise or at `sigma` (the whole image's, for its tiles)."""
    if method not in CLASSICAL:
        raise LmppmError(f"unknown classical method {method!r}; use {', '.join(CLASSICAL)}.")
    with warnings.catch_warnings():  # the libraries' numerical warnings (e.g. on a flat image) stay inside
        warnings.simplefilter("ignore")
        out = [_one(x.permute(1, 2, 0).double().cpu().numpy(), method, sigma) for x in images]
    return torch.stack([torch.from_numpy(np.ascontiguousarray(o)).permute(2, 0, 1) for o in out]).to(images)


MIN_SIDE = 16  # BM3D's blocks and the wavelet levels need a few pixels: a smaller image is padded to this


def _one(image: np.ndarray, method: str, sigma: float | None = None) -> np.ndarray:
    """One image (H, W, C): colour (3 channels) as a whole, unless its channels are equal (gray), any
    other channel count channel by channel.
    An image with a side under MIN_SIDE is padded to it (its edge pixels repeated) and cropped back."""
    h, w = image.shape[:2]
    if np.ptp(image, axis=(0, 1)).max() == 0:  # a flat image is its own best estimate (BM3D divides by its zero spread)
        return image
    if min(h, w) < MIN_SIDE:
        padded = np.pad(image, ((0, max(0, MIN_SIDE - h)), (0, max(0, MIN_SIDE - w)), (0, 0)), mode="edge")
        return _one(padded, method, sigma)[:h, :w]
    if image.shape[-1] == 3 and (image == image[..., :1]).all():  # a gray photo stored as RGB: one plane
        return np.repeat(_one(image[..., :1], method, sigma), 3, axis=-1)  # (bm3d_rgb divides by its zero chroma)
    if image.shape[-1] == 3:
        return np.clip(_DENOISERS[method](image, True, sigma), 0.0, 1.0)
    planes = [
        _DENOISERS[method](image[..., c : c + 1], False, sigma).reshape(image.shape[:2] + (1,))
        for c in range(image.shape[-1])
    ]
    return np.clip(np.concatenate(planes, -1), 0.0, 1.0)


def _bm3d(image: np.ndarray, rgb: bool, sigma: float | None = None) -> np.ndarray:
    try:
        import bm3d
    except ImportError as exc:
        raise LmppmError(f"--method bm3d needs the bm3d package: {INSTALL}.") from exc
    sigma = max(estimate_noise(image) if sigma is None else sigma, 1e-3)
    if rgb:
        return bm3d.bm3d_rgb(image, sigma)
    return bm3d.bm3d(image[..., 0], sigma)[..., None]


def _nlmeans(image: np.ndarray, rgb: bool, sigma: float | None = None) -> np.ndarray:
    estimated = estimate_noise(image)  # checks that scikit-image is there
    sigma = estimated if sigma is None else sigma
    from skimage.restoration import denoise_nl_means

    return denoise_nl_means(
        image, h=0.8 * sigma, sigma=sigma, fast_mode=True, patch_size=5, patch_distance=6, channel_axis=-1
    )


def _wavelet(image: np.ndarray, rgb: bool, sigma: float | None = None) -> np.ndarray:
    try:
        from skimage.restoration import denoise_wavelet

        return denoise_wavelet(
            image,
            sigma=sigma,
            channel_axis=-1,
            convert2ycbcr=rgb,
            method="BayesShrink",
            mode="soft",
            rescale_sigma=True,
        )
    except ImportError as exc:
        raise LmppmError(f"--method wavelet needs scikit-image and PyWavelets: {INSTALL}.") from exc


_DENOISERS = {"bm3d": _bm3d, "nlmeans": _nlmeans, "wavelet": _wavelet}


def _restorer(name: str):
    return lambda model, options=None: lambda x, keep=False, sigma=None: plain(denoise(x, name, sigma))


for _name, _summary in (
    ("bm3d", "BM3D, blind (noise level estimated from the image)"),
    ("nlmeans", "non-local means, blind"),
    ("wavelet", "wavelet shrinkage (BayesShrink), blind"),
):
    register(Method(_name, _summary + "; at the image's own size and channels", model=None, restorer=_restorer(_name)))
