"""Gaussian noise, drawn in one place: for training (Eq. 20's noisy samples), for calibration and for
the noise degradation of Table 6."""

from __future__ import annotations

import torch


def noisy(x: torch.Tensor, sigma, generator: torch.Generator, share: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """Training samples x + eps, eps ~ N(0, sigma^2), clamped to [0, 1] (as the authors' code).

    `sigma` is sigma_d (the paper: one level) or a range (low, high[, power]): each sample then draws its
    own level low + (high - low) u^power, u ~ U(0, 1) (power 1: uniform), so the model meets every
    strength it may be asked to restore (blind); power > 1 gives low noise and clean inputs more weight.
    `share` = (rank, size): x holds rows rank::size of a global batch (torchrun); every rank draws the
    whole batch's noise and keeps its rows, so N processes see exactly the noise of one."""
    rank, size = share
    rows = len(x) * size
    eps = torch.randn((rows, *x.shape[1:]), generator=generator, device=generator.device)[rank::size].to(x.device)
    if isinstance(sigma, tuple):
        low, high, power = (*sigma, 1.0)[:3]
        u = torch.rand(rows, generator=generator, device=generator.device)[rank::size].to(x.device)
        sigma = (low + (high - low) * u**power).view(-1, *[1] * (x.ndim - 1))  # (B, 1, 1, 1)
    return (x + sigma * eps).clamp(0.0, 1.0)
