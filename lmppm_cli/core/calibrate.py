"""Data-driven defaults of the flow (alpha, beta, steps, sigma_ker), chosen on validation images.

The paper fixes alpha, beta and the step count by a "preliminary grid search" it does not report. We do
that search at the end of every training run, on the validation split only, with Gaussian noise at
sigma_d and 1.75 sigma_d (0.4 and 0.7 for digits), the only degradation training knows, or at the levels
`lmppm train --calibration-noise` names (ours: photos are judged down to clean, where the flow can cost):

1. fidelity first: keep the settings that lose no PSNR against the plain single pass G(F(x)) at
   any noise level, and that cost a *clean* image at most CLEAN_SSIM_SLACK (0.02) of SSIM against
   the single pass: a blind restorer must leave good images alone (if none qualify, the setting with
   the best worst-case gain);
2. then realism: of those, take the one whose restored latents end closest to the bank S (mean
   distance to the nearest training latent), i.e. the strongest projection towards the data that
   costs no fidelity. No classifier is used, so the rule works for any domain.

The paper's constraints hold throughout: 0 < alpha (0 for the ablations), 0 < beta, alpha + beta < 1.
Models with a distance network are searched with and without the adaptive kernel step (flow.flow_step).
"""

from __future__ import annotations

import dataclasses
import itertools

import torch

from lmppm_cli.core.metrics import psnr, ssim
from lmppm_cli.core.models import LMPPM, LatentDiffusion
from lmppm_cli.core.neighbours import nearest
from lmppm_cli.core.noise import noisy
from lmppm_cli.core.restoration import restore_steps, single_pass
from lmppm_cli.core.train_config import CALIBRATION_GRIDS

ALPHAS = (0.05, 0.15, 0.3, 0.45, 0.6)
BETAS = (0.03, 0.05, 0.1, 0.15, 0.2, 0.3)
STEPS = (1, 2, 3, 5, 8)
KERNEL_MULTIPLIERS = (0.5, 1.0, 2.0, 4.0)
NOISE_FACTORS = (1.0, 1.75)
CLEAN_SSIM_SLACK = 0.02
# `small`: for networks whose flow step is costly (the photo U-Net: 12 settings instead of 240, 3 step counts)
GRIDS = {
    "full": (ALPHAS, BETAS, STEPS, KERNEL_MULTIPLIERS),
    "small": ((0.05, 0.15, 0.3), (0.03, 0.1), (1, 2, 3), (1.0,)),
}
assert tuple(GRIDS) == CALIBRATION_GRIDS  # the names TrainConfig offers


def noise_levels(sigma_d: float, levels=None) -> tuple[tuple[float, ...], list[str]]:
    """The calibration's noise levels and their names: `levels` as given, or NOISE_FACTORS x sigma_d."""
    if levels:
        return tuple(levels), [f"sigma {v:g}" for v in levels]
    return tuple(sigma_d * f for f in NOISE_FACTORS), [f"{f:g}x" for f in NOISE_FACTORS]


def noisy_cases(
    model: LMPPM | LatentDiffusion, clean: torch.Tensor, sigma_d: float, generator: torch.Generator, levels=None
):
    """The validation images with noise at each level of `noise_levels`, as
    (noisy, PSNR of the single pass G(F(noisy))) — the reference every method must beat."""
    cases = []
    for sigma in noise_levels(sigma_d, levels)[0]:
        x = noisy(clean, sigma, generator)
        cases.append((x, psnr(single_pass(model, x), clean).mean().item()))
    return cases


def choose(rows: list[dict]) -> dict:
    """Rule of the module docstring: no PSNR loss at either noise level, at most CLEAN_SSIM_SLACK of
    SSIM lost on clean images, then closest to the bank."""
    safe = [
        r
        for r in rows
        if r["worst"] >= 0.0 and r["clean_ssim_loss"] is not None and r["clean_ssim_loss"] <= CLEAN_SSIM_SLACK
    ]
    return min(safe, key=lambda r: r["distance_to_bank"]) if safe else max(rows, key=lambda r: r["worst"])


def gains_row(setting: dict, gains: list[float], names=None) -> dict:
    """A setting with its PSNR gain at each noise level (named as `noise_levels` names them) and the worst."""
    names = names or noise_levels(1.0)[1]
    return {**setting, "gains": dict(zip(names, gains)), "worst": min(gains)}


@torch.no_grad()
def calibrate_flow(
    model: LMPPM,
    clean: torch.Tensor,
    sigma_d: float,
    generator: torch.Generator,
    alphas=ALPHAS,
    betas=BETAS,
    multipliers=KERNEL_MULTIPLIERS,
    steps=STEPS,
    min_gain: float = 0.0,
    levels=None,
    on_setting=lambda done, total: None,
):
    """-> (chosen FlowConfig, rows): each row a setting with its PSNR gains (dB), worst gain, distance
    to the bank and SSIM lost on clean images. `alphas=(0.0,)` calibrates the kernel-only flow
    (Ablation_dae on a DAE); GRIDS holds the searched values. `min_gain` (ours): where the chosen
    setting's worst gain is below it, the flow is not worth its cost and the single pass G(F(x)) is
    the default (0 steps). `levels`: the noise levels judged (default sigma_d x NOISE_FACTORS).
    `on_setting(done, total)`: told after each setting (all its step counts), for a progress bar."""
    base = model.config.flow
    cases = noisy_cases(model, clean, sigma_d, generator, levels)
    names = noise_levels(sigma_d, levels)[1]
    ssim_single = ssim(single_pass(model, clean), clean).mean().item()
    adaptives = (False, True) if model.distance is not None else (False,)  # the cap needs D
    rows = []
    grid = [g for g in itertools.product(alphas, betas, multipliers, adaptives) if g[0] + g[1] < 1.0]
    on_setting(0, len(grid))
    for done, (alpha, beta, mult, adaptive) in enumerate(grid, 1):
        flow = dataclasses.replace(
            base, alpha=alpha, beta=beta, steps=max(steps), sigma_ker=base.sigma_ker * mult, adaptive=adaptive
        )
        setting = {"alpha": alpha, "beta": beta, "sigma_ker": flow.sigma_ker, "adaptive": adaptive}
        rows += _rows_by_steps(model, flow, clean, cases, ssim_single, setting, steps, names)
        on_setting(done, len(grid))
    best = choose(rows)
    keys = ("alpha", "beta", "steps", "sigma_ker", "adaptive")
    chosen = dataclasses.replace(base, **{k: best[k] for k in keys})
    if min_gain > 0 and best["worst"] < min_gain:
        chosen = dataclasses.replace(chosen, steps=0)
    return chosen, rows


def _rows_by_steps(
    model: LMPPM, flow, clean: torch.Tensor, cases, ssim_single: float, setting: dict, counts=STEPS, names=None
) -> list[dict]:
    """One row per step count of `counts` for one setting, from one flow run per input (restore_steps);
    each metric is computed once over all step counts together. The clean images are restored and
    scored only at step counts that lose no PSNR: elsewhere the rule rejects the row whatever its SSIM
    (clean_ssim_loss None). Same choice as restoring and scoring everything at each count."""
    n, s = len(clean), len(counts)
    per_step = lambda values, k=s: values.view(k, n).mean(1).tolist()  # noqa: E731
    gains, near = [], []
    for x, single in cases:
        images, latents = restore_steps(model, x, flow, counts)
        gains.append([v - single for v in per_step(psnr(images.flatten(0, 1), clean.repeat(s, 1, 1, 1)))])
        near.append(per_step(nearest(latents.flatten(0, 1), model.bank)[1].sqrt()))
    worst = [min(g[i] for g in gains) for i in range(s)]
    kept = tuple(steps for steps, w in zip(counts, worst) if w >= 0.0)
    clean_loss = dict.fromkeys(counts)
    if kept:
        budget = max(kept) if flow.schedule == "constant" else flow.steps  # a growing ramp depends on the budget
        on_clean, _ = restore_steps(model, clean, dataclasses.replace(flow, steps=budget), kept)
        scores = per_step(ssim(on_clean.flatten(0, 1), clean.repeat(len(kept), 1, 1, 1)), len(kept))
        clean_loss |= {steps: ssim_single - v for steps, v in zip(kept, scores)}
    return [
        gains_row(setting | {"steps": steps}, [g[i] for g in gains], names)
        | {"distance_to_bank": sum(d[i] for d in near) / len(near), "clean_ssim_loss": clean_loss[steps]}
        for i, steps in enumerate(counts)
    ]
