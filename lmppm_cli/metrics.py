"""Image-quality metrics, per image, from torchmetrics (SSIM with data range 1, PSNR)."""

from __future__ import annotations

import torch

from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, data range 1. (B, C, H, W) x 2 -> (B,)."""
    return peak_signal_noise_ratio(pred.float(), target.float(), data_range=1.0, reduction="none", dim=(1, 2, 3))


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Structural similarity per image (Gaussian window 11, sigma 1.5, data range 1). -> (B,)."""
    return structural_similarity_index_measure(pred.float(), target.float(), data_range=1.0, reduction="none")
