"""Model containers. Each holds weights and the configuration they were trained with; restoration and
generation are functions elsewhere (`restoration.py`, `lmppm_cli/methods/`)."""

from __future__ import annotations

import torch
from torch import nn

from lmppm_cli.core.config import ModelConfig
from lmppm_cli.core.models.architectures import Autoencoder, build_autoencoder
from lmppm_cli.core.models.denoiser import LatentDenoiser
from lmppm_cli.core.models.distance import DistanceMLP
from lmppm_cli.core.pixels import as_floats

INDEX_MIN_BANK = 50_000  # banks up to this size find a top-k kernel mean's k nearest by an exact scan


class LMPPM(nn.Module):
    """F/G, the latent bank S = F(X_clean) and, with `distance`, the distance network D_S (method
    `lmppm`). The DAE baseline is the same container without D."""

    autoencoder: Autoencoder
    distance: DistanceMLP | None
    bank: torch.Tensor

    def __init__(self, config: ModelConfig, bank_size: int = 0, distance: bool = True):
        super().__init__()
        self.config = config
        ae = config.autoencoder
        self.autoencoder = build_autoencoder(ae)
        self.distance = DistanceMLP(ae.latent_dim, config.distance) if distance else None
        self.register_buffer("bank", torch.zeros(bank_size, ae.latent_dim))  # S = F(X_clean), (N, d)

    @property
    def device(self) -> torch.device:
        return self.bank.device

    def bank_index(self):
        """A FAISS HNSW index over S for the top-k kernel mean, built on first use, for banks of more than
        INDEX_MIN_BANK points when FAISS is installed; else None (an exact scan finds the k nearest)."""
        from lmppm_cli.core.neighbours import FaissIndex, faiss_available

        if len(self.bank) <= INDEX_MIN_BANK or not faiss_available():
            return None
        key = (self.bank.data_ptr(), tuple(self.bank.shape), self.bank._version)  # rebuilt when S changes
        if getattr(self, "_index_key", None) != key:
            self._index, self._index_key = FaissIndex(self.bank), key
        return self._index

    @torch.no_grad()
    def build_bank(self, images: torch.Tensor, batch_size: int = 512) -> None:
        """S = F(x_j) for every clean training image (eval mode); replaces the stored bank."""
        self.eval()
        self.bank = encode_all(self.autoencoder, images, batch_size)


class LatentDiffusion(nn.Module):
    """The LDM baseline: the DAE's F/G (frozen) and a DDPM noise predictor on its standardised latents."""

    autoencoder: Autoencoder
    denoiser: LatentDenoiser
    latent_mean: torch.Tensor
    latent_std: torch.Tensor

    def __init__(self, config: ModelConfig, bank_size: int = 0):
        super().__init__()
        self.config = config
        d = config.autoencoder.latent_dim
        self.autoencoder = build_autoencoder(config.autoencoder)
        self.denoiser = LatentDenoiser(d, config.diffusion.hidden)
        self.register_buffer("latent_mean", torch.zeros(d))
        self.register_buffer("latent_std", torch.ones(d))

    @property
    def device(self) -> torch.device:
        return self.latent_mean.device


@torch.no_grad()
def encode_all(autoencoder, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """F(x) for many images, in batches moved to F's device one at a time (a uint8 memory map is scaled
    to [0, 1] batch by batch). (N, C, H, W) -> (N, d)."""
    device = next(autoencoder.parameters()).device
    return torch.cat(
        [
            autoencoder.encode(as_floats(images[i : i + batch_size], device))[0]
            for i in range(0, len(images), batch_size)
        ]
    )
