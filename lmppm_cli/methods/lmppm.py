"""lmppm: the paper's method. Trains F, G and D by Eq. 20 (core/objectives.LmppmObjective), restores
by the latent flow of Alg. 4 with the model's calibrated defaults (or its blind rule), generates from
noise by the same flow (Fig. 9)."""

from __future__ import annotations

from lmppm_cli.core.config import FlowOverride
from lmppm_cli.core.models import LMPPM
from lmppm_cli.core.restoration import flow_settings, generate, generation_settings, restore
from lmppm_cli.methods.registry import Method, register


def restorer(model, flow: FlowOverride | None):
    settings = flow_settings(model, flow)
    return lambda x, keep=False: restore(model, x, settings, keep)


def generator(model, seeds, flow, keep_trajectory=False, start="latent"):
    return generate(model, seeds, generation_settings(model, flow), keep_trajectory, start)


def _objective(config, data, tcfg, device, base):
    from lmppm_cli.core.objectives import LmppmObjective  # the calibration pulls in the metrics

    return LmppmObjective(config, data, tcfg, device, base)


register(
    Method(
        "lmppm",
        "the flow of Alg. 4 with the model's (calibrated) defaults",
        model="lmppm",
        default_model="mnist",
        restorer=restorer,
        options=FlowOverride,
        generator=generator,
        objective=_objective,
        container=lambda config, bank=0: LMPPM(config, bank),
        init=True,
        freeze_init=True,
        distributed=True,
        picks=True,
    )
)
