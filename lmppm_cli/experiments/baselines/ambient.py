"""Baselines in the ambient space for the synthetic circle: a DAE with MPPM's own F/G (Table 7), and a
DDPM on the points themselves (ddpm.py: Alg. 2/3, linear betas 1e-4..0.02, T = 1000)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmppm_cli.core.models.denoiser import LatentDenoiser
from lmppm_cli.experiments.mppm import Mppm
from lmppm_cli.methods import ddpm


def dae_loss(net: Mppm, x_clean: torch.Tensor, x_noisy: torch.Tensor) -> torch.Tensor:
    """L2 between the clean point and G(F(noisy point)), summed over coordinates, mean over the batch."""
    return (x_clean - net.project(x_noisy)).pow(2).sum(1).mean()


@dataclass(frozen=True)
class AmbientDiffusionConfig:
    steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    hidden: tuple[int, ...] = (128, 128, 128)


class AmbientDiffusion(torch.nn.Module):
    """eps_theta(x_t, t/T) on points of R^D: the core's MLP noise predictor with the point as its input."""

    def __init__(self, dim: int, cfg: AmbientDiffusionConfig | None = None):
        super().__init__()
        self.cfg = cfg or AmbientDiffusionConfig()
        self.denoiser = LatentDenoiser(dim, self.cfg.hidden)

    def loss(self, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return ddpm.diffusion_loss(self.denoiser, ddpm.schedule(self.cfg, x0.device), x0, generator)

    @torch.no_grad()
    def restore(self, x, start: int, generator, trajectory: list | None = None) -> torch.Tensor:
        """SDEdit from `start` (noise x to that step, then Alg. 3). start = T - 1 with x taken as x_T
        instead is the paper's full 1000-step chain: see `full_chain`."""
        return ddpm.restore_from(self.denoiser, ddpm.schedule(self.cfg, x.device), x, start, generator, trajectory)

    @torch.no_grad()
    def full_chain(self, x, generator, trajectory: list | None = None) -> torch.Tensor:
        """All T reverse steps of Alg. 3 starting from the degraded point itself as x_T."""
        sched = ddpm.schedule(self.cfg, x.device)
        if trajectory is not None:
            trajectory.append(x)
        return ddpm.reverse(self.denoiser, sched, x, sched.steps - 1, generator, trajectory)

    def matched_step(self, noise_sigma: float) -> int:
        """The step whose noise-to-signal ratio matches the degradation's per-coordinate sigma."""
        return ddpm.noise_matched_step(ddpm.schedule(self.cfg), noise_sigma)
