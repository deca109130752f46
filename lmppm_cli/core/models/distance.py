"""The latent distance network D_S: R^d -> R (Table 8: 18 -> 100 -> 50 -> 20 -> 1, ReLU, dropout 0.2)."""

from __future__ import annotations

import torch
from torch import nn

from lmppm_cli.core.config import DistanceConfig


class DistanceMLP(nn.Module):
    def __init__(self, latent_dim: int, cfg: DistanceConfig):
        super().__init__()
        layers: list[nn.Module] = []
        width = latent_dim
        for hidden in cfg.hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(cfg.dropout)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        for layer in self.net:
            if isinstance(layer, nn.Linear):  # He initialisation, as in the authors' code
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """D_S(z), (B, d) -> (B,), always in float32: under bf16 autocast (--precision) only F and G run
        in half precision, so D, its normalised gradient and the second-order shift terms of Eq. 20 keep
        full precision. D is tiny; this costs nothing measurable."""
        with torch.autocast(z.device.type, enabled=False):
            return self.net(z.float()).squeeze(-1)  # (B,)
