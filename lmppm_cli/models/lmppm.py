"""The whole model: F/G, D_S, the latent bank S and the configuration they were trained with."""

from __future__ import annotations

import torch
from torch import nn

from lmppm_cli.config import ModelConfig
from lmppm_cli.models.autoencoder import build_autoencoder
from lmppm_cli.models.distance import DistanceMLP


class LMPPM(nn.Module):
    """Holds weights only; restoration and generation are functions in `lmppm_cli.restoration`."""

    def __init__(self, config: ModelConfig, bank_size: int = 0):
        super().__init__()
        self.config = config
        ae = config.autoencoder
        self.autoencoder = build_autoencoder(ae)
        self.distance = DistanceMLP(ae.latent_dim, config.distance)
        self.register_buffer("bank", torch.zeros(bank_size, ae.latent_dim))  # S = F(X_clean), (N, d)

    @property
    def device(self) -> torch.device:
        return self.bank.device

    @torch.no_grad()
    def build_bank(self, images: torch.Tensor, batch_size: int = 512) -> None:
        """S = F(x_j) for every clean training image (eval mode); replaces the stored bank."""
        self.eval()
        parts = [
            self.autoencoder.encode(images[i : i + batch_size].to(self.device))[0]
            for i in range(0, images.shape[0], batch_size)
        ]
        self.bank = torch.cat(parts)
