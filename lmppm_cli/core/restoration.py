"""Restoration and generation with a trained model: F, the latent flow of Alg. 4, G."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from lmppm_cli.core.config import FLOW_OPTIONS, FlowConfig, FlowOverride
from lmppm_cli.core.errors import LmppmError
from lmppm_cli.core.flow import run_flow
from lmppm_cli.core.models import LMPPM, LatentDiffusion
from lmppm_cli.core.noise_level import noise_levels


@dataclass
class Restored:
    images: torch.Tensor  # (B, C, H, W) = G(z^N)
    steps_taken: torch.Tensor  # (B,)
    trajectory: list[torch.Tensor]  # decoded images per step, [G(z^1), ..., G(z^N)] when asked for
    latents: list[torch.Tensor] = dataclasses.field(default_factory=list)  # [z^1, ..., z^N] when asked for


EVERYWHERE = tuple(f.name for f in FLOW_OPTIONS if f.metadata.get("everywhere"))  # the bank search and the stop


def flow_settings(model: LMPPM, override: FlowOverride | None = None) -> FlowConfig:
    """The model's saved flow defaults with the fields `override` gives replaced, checked. A setting
    given turns a blind rule off (blind_rule): the flow asked for restores every image; those of
    EVERYWHERE (top_k, tol) apply to every regime of the rule instead."""
    given: dict[str, Any] = (override or FlowOverride()).given()
    if any(k not in EVERYWHERE for k in given):
        given = {"far": None, "noisy": None, **given}
    shared = {k: given.pop(k) for k in EVERYWHERE if k in given}
    flow = dataclasses.replace(everywhere(model.config.flow, **shared), **given)
    check_flow(flow)
    return flow


def everywhere(flow: FlowConfig, **changes) -> FlowConfig:
    """`flow` with `changes` made to it and to its nested flows alike (an ablation removes a part from
    every regime of a blind rule)."""
    nested: dict[str, Any] = {
        k: None if getattr(flow, k) is None else everywhere(getattr(flow, k), **changes) for k in ("far", "noisy")
    }
    changed = dataclasses.replace(flow, **changes, **nested)
    check_flow(changed)
    return changed


def check_flow(flow: FlowConfig) -> None:
    """Alg. 4's constraints: alpha, beta >= 0 (0 for the ablations) and alpha + beta < 1."""
    if min(flow.alpha, flow.beta) < 0 or flow.alpha + flow.beta >= 1.0:
        raise LmppmError(f"alpha + beta must be below 1 (Alg. 4); got {flow.alpha} + {flow.beta}.")
    if flow.schedule not in ("constant", "growing"):
        raise LmppmError(f"unknown schedule {flow.schedule!r}; use constant or growing.")
    if flow.top_k < 0:
        raise LmppmError(f"top-k must be 0 (all bank points) or positive; got {flow.top_k}.")
    if flow.noisy is not None:
        check_flow(flow.noisy)
    if flow.far is not None:
        if flow.far.far is not None and flow.far.far_residual <= flow.far_residual:
            raise LmppmError(
                f"the far flows' residual thresholds must increase; got {flow.far_residual} then {flow.far.far_residual}."
            )
        check_flow(flow.far)


@torch.no_grad()
def restore(model: LMPPM, x: torch.Tensor, flow: FlowConfig | None = None, keep_trajectory=False) -> Restored:
    """Alg. 4, Reconstruction: z^1 = F(x), N flow steps, return G(z^N). x: (B, C, H, W) in [0, 1].
    With a blind rule (FlowConfig.noisy / far), each image takes its regime's flow (blind_rule)."""
    model.eval()
    flow = flow or model.config.flow
    x = x.to(model.device)
    z, skips = model.autoencoder.encode(x)  # (B, d)
    parts = blind_rule(model, x, z, skips, flow)
    if len(parts) == 1:
        return _flow_and_decode(model, z, skips, parts[0][1], keep_trajectory)
    restored = [
        (rows, _flow_and_decode(model, z[rows], tuple(s[rows] for s in skips), f, keep_trajectory)) for rows, f in parts
    ]
    return _merge(restored, len(x))


def blind_rule(model: LMPPM, x: torch.Tensor, z, skips, flow: FlowConfig) -> list[tuple[torch.Tensor, FlowConfig]]:
    """[(rows (B,) bool, the flow for those rows)]: ours, the blind rule. An image whose
    estimated noise is above flow.noisy_above takes flow.noisy. Of the others, one whose reconstruction
    residual RMS(x - G(F(x))) is above flow.far_residual takes flow.far, and so on down the chain of far
    flows (each threshold above the last). Warps, blur, missing pixels and sharpening leave a small
    residual, heavy scribbles a large one; Gaussian noise a large estimated noise (docs/reproduction.md)."""
    rows = torch.ones(len(x), dtype=torch.bool, device=x.device)
    parts = []
    if flow.noisy is not None and flow.noisy_above > 0:
        noisy = noise_levels(x).to(x.device) > flow.noisy_above
        parts.append((noisy, flow.noisy))
        rows = ~noisy
    if flow.far is not None and flow.far_residual > 0:
        residual = (x - model.autoencoder.decode(z, skips).float()).flatten(1).pow(2).mean(1).sqrt()
        while flow.far is not None and flow.far_residual > 0:
            far = residual > flow.far_residual
            parts.append((rows & ~far, flow))
            rows, flow = rows & far, flow.far
    return [(r, f) for r, f in [*parts, (rows, flow)] if r.any()]


def _merge(parts, n: int) -> Restored:
    """One Restored from those of row subsets [(rows, Restored)]; a shorter trajectory holds its last state."""
    first = parts[0][1]
    images = first.images.new_empty((n, *first.images.shape[1:]))
    steps = first.steps_taken.new_empty(n)
    length = max(len(r.trajectory) for _, r in parts)
    trajectory = [images.clone() for _ in range(length)]
    latents = (
        [first.latents[0].new_empty((n, *first.latents[0].shape[1:])) for _ in range(length)] if first.latents else []
    )
    for rows, r in parts:
        images[rows], steps[rows] = r.images, r.steps_taken.to(steps.device)
        for k in range(length):
            trajectory[k][rows] = r.trajectory[min(k, len(r.trajectory) - 1)]
            if latents:
                latents[k][rows] = r.latents[min(k, len(r.latents) - 1)]
    return Restored(images, steps, trajectory, latents)


def _flow_and_decode(model: LMPPM, z, skips, flow: FlowConfig, keep_trajectory: bool) -> Restored:
    result, skip_flow = _run(model, z, skips, flow, keep_trajectory)
    if skip_flow is not None:
        return Restored(skip_flow.images, result.steps_taken, skip_flow.trajectory, result.trajectory)
    decode = lambda z: model.autoencoder.decode(z).float()  # noqa: E731
    trajectory = [decode(zn) for zn in result.trajectory]
    return Restored(decode(result.z), result.steps_taken, trajectory, result.trajectory)


def _run(model: LMPPM, z, skips, flow: FlowConfig, keep_trajectory: bool):
    z = z.float()  # under autocast F gives bf16/fp16 latents; the flow's state stays float32
    skip_flow = SkipFlow(model.autoencoder, z, skips, keep_trajectory) if skips else None
    index = model.bank_index() if flow.top_k else None
    result = run_flow(
        z, model.distance, model.bank, flow, keep_trajectory=keep_trajectory, reencode=skip_flow, index=index
    )
    return result, skip_flow


@torch.no_grad()
def restore_steps(model: LMPPM, x: torch.Tensor, flow: FlowConfig, steps: tuple[int, ...]):
    """One run of the flow (flow.steps of them), seen after each step count in `steps`: (images
    (S, B, C, H, W), latents (S, B, d)). A conv model decodes only those S latents, in one batch; a
    sample that stopped early keeps its last state (as `restore` with fewer steps would give)."""
    model.eval()
    z, skips = model.autoencoder.encode(x.to(model.device))
    result, skip_flow = _run(model, z, skips, flow, keep_trajectory=True)
    at = [min(n, len(result.trajectory) - 1) for n in steps]
    latents = torch.stack([result.trajectory[k] for k in at])
    if skip_flow is not None:
        return torch.stack([skip_flow.trajectory[k] for k in at]), latents
    return model.autoencoder.decode(latents.flatten(0, 1)).float().unflatten(0, latents.shape[:2]), latents


class SkipFlow:
    """Appendix B's update rule for U-Nets: with F(x^n) = (S^n_1..S^n_k, z^n),
    x^{n+1} = G(S^n_1 + S_hat_1(z^{n+1}), ..., S^n_k + S_hat_k(z^{n+1}), z^{n+1}).

    Called by the flow after each step with the moved latents z^{n+1} of the rows still running: decodes
    them with their current skips, then encodes x^{n+1} again, so the next step starts from F(x^{n+1})
    (skips and latent). Holds x^n of every row and, when asked, the images of every step."""

    def __init__(self, autoencoder, z, skips, keep_trajectory: bool):
        self.ae, self.skips, self.keep = autoencoder, [s.clone() for s in skips], keep_trajectory
        self.images = autoencoder.decode(z, skips).float()  # x^1 seen through the model: the single pass
        self.trajectory = [self.images.clone()] if keep_trajectory else []

    def __call__(self, z_next: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        x = self.ae.decode(z_next, tuple(s[rows] for s in self.skips))
        self.images[rows] = x.float()
        z, skips = self.ae.encode(x)
        for held, new in zip(self.skips, skips):
            held[rows] = new
        if self.keep:
            self.trajectory.append(self.images.clone())
        return z.float()


@torch.no_grad()
def single_pass(model: LMPPM | LatentDiffusion, x: torch.Tensor) -> torch.Tensor:
    """G(F(x)): the autoencoder alone, the reference the flow has to beat."""
    model.eval()
    z, skips = model.autoencoder.encode(x.to(model.device))
    return model.autoencoder.decode(z, skips).float()


def sample_seeds(seed: int, first: int, count: int) -> list[int]:
    """One seed per sample, so sample i is the same whatever the batch size or the number asked for."""
    return [seed * 1_000_003 + i for i in range(first, first + count)]


def start_latents(model: LMPPM, seeds: list[int], start: str = "latent"):
    """z^1 and the skips for generation, one noise draw per seed.

    start="latent": z^1 ~ N(mean(S), cov(S)), Gaussian noise in latent space with the bank's first two
    moments, as a latent diffusion model starts; start="pixel": z^1 = F(noise image), the noise image
    N(0, 1) clamped to [0, 1]. Pixel noise encodes to a narrow region of the latent space, so its samples
    are far less diverse (docs/reproduction.md, "Choices"). U-Net skips: none for a latent start (there is no image
    yet; a model trained with skip dropout decodes z alone), those of the noise image for a pixel start."""
    if start not in ("latent", "pixel"):
        raise ValueError(f"unknown generation start {start!r}; expected 'latent' or 'pixel'.")
    ae, bank = model.config.autoencoder, model.bank
    images, eps = [], []
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        images.append(torch.randn(ae.channels, ae.height, ae.width, generator=g).clamp(0.0, 1.0))
        eps.append(torch.randn(bank.shape[1], generator=g))
    z, skips = model.autoencoder.encode(torch.stack(images).to(model.device))  # (n, d)
    if start == "latent":
        cov = torch.cov(bank.T) + 1e-6 * torch.eye(bank.shape[1], device=bank.device)
        z, skips = bank.mean(0) + torch.stack(eps).to(bank.device) @ torch.linalg.cholesky(cov).T, ()
    return z, skips


def generation_settings(model: LMPPM, override: FlowOverride | None = None) -> FlowConfig:
    """The model's generation flow (ModelConfig.generation) with the fields `override` gives replaced;
    a model without D (a DAE) takes the kernel step only (alpha 0)."""
    flow = dataclasses.replace(model.config.generation, **(override or FlowOverride()).given())
    flow = flow if model.distance is not None else dataclasses.replace(flow, alpha=0.0)
    check_flow(flow)
    return flow


@torch.no_grad()
def generate(model: LMPPM, seeds: list[int], flow: FlowConfig | None = None, keep_trajectory=False, start="latent"):
    """Images from pure noise through the generation flow (Fig. 9: 16 steps, no early stop)."""
    model.eval()
    flow = flow or generation_settings(model)
    z, skips = start_latents(model, seeds, start)
    return _flow_and_decode(model, z, skips, flow, keep_trajectory)
