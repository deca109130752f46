"""The synthetic manifold of Figs. 4-7: the unit circle in the xy-plane of R^3, sampled with a
non-uniform, truncated normal azimuth theta, so that one side of the circle is dense and the other sparse.

Notation -> paper: theta the azimuth; theta0 the centre of the angle distribution (the red line of
Fig. 4); `angle_std` its standard deviation; the angles are truncated to theta0 +- `span`
(span = pi: the whole circle; span = pi / 2: a half circle).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CircleConfig:
    theta0: float = math.pi / 2  # the dense side faces +y, as in Fig. 7 (dense upper half)
    angle_std: float = 1.0
    span: float = math.pi

    @property
    def bounds(self) -> tuple[float, float]:
        return self.theta0 - self.span, self.theta0 + self.span


def sample_angles(n: int, cfg: CircleConfig, generator: torch.Generator) -> torch.Tensor:
    """n azimuths from N(theta0, angle_std^2) truncated to theta0 +- span (torch's trunc_normal_)."""
    lo, hi = cfg.bounds
    return torch.nn.init.trunc_normal_(torch.empty(n), cfg.theta0, cfg.angle_std, lo, hi, generator=generator)


def embed(theta: torch.Tensor) -> torch.Tensor:
    """Azimuths (n,) -> points (cos theta, sin theta, 0) of R^3, (n, 3)."""
    return torch.stack([theta.cos(), theta.sin(), torch.zeros_like(theta)], dim=1)


def sample_points(n: int, cfg: CircleConfig, generator: torch.Generator) -> torch.Tensor:
    return embed(sample_angles(n, cfg, generator))


def deviation(x: torch.Tensor) -> torch.Tensor:
    """Euclidean distance of points (n, 3) to the unit circle in the xy-plane: sqrt((r - 1)^2 + z^2),
    r = sqrt(x^2 + y^2). (Figs. 5 and 7 plot the in-plane part |r - 1|; ours also counts z.)"""
    r = x[:, :2].norm(dim=1)
    return ((r - 1.0).pow(2) + x[:, 2].pow(2)).sqrt()


def angular_offset(theta: torch.Tensor, cfg: CircleConfig) -> torch.Tensor:
    """|theta - theta0| wrapped to [0, pi]: how far an angle lies from the dense centre."""
    return torch.remainder(theta - cfg.theta0 + math.pi, 2 * math.pi).sub(math.pi).abs()


def truncated_normal_moments(cfg: CircleConfig) -> tuple[float, float]:
    """Mean and standard deviation of the sampler's angle distribution (the closed form of a normal
    truncated to [a, b]), for checking the sampler against its parameters."""
    normal = torch.distributions.Normal(0.0, 1.0)
    lo, hi = cfg.bounds
    a, b = torch.tensor((lo - cfg.theta0) / cfg.angle_std), torch.tensor((hi - cfg.theta0) / cfg.angle_std)
    mass = normal.cdf(b) - normal.cdf(a)
    pa, pb = normal.log_prob(a).exp(), normal.log_prob(b).exp()
    mean = cfg.theta0 + cfg.angle_std * (pa - pb) / mass
    var = cfg.angle_std**2 * (1 + (a * pa - b * pb) / mass - ((pa - pb) / mass) ** 2)
    return float(mean), float(var.sqrt())
