"""eps_theta(z_t, t / T) of Alg. 2/3 for the LDM baseline: an MLP on the latent and a sinusoidal
embedding of t / T (the paper gives no architecture for it)."""

from __future__ import annotations

import math

import torch
from torch import nn


class LatentDenoiser(nn.Module):
    def __init__(self, latent_dim: int, hidden: tuple[int, ...], embed: int = 32):
        super().__init__()
        self.embed = embed
        layers: list[nn.Module] = []
        width = latent_dim + embed
        for h in hidden:
            layers += [nn.Linear(width, h), nn.SiLU()]
            width = h
        layers.append(nn.Linear(width, latent_dim))
        self.net = nn.Sequential(*layers)

    def time_embedding(self, t_frac: torch.Tensor) -> torch.Tensor:
        """(B,) in [0, 1] -> (B, embed) sines and cosines at geometric frequencies."""
        freqs = torch.exp(torch.arange(self.embed // 2, device=t_frac.device) * (-math.log(1000.0) / (self.embed // 2)))
        angles = 1000.0 * t_frac.unsqueeze(1) * freqs.unsqueeze(0)
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    def forward(self, z: torch.Tensor, t_frac: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, self.time_embedding(t_frac)], dim=1))  # (B, d)
