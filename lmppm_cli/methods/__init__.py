"""Restoration methods by name, each bound to the kind of model file it needs.

lmppm            the flow of Alg. 4 with the model's (calibrated) defaults      needs an lmppm model
ablation-lmppm   the same flow with D off entirely: alpha = 0 and no adaptive   needs an lmppm model
                 step (the kernel mean only; Table 1's Ablation_lmppm)
dae              the DAE baseline's single pass G(F(x))                         needs a dae model
ablation-dae     the DAE's network with the kernel step only (alpha = 0, no D)  needs a dae model
ldm              encode, noise to the start step, DDPM reverse chain, decode    needs an ldm model
bm3d, nlmeans,   classical blind denoisers (baselines/classical.py), at the     need no model
wavelet          image's own size and channels
"""

from __future__ import annotations

import functools
from typing import Callable

import torch

from lmppm_cli.methods import classical
from lmppm_cli.core.errors import LmppmError, ModelError
from lmppm_cli.core.restoration import Restored, autocast, everywhere, flow_settings, restore, single_pass

NEEDS = {"lmppm": "lmppm", "ablation-lmppm": "lmppm", "dae": "dae", "ablation-dae": "dae", "ldm": "ldm"}
NEEDS.update({name: None for name in classical.CLASSICAL})
DEFAULT_MODEL = {"lmppm": "mnist", "dae": "mnist-dae", "ldm": "mnist-ldm"}

Restorer = Callable[[torch.Tensor, bool], Restored]


def default_model(method: str) -> str | None:
    """The bundled model a method uses when no --model is given (None: the method needs no model)."""
    kind = NEEDS[_known(method)]
    return DEFAULT_MODEL[kind] if kind else None


def restorer(
    model, method: str | None = None, seed: int = 0, start_step: int | None = None, precision: str = "fp32", **flow
) -> Restorer:
    """A function (images, keep_trajectory) -> Restored for `method` (None: the model's own method).
    `flow` overrides the flow defaults (alpha, beta, steps, sigma_ker, schedule, ...) of flow methods;
    `precision` (fp32, bf16, fp16) is the networks' (restoration.autocast). A classical method takes
    `model=None`."""
    method = _known(method or model.config.method)
    if NEEDS[method] is None:
        if precision != "fp32":
            raise LmppmError(f"--precision {precision} applies to learned models; {method} runs in float64/float32.")
        return lambda x, keep=False: _plain(classical.denoise(x, method))
    fn = _learned(model, method, seed, start_step, **flow)
    if precision == "fp32":
        return fn
    context = functools.partial(autocast, model.device, precision)
    context()  # an unknown precision fails here, before any file is read

    def run(x, keep=False):
        with context():
            return fn(x, keep)

    return run


def _learned(model, method: str, seed: int, start_step: int | None, **flow) -> Restorer:
    if model.config.method != NEEDS[method]:
        raise ModelError(f"method {method} needs a {NEEDS[method]} model, but this is a {model.config.method} model.")
    if method in ("lmppm", "ablation-lmppm", "ablation-dae"):
        settings = flow_settings(model, **flow)
        if method != "lmppm":  # the ablations: D is never evaluated, in the far flow neither
            settings = everywhere(settings, alpha=0.0, adaptive=False)
        return lambda x, keep=False: restore(model, x, settings, keep)
    if method == "dae":
        return lambda x, keep=False: _plain(single_pass(model, x))
    from lmppm_cli.methods import ldm  # only here: it pulls in the DDPM and the metrics

    gen = torch.Generator().manual_seed(seed)
    return lambda x, keep=False: _plain(ldm.restore(model, x, gen, start_step))


def _plain(images: torch.Tensor) -> Restored:
    return Restored(images.float(), torch.zeros(len(images), dtype=torch.long), [])


def _known(method: str) -> str:
    if method == "classifier":
        raise ModelError("a classifier model cannot restore images; pick an lmppm, dae or ldm model.")
    if method not in NEEDS:
        raise LmppmError(f"unknown method {method!r}; use {', '.join(NEEDS)}.")
    return method
