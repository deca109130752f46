"""The restoration flow of Alg. 4 in latent space, as pure functions of (D_S, bank).

Notation -> paper (the settings are one FlowConfig, passed whole):
    z            z^n, the current latent (B, d)
    distance     D_S, the learned distance to the set S of training latents
    bank         S = {F(x_j)}, the training latents (N, d)
    alpha, beta  alpha, beta of Alg. 4 (0 < alpha, beta; alpha + beta < 1); alpha = 0 with adaptive off is Ablation_lmppm
    adaptive     ours: the kernel step's length capped at D_S(z), so latents on the manifold stay put
    top_k        ours: the kernel mean over the k nearest bank points only (large banks); None: all
    sigma_ker    the kernel width of Eq. 21
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch

from lmppm_cli.core.bank import kernel_mean
from lmppm_cli.core.config import FlowConfig

GRAD_EPS = 1e-12


def normalized_gradient(distance, z: torch.Tensor, create_graph: bool = False):
    """Eq. 14: grad_hat D(z) = grad D(z) / ||grad D(z)||, guarded so that a zero gradient gives 0.

    Returns (D(z) (B,), grad_hat (B, d)). With `create_graph` the result stays differentiable with
    respect to the network's parameters and z (needed by the shift terms of Eq. 20).
    """
    with torch.enable_grad():
        if not z.requires_grad:
            z = z.detach().requires_grad_(True)
        d = distance(z)  # (B,)
        (g,) = torch.autograd.grad(d.sum(), z, create_graph=create_graph)
    norm = g.norm(dim=1, keepdim=True)
    return d, g / norm.clamp_min(GRAD_EPS)


def latent_shift(distance, z: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """z_shift = z - D_S(z) grad_hat D_S(z) (Sec. 4.2): one full step to the nearest point of S."""
    d, g = normalized_gradient(distance, z, create_graph=create_graph)
    return z - d.unsqueeze(1) * g


def flow_step(z, distance, bank, flow: FlowConfig, index=None) -> torch.Tensor:
    """One step of Alg. 4 with the step's settings `flow` (alpha, beta, sigma_ker, adaptive, top_k):
    z^{n+1} = (1 - beta) z^n + beta z_bar(z^n) - alpha D_S(z^n) grad_hat D_S(z^n),
    i.e. z^n + beta (z_bar - z^n) - alpha D grad_hat D.

    `adaptive` (beyond the paper; needs D): the kernel step's length is capped at the learned distance,
    z^n + beta min(D, ||z_bar - z^n||) (z_bar - z^n) / ||z_bar - z^n||, so that, like the distance step,
    it vanishes where D says z^n is on the data manifold (D <= 0) and equals the paper's step far from it.
    `top_k`: the kernel mean over the k nearest bank points only, found through `index` if given (bank.kernel_mean)."""
    alpha, beta = flow.alpha, flow.beta
    adaptive = flow.adaptive and distance is not None
    d = g = z.new_zeros(())  # replaced below wherever a step uses D
    if alpha or (beta and adaptive):
        assert distance is not None, "a distance step needs D"  # FlowConfig with alpha > 0 is refused without D
        d, g = normalized_gradient(distance, z)
        d = d.detach().unsqueeze(1)  # (B, 1)
    z_next = z
    if beta:
        pull = kernel_mean(z, bank, flow.sigma_ker, top_k=flow.top_k or None, index=index) - z  # (B, d)
        if adaptive:
            pull = pull * (d.clamp_min(0.0) / pull.norm(dim=1, keepdim=True).clamp_min(GRAD_EPS)).clamp(max=1.0)
        z_next = z_next + beta * pull
    if alpha:
        z_next = z_next - alpha * d * g
    return z_next.detach()


def step_schedule(flow: FlowConfig) -> list[FlowConfig]:
    """The settings of each of the flow's steps. `constant` is the paper; `growing` ramps alpha and beta
    linearly up to flow.alpha and flow.beta over the budget (small careful steps first, as in the
    authors' code)."""
    if flow.schedule == "constant":
        return [flow] * flow.steps
    if flow.schedule == "growing":
        ramp = lambda n: dataclasses.replace(flow, alpha=flow.alpha * n / flow.steps, beta=flow.beta * n / flow.steps)  # noqa: E731
        return [ramp(n + 1) for n in range(flow.steps)]
    raise ValueError(f"unknown step schedule {flow.schedule!r}; expected 'constant' or 'growing'.")


@dataclass
class FlowResult:
    z: torch.Tensor  # (B, d) final latents
    steps_taken: torch.Tensor  # (B,) steps each sample ran before its update fell below tol
    trajectory: list[torch.Tensor]  # [z^1, ..., z^N] when asked for, else []


Reencode = Callable[
    [torch.Tensor, torch.Tensor], torch.Tensor
]  # (z^{n+1} of some rows, their indices) -> latent to go on from


@torch.no_grad()
def run_flow(
    z,
    distance,
    bank,
    flow: FlowConfig,
    *,
    keep_trajectory=False,
    reencode: Reencode | None = None,
    index=None,
) -> FlowResult:
    """Alg. 4's loop over `flow`'s steps (step_schedule). A sample stops once ||z^{n+1} - z^n|| / ||z^n||
    < flow.tol, so each sample's result is independent of the other samples in its batch. `reencode`
    (U-Nets, Appendix B) maps each step's z^{n+1} to the latent of its decoded image, F(G(...)), from
    which the next step starts. The tolerance measures the flow's own update z^{n+1} - z^n (z^n =
    F(x^n)), as in Alg. 4: near the data the D and kernel steps are small and the sample stops, far
    from it it goes on. `index`: a search structure over the bank for a top-k kernel mean."""
    active = torch.ones(z.shape[0], dtype=torch.bool, device=z.device)
    taken = torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
    trajectory = [z.clone()] if keep_trajectory else []
    for step in step_schedule(flow):
        if not active.any():
            break
        idx = active.nonzero().squeeze(1)
        z_new = flow_step(z[idx], distance, bank, step, index)
        change = (z_new - z[idx]).norm(dim=1) / z[idx].norm(dim=1).clamp_min(GRAD_EPS)
        z = z.clone()
        z[idx] = z_new if reencode is None else reencode(z_new, idx)
        taken[idx] += 1
        active[idx[change < flow.tol]] = False
        if keep_trajectory:
            trajectory.append(z.clone())
    return FlowResult(z=z, steps_taken=taken, trajectory=trajectory)
