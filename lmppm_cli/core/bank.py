"""The latent bank S = F(X_clean) and the kernel mean z_bar of Eq. 21."""

from __future__ import annotations

import math

import torch

from lmppm_cli.core.neighbours import nearest, squared_distances


def kernel_mean(z: torch.Tensor, bank: torch.Tensor, sigma_ker: float, chunk: int = 8192) -> torch.Tensor:
    """Eq. 21: z_bar(z) = sum_j w_j F(x_j), w = softmax_j(-||z - F(x_j)||^2 / (2 sigma_ker^2)).

    Computed as an online (streaming) log-sum-exp over chunks of the bank, so it never overflows or
    underflows for any sigma_ker and needs O(B * chunk) memory for a bank of any size.
    Notation -> paper: `bank` rows are F(x_j) (the set S), `sigma_ker` is sigma_ker.
    """
    run_max = torch.full(z.shape[:1], -math.inf, device=z.device, dtype=z.dtype)  # (B,)
    run_sum = torch.zeros_like(run_max)  # (B,)
    acc = torch.zeros_like(z)  # (B, d)
    for start in range(0, bank.shape[0], chunk):
        s = bank[start : start + chunk]  # (n, d)
        logits = -squared_distances(z, s) / (2.0 * sigma_ker**2)  # (B, n)
        new_max = torch.maximum(run_max, logits.max(1).values)
        rescale = torch.exp(run_max - new_max)  # exp(-inf) = 0 on the first chunk
        w = torch.exp(logits - new_max.unsqueeze(1))  # (B, n)
        run_sum = run_sum * rescale + w.sum(1)
        acc = acc * rescale.unsqueeze(1) + w @ s
        run_max = new_max
    return acc / run_sum.unsqueeze(1)


def default_sigma_ker(bank: torch.Tensor, chunk: int = 8192) -> float:
    """Data-driven default kernel width: the median distance from a bank point to its nearest other
    bank point, divided by sqrt(d) to give a per-coordinate scale.

    At this width a bank point's own weight dominates its kernel mean only moderately (neighbours at the
    typical spacing get weight exp(-d/2) relative to it), so z_bar interpolates between nearby training
    latents instead of snapping to one of them or averaging the whole set.
    """
    _, d2 = nearest(bank, bank, chunk=chunk, exclude_self=True)
    return float(d2.sqrt().median() / math.sqrt(bank.shape[1]))
