"""The ablations of the flow (Table 1): the flow with D off entirely, alpha = 0 and no adaptive step,
in every regime of a blind rule, so D is never evaluated. On an lmppm model that is Ablation_lmppm, on
a DAE Ablation_dae (the DAE's network with the kernel step only)."""

from __future__ import annotations

from lmppm_cli.core.config import FlowOverride
from lmppm_cli.core.restoration import everywhere, flow_settings, restore
from lmppm_cli.methods.registry import Method, register


def d_off(model, flow: FlowOverride | None):
    settings = everywhere(flow_settings(model, flow), alpha=0.0, adaptive=False)
    return lambda x, keep=False: restore(model, x, settings, keep)


register(
    Method(
        "ablation-lmppm",
        "the lmppm flow with D off entirely (kernel mean only; Table 1's Ablation_lmppm)",
        model="lmppm",
        restorer=d_off,
        options=FlowOverride,
    )
)
register(
    Method(
        "ablation-dae",
        "the DAE's network with the kernel step only (alpha 0, no D)",
        model="dae",
        restorer=d_off,
        options=FlowOverride,
    )
)
