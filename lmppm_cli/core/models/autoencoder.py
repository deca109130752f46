"""Encoder F and decoder G.

`ConvAutoencoder` is the MNIST network of Table 8 (Conv 1->32->64, k3 s2 -> Linear -> d, mirrored
decoder with a sigmoid), generalised to any channel count, image size and number of levels.

Every autoencoder here shares one interface, so the flow does not care which one it drives:
`encode(x) -> (z, skips)` and `decode(z, skips) -> x`; skips is `()` for networks without skips.
"""

from __future__ import annotations

import torch
from torch import nn

from lmppm_cli.core.config import AutoencoderConfig
from lmppm_cli.core.errors import LmppmError
from lmppm_cli.core.models.architectures import Autoencoder


def _halved(size: int, levels: int) -> list[int]:
    """Spatial sizes after each stride-2, padding-1, kernel-3 convolution: ceil(size / 2) per level."""
    sizes = [size]
    for _ in range(levels):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


class ConvAutoencoder(Autoencoder):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.cfg = cfg
        self.heights = _halved(cfg.height, len(cfg.widths))
        self.widths_px = _halved(cfg.width, len(cfg.widths))
        if min(self.heights[-1], self.widths_px[-1]) < 1 or min(cfg.height, cfg.width) < 4:
            raise LmppmError(f"a {cfg.width}x{cfg.height} image is too small for the conv autoencoder.")
        chans = (cfg.channels, *cfg.widths)
        self.down = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1) for i in range(len(cfg.widths))
        )
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(chans[i + 1], chans[i], 3, stride=2, padding=1) for i in reversed(range(len(cfg.widths)))
        )
        self.flat = cfg.widths[-1] * self.heights[-1] * self.widths_px[-1]
        self.to_latent = nn.Linear(self.flat, cfg.latent_dim)
        self.from_latent = nn.Linear(cfg.latent_dim, self.flat)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        h = x  # (B, C, H, W)
        for conv in self.down:
            h = torch.relu(conv(h))
        return self.to_latent(h.flatten(1)), ()  # (B, d)

    def decode(self, z: torch.Tensor, skips: tuple = ()) -> torch.Tensor:
        h = torch.relu(self.from_latent(z))
        h = h.view(-1, self.cfg.widths[-1], self.heights[-1], self.widths_px[-1])
        levels = len(self.up)
        for i, deconv in enumerate(self.up):
            size = (self.heights[levels - 1 - i], self.widths_px[levels - 1 - i])
            h = deconv(h, output_size=size)
            h = torch.relu(h) if i < levels - 1 else torch.sigmoid(h)
        return h  # (B, C, H, W)
