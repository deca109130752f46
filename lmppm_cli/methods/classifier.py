"""classifier: the small digit classifier behind the domain FID and accuracy (core/objectives.
ClassifierObjective). It neither restores nor generates."""

from __future__ import annotations

from lmppm_cli.core.models import DigitClassifier
from lmppm_cli.methods.registry import Method, register


def _objective(config, data, tcfg, device, base):
    from lmppm_cli.core.objectives import ClassifierObjective

    return ClassifierObjective(config, data, tcfg, device, base)


register(
    Method(
        "classifier",
        "a digit classifier for the FID and accuracy of the benches",
        model="classifier",
        default_model="mnist-classifier",
        objective=_objective,
        container=lambda config, bank=0: DigitClassifier(config),
    )
)
