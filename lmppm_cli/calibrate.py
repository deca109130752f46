"""Data-driven defaults of the flow (alpha, beta, steps, sigma_ker), chosen on validation images.

The paper fixes alpha, beta and the step count by a "preliminary grid search" it does not report. We do
that search at the end of every training run, on the validation split only: Gaussian noise at sigma_d
and 1.75 sigma_d (0.4 and 0.7 for digits), and keep the setting whose *worst* PSNR gain over the plain
single pass G(F(x)) is largest, so the flow has to earn its steps at both noise levels. The paper's
constraints hold throughout: 0 < alpha, 0 < beta, alpha + beta < 1.
"""

from __future__ import annotations

import dataclasses
import itertools

import torch

from lmppm_cli.flow import run_flow
from lmppm_cli.metrics import psnr
from lmppm_cli.models import LMPPM

ALPHAS = (0.15, 0.3, 0.45, 0.6, 0.75)
BETAS = (0.03, 0.1, 0.2)
STEPS = (1, 2, 3, 5, 8)
KERNEL_MULTIPLIERS = (0.5, 1.0, 2.0, 4.0)
NOISE_FACTORS = (1.0, 1.75)


@torch.no_grad()
def calibrate_flow(model: LMPPM, clean: torch.Tensor, sigma_d: float, generator: torch.Generator):
    """-> (best FlowConfig, rows) where each row is a dict of the setting and its PSNR gains (dB)."""
    model.eval()
    base = model.config.flow
    ae = model.autoencoder
    cases = []
    for factor in NOISE_FACTORS:
        noise = torch.randn(clean.shape, generator=generator, device=clean.device) * sigma_d * factor
        noisy = (clean + noise).clamp(0.0, 1.0)
        z, skips = ae.encode(noisy)
        single = psnr(ae.decode(z, skips), clean).mean().item()
        cases.append((factor, z, skips, single))
    rows = []
    for alpha, beta, mult in itertools.product(ALPHAS, BETAS, KERNEL_MULTIPLIERS):
        if alpha + beta >= 1.0:
            continue
        gains = {n: [] for n in STEPS}
        for factor, z, skips, single in cases:
            res = run_flow(z, model.distance, model.bank, alpha=alpha, beta=beta,
                           sigma_ker=base.sigma_ker * mult, steps=max(STEPS), tol=base.tol, keep_trajectory=True)  # fmt: skip
            for n in STEPS:  # the trajectory ends early once every sample has met the tolerance
                z_n = res.trajectory[min(n, len(res.trajectory) - 1)]
                gains[n].append(psnr(ae.decode(z_n, skips), clean).mean().item() - single)
        for n in STEPS:
            rows.append({"alpha": alpha, "beta": beta, "steps": n, "sigma_ker": base.sigma_ker * mult,
                         "gains": dict(zip((f"{f:g}x" for f in NOISE_FACTORS), gains[n])), "worst": min(gains[n])})  # fmt: skip
    best = max(rows, key=lambda r: r["worst"])
    chosen = dataclasses.replace(base, alpha=best["alpha"], beta=best["beta"], steps=best["steps"], sigma_ker=best["sigma_ker"])
    return chosen, rows

