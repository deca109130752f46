"""Every method, one module each, registered in `registry.REGISTRY` when this package is imported.

lmppm            the flow of Alg. 4 with the model's (calibrated) defaults      needs an lmppm model
ablation-lmppm   the same flow with D off entirely: alpha = 0 and no adaptive   needs an lmppm model
                 step (the kernel mean only; Table 1's Ablation_lmppm)
dae              the DAE baseline's single pass G(F(x))                         needs a dae model
ablation-dae     the DAE's network with the kernel step only (alpha = 0, no D)  needs a dae model
ldm              encode, noise to the start step, DDPM reverse chain, decode    needs an ldm model
classifier       trains the digit classifier of the benches; does not restore
bm3d, nlmeans,   classical blind denoisers (classical.py), at the image's own   need no model
wavelet          size and channels

A new method is one module that calls `register(Method(...))`, and its name in the import below.
"""

from lmppm_cli.methods import ablations, classical, classifier, dae, ldm, lmppm  # noqa: F401  (each registers itself)
from lmppm_cli.methods.registry import (
    DEFAULT,
    REGISTRY,
    Method,
    Restorer,
    build_model,
    check_training,
    default_model,
    generator,
    get,
    objective,
    restorer,
    restoring,
    trained,
)

__all__ = [
    "DEFAULT",
    "REGISTRY",
    "Method",
    "Restorer",
    "build_model",
    "check_training",
    "default_model",
    "generator",
    "get",
    "objective",
    "restorer",
    "restoring",
    "trained",
]
