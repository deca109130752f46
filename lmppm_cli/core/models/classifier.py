"""The small domain classifier behind the paper's MNIST FID: its penultimate features are compared
by Frechet distance, and its predictions say whether a restored 3 is still a 3."""

from __future__ import annotations

import torch
from torch import nn

from lmppm_cli.core.config import ModelConfig
from lmppm_cli.core.errors import LmppmError


class DigitClassifier(nn.Module):
    """Conv 32 -> pool -> conv 64 -> pool -> linear to `features` (ReLU) -> dropout -> linear to classes."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        ae, cfg = config.autoencoder, config.classifier
        h, w = ae.height // 4, ae.width // 4
        if min(h, w) < 1:
            raise LmppmError(f"a {ae.width}x{ae.height} image is too small for the classifier.")
        self.body = nn.Sequential(
            nn.Conv2d(ae.channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * h * w, cfg.features),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(cfg.features, cfg.classes))

    @property
    def device(self) -> torch.device:
        return next(self.head.parameters()).device

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # (B, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))  # (B, classes) logits
