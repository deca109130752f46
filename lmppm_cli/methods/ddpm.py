"""DDPM (Alg. 2 training, Alg. 3 sampling) on vectors: the LDM baseline runs it on latents, the
circle's ambient baseline on points of R^3.

Notation -> paper: betas = beta_t (linear beta_start..beta_end), alphas = alpha_t = 1 - beta_t,
alpha_bar = prod_{i<=t} alpha_i, T steps, t in {0, ..., T-1}, eps_theta = denoiser(x_t, t/T).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Schedule:
    betas: torch.Tensor  # (T,)
    alphas: torch.Tensor  # (T,)
    alpha_bar: torch.Tensor  # (T,)

    @property
    def steps(self) -> int:
        return len(self.betas)


def schedule(cfg, device="cpu") -> Schedule:
    """Alg. 2, lines 1-4: linear beta_t, alpha_t = 1 - beta_t, alpha_bar_t = prod alpha_i (float64
    product). `cfg` has steps, beta_start and beta_end."""
    betas = torch.linspace(cfg.beta_start, cfg.beta_end, cfg.steps, dtype=torch.float64)
    alphas = 1.0 - betas
    return Schedule(betas.float().to(device), alphas.float().to(device), torch.cumprod(alphas, 0).float().to(device))


def q_sample(x0, t, eps, sched: Schedule) -> torch.Tensor:
    """Alg. 2, line 8: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps. t: (B,) long."""
    ab = sched.alpha_bar[t].unsqueeze(1)
    return ab.sqrt() * x0 + (1.0 - ab).sqrt() * eps


def diffusion_loss(denoiser, sched: Schedule, x0, generator) -> torch.Tensor:
    """Alg. 2, lines 6-10: ||eps - eps_theta(x_t, t/T)||^2 for t ~ U{0..T-1}, eps ~ N(0, I)."""
    t = torch.randint(0, sched.steps, (len(x0),), generator=generator, device=generator.device).to(x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=generator.device).to(x0.device)
    pred = denoiser(q_sample(x0, t, eps, sched), t.float() / sched.steps)
    return (pred - eps).pow(2).mean()


def gaussian(shape, generator) -> torch.Tensor:
    """N(0, 1) of `shape` from one generator, or row by row from a list of generators."""
    if isinstance(generator, list):
        return torch.stack([torch.randn(shape[1:], generator=g, device=g.device) for g in generator])
    return torch.randn(shape, generator=generator, device=generator.device)


@torch.no_grad()
def reverse(denoiser, sched: Schedule, x_t, start: int, generator, trajectory: list | None = None) -> torch.Tensor:
    """Alg. 3 from step `start` down to 0: x = (x_t - coef_t eps_theta) / sqrt(alpha_t) + sigma_t z,
    coef_t = beta_t / sqrt(1 - alpha_bar_t), sigma_t = sqrt(beta_t), no noise at t = 0. Appends every
    iterate to `trajectory` when one is given. `generator`: one for the batch, or a list of one per row
    (each row's noise then depends on its own generator only, whatever the batch)."""
    for t in range(start, -1, -1):
        t_frac = torch.full((len(x_t),), t / sched.steps, device=x_t.device)
        eps = denoiser(x_t, t_frac)
        coef = sched.betas[t] / (1.0 - sched.alpha_bar[t]).sqrt()
        x_t = (x_t - coef * eps) / sched.alphas[t].sqrt()
        if t > 0:
            x_t = x_t + sched.betas[t].sqrt() * gaussian(x_t.shape, generator).to(x_t.device)
        if trajectory is not None:
            trajectory.append(x_t)
    return x_t


def noise_matched_step(sched: Schedule, rms_error: float) -> int:
    """SDEdit's rule: the step whose noise-to-signal ratio sqrt((1 - abar_t) / abar_t) equals the RMS
    error of the degraded input, per coordinate."""
    ratio = ((1.0 - sched.alpha_bar) / sched.alpha_bar).sqrt()
    return int((ratio - rms_error).abs().argmin())


@torch.no_grad()
def restore_from(denoiser, sched: Schedule, x0, start: int, generator, trajectory: list | None = None):
    """SDEdit restoration: noise x0 to step `start` (Alg. 2, line 8), then Alg. 3 down to 0."""
    eps = torch.randn(x0.shape, generator=generator, device=generator.device).to(x0.device)
    x_t = q_sample(x0, torch.full((len(x0),), start, device=x0.device), eps, sched)
    if trajectory is not None:
        trajectory.append(x_t)
    return reverse(denoiser, sched, x_t, start, generator, trajectory)
