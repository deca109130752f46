"""The autoencoder architectures by name: how each is built from its config and what the rest of the
tool needs to know of it. Adding an architecture is one entry here.

conv  the paper's MNIST network (Table 8): whole images, resized to the model's input
unet  the U-Net with latent-to-skip projections (Table 9): fully convolutional, so larger images are
      restored in tiles; its decoder also reads the encoder's skips
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from lmppm_cli.core.config import AutoencoderConfig
from lmppm_cli.core.errors import LmppmError


class Autoencoder(nn.Module):
    """What every architecture builds: F, encode x -> (z, skips), and G, decode (z, skips) -> x."""

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        raise NotImplementedError

    def decode(self, z: torch.Tensor, skips: tuple = ()) -> torch.Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[[AutoencoderConfig], Autoencoder]
    tiles: bool  # restores images larger than its input tile by tile (else: the whole image resized)
    skips: bool  # the decoder reads encoder skips, which generation from a latent does not have
    widths: tuple[int, ...]  # default channels per level
    distance_hidden: tuple[int, ...]  # default widths of D's MLP (Table 8: 100-50-20; Table 9: 300-100-30)
    options: frozenset[str] = frozenset()  # AutoencoderConfig fields only this architecture reads
    grows: bool = False  # a trained model can be grown wider (models/growth.py)


def _conv(cfg: AutoencoderConfig) -> Autoencoder:
    from lmppm_cli.core.models.autoencoder import ConvAutoencoder

    return ConvAutoencoder(cfg)


def _unet(cfg: AutoencoderConfig) -> Autoencoder:
    from lmppm_cli.core.models.unet import UNetAutoencoder

    return UNetAutoencoder(cfg)


ARCHITECTURES = {
    arch.name: arch
    for arch in (
        Architecture("conv", _conv, tiles=False, skips=False, widths=(32, 64), distance_hidden=(100, 50, 20)),
        Architecture(
            "unet",
            _unet,
            tiles=True,
            skips=True,
            widths=(32, 64, 128, 256),
            distance_hidden=(300, 100, 30),
            options=frozenset({"unshuffle", "residual", "depth", "noise_map"}),
            grows=True,
        ),
    )
}


def architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise LmppmError(f"unknown architecture {name!r}; use {' or '.join(ARCHITECTURES)}.")
    return ARCHITECTURES[name]


def build_autoencoder(cfg: AutoencoderConfig) -> Autoencoder:
    return architecture(cfg.arch).build(cfg)
