"""Pixel-space MPPM (Sec. 4.1, Alg. 1): an MLP autoencoder F/G and a distance network D_M in the
ambient space, trained by the loss of Eq. 16; restoration by the flow of Eq. 15 with G_bar of Eq. 19.

The flow is the core's (flow.py): Eq. 15 is Alg. 4's update with x in place of z and, in place of the
bank of training latents, the Monte Carlo set {G(z_i)}, z_i ~ N(z_alpha, sigma_ker^2) around every
training latent z_alpha, weighted with the noise width sigma_d (Eq. 19). Its kernel mean is the core's
streaming log-sum-exp (bank.py).

Notation -> paper: x (n, D) ambient points; z = F(x) (n, d); x* = G(F(x)) (Eq. 18);
x_shift = x - D(x) grad_hat D(x) (Eq. 17).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lmppm_cli.core.config import FlowConfig
from lmppm_cli.core.flow import FlowResult, latent_shift, run_flow

MPPM_TERMS = ("distance", "recon", "boundary", "positivity", "shift")


def mlp(sizes: tuple[int, ...], dropout: float = 0.0) -> nn.Sequential:
    """Fully connected layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers += [nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class MppmConfig:
    """Table 7 (encoder 3->64->64->1, decoder 1->64->64->3, distance 3->16->8->4->1, ReLU) and the
    inference settings of Table 10 (alpha 0.15, beta 0.1, tolerance 0.005, at most 60 iterations)."""

    ambient_dim: int = 3
    latent_dim: int = 1
    hidden: tuple[int, ...] = (64, 64)
    distance_hidden: tuple[int, ...] = (16, 8, 4)
    alpha: float = 0.15
    beta: float = 0.1
    tol: float = 0.005
    max_steps: int = 60
    mc_samples: int = 8  # Monte Carlo samples of z around each training latent (Appendix A.2)


class Mppm(nn.Module):
    def __init__(self, cfg: MppmConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or MppmConfig()
        self.encoder = mlp((cfg.ambient_dim, *cfg.hidden, cfg.latent_dim))
        self.decoder = mlp((cfg.latent_dim, *reversed(cfg.hidden), cfg.ambient_dim))
        self.distance_net = mlp((cfg.ambient_dim, *cfg.distance_hidden, 1))

    def distance(self, x: torch.Tensor) -> torch.Tensor:
        return self.distance_net(x).squeeze(1)  # (n,)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """x* = G(F(x)), Eq. 18 (also the DAE's restoration, for a DAE-trained F/G)."""
        return self.decoder(self.encoder(x))


def mppm_loss(net: Mppm, x_clean, x_noisy, weights: dict[str, float] | None = None):
    """Eq. 16, each sum a mean over the batch. Returns (total, {term: value}).

    Terms: (1) (D(x_i) - ||x_i - x_i*||)^2 on noisy points; (2) ||x^clean - G(F(x^clean))||^2;
    (3) D(x^clean)^2; (4) (D - |D|)^2 on clean and noisy points; (5) ||x_shift - x*||^2.
    """
    weights = weights or {}
    x_star = net.project(x_noisy)  # (B, D)
    d_noisy, d_clean = net.distance(x_noisy), net.distance(x_clean)
    d_all = torch.cat([d_noisy, d_clean])
    x_shift = latent_shift(net.distance, x_noisy, create_graph=True)  # Eq. 17, (B, D)
    terms = {
        "distance": (d_noisy - (x_noisy - x_star).norm(dim=1)).pow(2).mean(),
        "recon": (x_clean - net.project(x_clean)).pow(2).sum(1).mean(),
        "boundary": d_clean.pow(2).mean(),
        "positivity": (d_all - d_all.abs()).pow(2).mean(),
        "shift": (x_shift - x_star).pow(2).sum(1).mean(),
    }
    return sum(weights.get(k, 1.0) * v for k, v in terms.items()), terms


@torch.no_grad()
def g_bar_samples(net: Mppm, bank: torch.Tensor, sigma_ker: float, generator: torch.Generator) -> torch.Tensor:
    """The Monte Carlo set of Eq. 19 / Eq. 24: G(z_i) for mc_samples draws z_i ~ N(z_alpha, sigma_ker^2)
    around every training latent z_alpha of `bank` (N, d). Returns (N * mc_samples, D).

    G_bar(x) of Alg. 1 (the sum over alpha of Eq. 19) is then the kernel mean of x over this set with
    width sigma_d; we normalise over all samples of all alpha together, which is Eq. 23 with P_hat
    summed over the bank (summing per-alpha normalised means would not give a point near the data)."""
    z = bank.repeat_interleave(net.cfg.mc_samples, dim=0)
    noise = torch.randn(z.shape, generator=generator, device=generator.device).to(z.device)
    return net.decoder(z + sigma_ker * noise)


@torch.no_grad()
def restore(net: Mppm, x, samples, sigma_d: float, *, tol=None, keep_trajectory=False) -> FlowResult:
    """Eq. 15 until the relative update is below tol or max_steps: x <- (1 - beta) x + beta G_bar(x)
    - alpha D(x) grad_hat D(x), G_bar from `samples` (g_bar_samples) with width sigma_d."""
    cfg = net.cfg
    flow = FlowConfig(
        alpha=cfg.alpha, beta=cfg.beta, sigma_ker=sigma_d, steps=cfg.max_steps, tol=cfg.tol if tol is None else tol
    )
    return run_flow(x, net.distance, samples, flow, keep_trajectory=keep_trajectory)
