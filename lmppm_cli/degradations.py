"""Reproducible degradations (Appendix B.2, Table 6). Each takes (B, C, H, W) in [0, 1] and a
torch.Generator and returns a tensor of the same shape in [0, 1]."""

from __future__ import annotations

import torch


def gaussian_noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """x + N(0, sigma^2), clamped to [0, 1] (Table 6: 0.7 / 0.85 digits, 0.2 / 0.3 faces)."""
    noise = torch.randn(x.shape, generator=generator, device=generator.device).to(x.device)
    return (x + sigma * noise).clamp(0.0, 1.0)
