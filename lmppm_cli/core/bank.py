"""The latent bank S = F(X_clean) and the kernel mean z_bar of Eq. 21."""

from __future__ import annotations

import math

import torch

from lmppm_cli.core.neighbours import nearest, nearest_k, squared_distances

# Shifted logits below this are clamped to it before exp: exp(-80) ~ 2e-35 is still a normal float32, where
# exp(-88) and below are denormals that run far slower (docs/speed.md) and weigh nothing beside the max weight exp(0) = 1.
EXP_FLOOR = -80.0


def kernel_mean(
    z: torch.Tensor, bank: torch.Tensor, sigma_ker: float, chunk: int = 8192, top_k: int | None = None, index=None
) -> torch.Tensor:
    """Eq. 21: z_bar(z) = sum_j w_j F(x_j), w = softmax_j(-||z - F(x_j)||^2 / (2 sigma_ker^2)).

    Computed as an online (streaming) log-sum-exp over chunks of the bank, so it never overflows or
    underflows for any sigma_ker and needs O(B * chunk) memory for a bank of any size. It runs in float32
    or wider with autocast off, so bf16/fp16 restoration never rounds the log-sum-exp.
    `top_k` (beyond the paper, for large banks): only the k bank points nearest to z, weights renormalised;
    found by `index` (a neighbours.FaissIndex over the bank, approximate) when given, else by an exact scan.
    Notation -> paper: `bank` rows are F(x_j) (the set S), `sigma_ker` is sigma_ker.
    """
    dtype = torch.promote_types(z.dtype, torch.float32)
    with torch.autocast(z.device.type, enabled=False):
        zf, s = z.to(dtype), bank.to(dtype)
        if top_k is not None and top_k < bank.shape[0]:
            idx, d2 = (
                index.search_k(zf, top_k, 4 * top_k) if index is not None else nearest_k(zf, s, top_k, chunk)
            )  # (B, k)
            w = torch.softmax(-d2 / (2.0 * sigma_ker**2), dim=1)
            return torch.einsum("bk,bkd->bd", w, s[idx]).to(z.dtype)
        return _streamed_kernel_mean(zf, s, sigma_ker, chunk).to(z.dtype)


def _streamed_kernel_mean(z: torch.Tensor, bank: torch.Tensor, sigma_ker: float, chunk: int) -> torch.Tensor:
    run_max = torch.full(z.shape[:1], -math.inf, device=z.device, dtype=z.dtype)  # (B,)
    run_sum = torch.zeros_like(run_max)  # (B,)
    acc = torch.zeros_like(z)  # (B, d)
    for start in range(0, bank.shape[0], chunk):
        s = bank[start : start + chunk]  # (n, d)
        logits = -squared_distances(z, s) / (2.0 * sigma_ker**2)  # (B, n)
        new_max = torch.maximum(run_max, logits.max(1).values)
        rescale = torch.exp(run_max - new_max)  # exp(-inf) = 0 on the first chunk
        w = torch.exp((logits - new_max.unsqueeze(1)).clamp_min_(EXP_FLOOR))  # (B, n)
        run_sum = run_sum * rescale + w.sum(1)
        acc = acc * rescale.unsqueeze(1) + w @ s
        run_max = new_max
    return acc / run_sum.unsqueeze(1)


def default_sigma_ker(bank: torch.Tensor, chunk: int = 8192, sample: int = 10_000) -> float:
    """Data-driven default kernel width: the median distance from a bank point to its nearest other
    bank point, divided by sqrt(d) to give a per-coordinate scale. For banks of more than `sample`
    points the median is taken over that many evenly spaced points (each against the whole bank).

    At this width a bank point's own weight dominates its kernel mean only moderately (neighbours at the
    typical spacing get weight exp(-d/2) relative to it), so z_bar interpolates between nearby training
    latents instead of snapping to one of them or averaging the whole set.
    """
    pick = torch.linspace(0, len(bank) - 1, min(len(bank), sample)).round().long().to(bank.device)
    _, d2 = nearest(bank[pick], bank, chunk=chunk, exclude=pick)
    return float(d2.sqrt().median() / math.sqrt(bank.shape[1]))
