"""An image's noise level, estimated from the image alone: Donoho's median absolute deviation of the
finest diagonal Haar details, sigma_hat = median |HH| / 0.6745 (white noise fills HH; smooth content
and edges leave most of it near 0)."""

from __future__ import annotations

import torch


def estimate_noise(x: torch.Tensor) -> float:
    """sigma_hat of one image (C, H, W), mean over channels."""
    return float(noise_levels(x.unsqueeze(0))[0])


def noise_levels(x: torch.Tensor) -> torch.Tensor:
    """sigma_hat of each image of a batch (B, C, H, W) -> (B,), mean over channels."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    if h == 0 or w == 0:
        return torch.zeros(len(x), device=x.device)
    a, b = x[..., 0:h:2, 0:w:2], x[..., 0:h:2, 1:w:2]
    c, d = x[..., 1:h:2, 0:w:2], x[..., 1:h:2, 1:w:2]
    hh = (a - b - c + d) / 2.0  # (B, C, h/2, w/2)
    return (hh.flatten(2).abs().median(dim=2).values / 0.6745).mean(1).float()
