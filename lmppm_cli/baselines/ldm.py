"""The LDM baseline: a DDPM (Alg. 2 training, Alg. 3 sampling) on the DAE's standardised latents.

Notation -> paper: betas = beta_t (linear 1e-4..0.02), alphas = alpha_t = 1 - beta_t,
alpha_bar = prod_{i<=t} alpha_i, T = 2000 steps, t in {0, ..., T-1}, eps_theta = model(x_t, t/T).
Restoration encodes the degraded image, noises its latent to `start_step` and runs Alg. 3 from there;
generation runs the full chain from N(0, I).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from lmppm_cli.calibrate import gains_row, noisy_cases
from lmppm_cli.config import DiffusionConfig
from lmppm_cli.metrics import psnr
from lmppm_cli.models import LatentDiffusion, encode_all

START_STEPS = (0, 10, 25, 50, 100, 200, 300, 500, 800)


@dataclass(frozen=True)
class Schedule:
    betas: torch.Tensor  # (T,)
    alphas: torch.Tensor  # (T,)
    alpha_bar: torch.Tensor  # (T,)

    @property
    def steps(self) -> int:
        return len(self.betas)


def schedule(cfg: DiffusionConfig, device="cpu") -> Schedule:
    """Alg. 2, lines 1-4: linear beta_t, alpha_t = 1 - beta_t, alpha_bar_t = prod alpha_i (float64 product)."""
    betas = torch.linspace(cfg.beta_start, cfg.beta_end, cfg.steps, dtype=torch.float64)
    alphas = 1.0 - betas
    return Schedule(betas.float().to(device), alphas.float().to(device), torch.cumprod(alphas, 0).float().to(device))


def q_sample(z0, t, eps, sched: Schedule) -> torch.Tensor:
    """Alg. 2, line 8: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps. t: (B,) long."""
    ab = sched.alpha_bar[t].unsqueeze(1)
    return ab.sqrt() * z0 + (1.0 - ab).sqrt() * eps


def diffusion_loss(model: LatentDiffusion, z0, generator) -> torch.Tensor:
    """Alg. 2, lines 6-10: ||eps - eps_theta(x_t, t/T)||^2 for t ~ U{0..T-1}, eps ~ N(0, I)."""
    sched = schedule(model.config.diffusion, z0.device)
    t = torch.randint(0, sched.steps, (len(z0),), generator=generator, device=generator.device).to(z0.device)
    eps = torch.randn(z0.shape, generator=generator, device=generator.device).to(z0.device)
    pred = model.denoiser(q_sample(z0, t, eps, sched), t.float() / sched.steps)
    return (pred - eps).pow(2).mean()


@torch.no_grad()
def reverse(model: LatentDiffusion, z_t, start: int, generator) -> torch.Tensor:
    """Alg. 3 from step `start` down to 0: x = (x_t - coef_t eps_theta) / sqrt(alpha_t) + sigma_t z,
    coef_t = beta_t / sqrt(1 - alpha_bar_t), sigma_t = sqrt(beta_t), no noise at t = 0."""
    sched = schedule(model.config.diffusion, z_t.device)
    for t in range(start, -1, -1):
        t_frac = torch.full((len(z_t),), t / sched.steps, device=z_t.device)
        eps = model.denoiser(z_t, t_frac)
        coef = sched.betas[t] / (1.0 - sched.alpha_bar[t]).sqrt()
        z_t = (z_t - coef * eps) / sched.alphas[t].sqrt()
        if t > 0:
            noise = torch.randn(z_t.shape, generator=generator, device=generator.device).to(z_t.device)
            z_t = z_t + sched.betas[t].sqrt() * noise
    return z_t


def standardise(model: LatentDiffusion, z):
    return (z - model.latent_mean) / model.latent_std


def unstandardise(model: LatentDiffusion, z):
    return z * model.latent_std + model.latent_mean


@torch.no_grad()
def restore(model: LatentDiffusion, x: torch.Tensor, generator, start_step: int | None = None) -> torch.Tensor:
    """Encode, noise the latent to `start_step` (Alg. 2, line 8), denoise with Alg. 3, decode."""
    start = model.config.diffusion.start_step if start_step is None else start_step
    z, skips = model.autoencoder.encode(x.to(model.device))
    z0 = standardise(model, z)
    eps = torch.randn(z0.shape, generator=generator, device=generator.device).to(z0.device)
    z_t = q_sample(z0, torch.full((len(z0),), start, device=z0.device), eps, schedule(model.config.diffusion, z0.device))
    return model.autoencoder.decode(unstandardise(model, reverse(model, z_t, start, generator)), skips)


@torch.no_grad()
def generate(model: LatentDiffusion, seeds: list[int]) -> torch.Tensor:
    """The full chain of Alg. 3 from N(0, I), one seed per sample, decoded."""
    d, out = model.config.autoencoder.latent_dim, []
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        z_t = torch.randn(1, d, generator=g).to(model.device)
        out.append(reverse(model, z_t, model.config.diffusion.steps - 1, g))
    return model.autoencoder.decode(unstandardise(model, torch.cat(out)), ())


class LdmObjective:
    """Alg. 2 on the latents of a trained DAE, whose F and G are copied in and kept frozen."""

    def __init__(self, config, data, tcfg, device, base):
        self.tcfg = tcfg
        self.model = LatentDiffusion(dataclasses.replace(config, autoencoder=base.config.autoencoder)).to(device)
        self.model.autoencoder.load_state_dict(base.autoencoder.state_dict())
        self.model.autoencoder.requires_grad_(False)
        z = encode_all(self.model.autoencoder, data.train.images.to(device))
        self.model.latent_mean.copy_(z.mean(0))
        self.model.latent_std.copy_(z.std(0).clamp_min(1e-6))

    def param_groups(self):
        return [{"params": self.model.denoiser.parameters(), "lr": self.tcfg.lr}]

    def loss(self, x, labels, generator, validation: bool):
        with torch.no_grad():
            z0 = standardise(self.model, self.model.autoencoder.encode(x)[0])
        loss = diffusion_loss(self.model, z0, generator)
        return loss, {"eps_mse": loss}

    def finish(self, loop) -> dict:
        """The start step, on the validation images (see `matched_start_step`), with the PSNR of
        each candidate start for the record."""
        gen = torch.Generator(loop.device).manual_seed(loop.tcfg.seed + 3)
        cases = noisy_cases(self.model.autoencoder, loop.val_x, loop.tcfg.sigma_d, gen)
        start = matched_start_step(self.model, loop.val_x, cases[0][1])
        diffusion = dataclasses.replace(self.model.config.diffusion, start_step=start)
        self.model.config = dataclasses.replace(self.model.config, diffusion=diffusion)
        rows = []
        for step in sorted({*START_STEPS, start}):
            gains = [psnr(restore(self.model, noisy, gen, step), loop.val_x).mean().item() - single
                     for _, noisy, _, _, single in cases]  # fmt: skip
            rows.append(gains_row({"start_step": step}, gains))
        return {"start_step": start, "start_step_psnr": rows}


@torch.no_grad()
def matched_start_step(model: LatentDiffusion, clean: torch.Tensor, noisy: torch.Tensor) -> int:
    """SDEdit's rule: start where the diffusion's noise-to-signal ratio sqrt((1 - abar_t) / abar_t)
    equals the RMS error that training-level noise causes in the standardised latent. (A PSNR rule
    always picks t = 0, where the LDM is its DAE: every resampling step costs PSNR.)"""
    err = standardise(model, model.autoencoder.encode(noisy)[0]) - standardise(model, model.autoencoder.encode(clean)[0])
    rms = err.pow(2).mean().sqrt()
    sched = schedule(model.config.diffusion, clean.device)
    ratio = ((1.0 - sched.alpha_bar) / sched.alpha_bar).sqrt()
    return int((ratio - rms).abs().argmin())
