"""dae: the denoising-autoencoder baseline. The same autoencoder as lmppm without D, trained by L2
from noisy to clean (core/objectives.DaeObjective); restores by one pass G(F(x)); generates by the
kernel step alone (alpha 0)."""

from __future__ import annotations

from lmppm_cli.core.models import LMPPM
from lmppm_cli.core.restoration import single_pass
from lmppm_cli.methods import lmppm
from lmppm_cli.methods.registry import Method, plain, register


def restorer(model, options=None):
    return lambda x, keep=False: plain(single_pass(model, x))


def _objective(config, data, tcfg, device, base):
    from lmppm_cli.core.objectives import DaeObjective

    return DaeObjective(config, data, tcfg, device, base)


register(
    Method(
        "dae",
        "the DAE baseline's single pass G(F(x))",
        model="dae",
        default_model="mnist-dae",
        restorer=restorer,
        generator=lmppm.generator,
        objective=_objective,
        container=lambda config, bank=0: LMPPM(config, bank, distance=False),
        init=True,
        distributed=True,
    )
)
