"""The LDM baseline: a DDPM (ddpm.py: Alg. 2 training, Alg. 3 sampling; linear betas 1e-4..0.02,
T = 2000) on the DAE's standardised latents.
Restoration encodes the degraded image, noises its latent to `start_step` and runs Alg. 3 from there;
generation runs the full chain from N(0, I).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from lmppm_cli.core.models import LatentDiffusion, encode_all
from lmppm_cli.core.objective import Objective
from lmppm_cli.methods.ddpm import diffusion_loss, noise_matched_step, restore_from, reverse, schedule
from lmppm_cli.methods.registry import Method, plain, register

START_STEPS = (0, 10, 25, 50, 100, 200, 300, 500, 800)


def standardise(model: LatentDiffusion, z):
    return (z - model.latent_mean) / model.latent_std


def unstandardise(model: LatentDiffusion, z):
    return z * model.latent_std + model.latent_mean


@torch.no_grad()
def restore(model: LatentDiffusion, x: torch.Tensor, generator, start_step: int | None = None) -> torch.Tensor:
    """Encode, noise the latent to `start_step` (Alg. 2, line 8), denoise with Alg. 3, decode."""
    start = model.config.diffusion.start_step if start_step is None else start_step
    z, skips = model.autoencoder.encode(x.to(model.device))
    z0 = restore_from(
        model.denoiser, schedule(model.config.diffusion, z.device), standardise(model, z), start, generator
    )
    return model.autoencoder.decode(unstandardise(model, z0), skips)


@torch.no_grad()
def generate(model: LatentDiffusion, seeds: list[int]) -> torch.Tensor:
    """The full chain of Alg. 3 from N(0, I), decoded; one seed per sample, which alone draws its noise
    (so sample i is the same in any batch), and the whole batch denoised together."""
    d = model.config.autoencoder.latent_dim
    sched = schedule(model.config.diffusion, model.device)
    gens = [torch.Generator().manual_seed(seed) for seed in seeds]
    z_t = torch.stack([torch.randn(d, generator=g) for g in gens]).to(model.device)
    return model.autoencoder.decode(
        unstandardise(model, reverse(model.denoiser, sched, z_t, sched.steps - 1, gens)), ()
    )


class LdmObjective(Objective):
    """Alg. 2 on the latents of a trained DAE, whose F and G are copied in and kept frozen."""

    model: LatentDiffusion

    def __init__(self, config, data, tcfg, device, base):
        self.tcfg = tcfg
        self.model = LatentDiffusion(dataclasses.replace(config, autoencoder=base.config.autoencoder))
        self.model.to(device)
        self.model.autoencoder.load_state_dict(base.autoencoder.state_dict())
        self.model.autoencoder.requires_grad_(False)
        z = encode_all(self.model.autoencoder, data.train.images)
        self.model.latent_mean.copy_(z.mean(0))
        self.model.latent_std.copy_(z.std(0).clamp_min(1e-6))

    def param_groups(self):
        return [{"params": self.model.denoiser.parameters(), "lr": self.tcfg.lr}]

    def loss(self, x, labels, generator, validation: bool, share=(0, 1)):
        with torch.no_grad():
            z0 = standardise(self.model, self.model.autoencoder.encode(x)[0])
        loss = diffusion_loss(self.model.denoiser, schedule(self.model.config.diffusion, z0.device), z0, generator)
        return loss, {"eps_mse": loss}

    def finish(self, loop) -> dict:
        """The start step, on the validation images (see `matched_start_step`), with the PSNR of
        each candidate start for the record."""
        from lmppm_cli.core.calibrate import noisy_cases  # the metrics load only here

        gen = torch.Generator(loop.device).manual_seed(loop.tcfg.seed + 3)
        val = loop.calibration_images()
        cases = noisy_cases(self.model, val, loop.tcfg.reference_sigma, gen)
        start = matched_start_step(self.model, val, cases[0][0])
        diffusion = dataclasses.replace(self.model.config.diffusion, start_step=start)
        self.model.config = dataclasses.replace(self.model.config, diffusion=diffusion)
        return {
            "start_step": start,
            "start_step_psnr": start_step_rows(self.model, val, cases, gen, {*START_STEPS, start}),
        }


@torch.no_grad()
def start_step_rows(model: LatentDiffusion, clean: torch.Tensor, cases, generator, steps) -> list[dict]:
    """PSNR gain over the single pass at each start step, on `noisy_cases` of the clean images."""
    from lmppm_cli.core.calibrate import gains_row
    from lmppm_cli.core.metrics import psnr

    rows = []
    for step in sorted(steps):
        gains = [psnr(restore(model, noisy, generator, step), clean).mean().item() - single for noisy, single in cases]
        rows.append(gains_row({"start_step": step}, gains))
    return rows


def psnr_best_start_step(model: LatentDiffusion, clean: torch.Tensor, sigma_d: float, seed: int) -> int:
    """The start step of START_STEPS with the best worst-case PSNR gain on these (validation) images at
    sigma_d and NOISE_FACTORS times it: the LDM tuned for PSNR, beside SDEdit's matched start."""
    from lmppm_cli.core.calibrate import noisy_cases

    gen = torch.Generator(clean.device).manual_seed(seed)
    rows = start_step_rows(model, clean, noisy_cases(model, clean, sigma_d, gen), gen, START_STEPS)
    return max(rows, key=lambda row: row["worst"])["start_step"]


ACC_SLACK = 0.02  # a start's accuracy may be this far below the best start's (calibrate.py's rule)


@torch.no_grad()
def start_scores(model: LatentDiffusion, degraded, clean, labels, classifier, seed: int, steps=None) -> dict:
    """{start step: {"fid", "fid_class", "acc"}} of restoring `degraded` (the degraded `clean` images, of
    class `labels`) from each start step (None: START_STEPS), by the classifier's features and predictions."""
    from lmppm_cli.core.metrics import classifier_outputs, domain_fid  # the metrics load only here

    clean_feats = classifier_outputs(classifier, clean)[0]
    out = {}
    for step in sorted(START_STEPS if steps is None else steps):
        restored = restore(model, degraded, torch.Generator().manual_seed(seed), step)
        feats, predicted = classifier_outputs(classifier, restored)
        fid, per_class = domain_fid(clean_feats, feats, labels)
        acc = (predicted == labels.to(predicted.device)).float().mean().item()
        out[step] = {"fid": round(fid, 2), "fid_class": round(per_class, 1), "acc": round(acc, 4)}
    return out


def best_start(by_start: dict) -> int:
    """The start step for one restoration row, chosen as calibrate.py chooses the flow: fidelity first
    (accuracy within ACC_SLACK of the best start's), then realism (the lowest FID). Only starts above 0:
    from step 0 the chain adds and removes noise of std 0.01 on unit-variance latents, i.e. it is the DAE
    within noise; and FID alone would pick the latest start, where the chain ignores its input."""
    above = {int(k): v for k, v in by_start.items() if int(k) > 0}
    best_acc = max(v["acc"] for v in above.values())
    return min((k for k, v in above.items() if v["acc"] >= best_acc - ACC_SLACK), key=lambda k: above[k]["fid"])


@torch.no_grad()
def matched_start_step(model: LatentDiffusion, clean: torch.Tensor, noisy: torch.Tensor) -> int:
    """SDEdit's rule: start where the diffusion's noise-to-signal ratio sqrt((1 - abar_t) / abar_t)
    equals the RMS error that training-level noise causes in the standardised latent. (A PSNR rule
    always picks t = 0, where the LDM is its DAE: every resampling step costs PSNR.)"""
    err = standardise(model, model.autoencoder.encode(noisy)[0]) - standardise(
        model, model.autoencoder.encode(clean)[0]
    )
    return noise_matched_step(schedule(model.config.diffusion, clean.device), float(err.pow(2).mean().sqrt()))


@dataclass(frozen=True)
class LdmOptions:
    """The LDM's own restoration options: the seed of its sampling noise and the step its reverse chain
    starts from (None: the model's, chosen on validation by SDEdit's rule)."""

    seed: int = 0
    start_step: int | None = None


def restorer(model, options: LdmOptions):
    gen = torch.Generator().manual_seed(options.seed)
    return lambda x, keep=False: plain(restore(model, x, gen, options.start_step))


def generator(model, seeds, flow, keep_trajectory=False, start="latent"):
    return plain(generate(model, seeds))


register(
    Method(
        "ldm",
        "encode, noise to the start step, DDPM reverse chain, decode (Alg. 2/3)",
        model="ldm",
        default_model="mnist-ldm",
        restorer=restorer,
        options=LdmOptions,
        generator=generator,
        objective=LdmObjective,
        container=lambda config, bank=0: LatentDiffusion(config),
        base="dae",
    )
)
