"""Suite `mnist-noise`: Gaussian noise at sigma 0.4 and 0.7 on the 1,000 held-out mnist-5k digits.

Does the flow earn its steps? Rows: the noisy input, the single pass G(F(x)), the flow with the model's
calibrated defaults, Ablation_lmppm (alpha = 0), and the flow with the paper's stated alpha 0.15,
beta 0.1 (8 steps) instead of the calibrated ones.
"""

from __future__ import annotations

import functools

from lmppm_cli.bench.runner import Suite, spread, suite
from lmppm_cli.data import conform, mnist_5k
from lmppm_cli.degradations import gaussian_noise
from lmppm_cli.methods import restorer
from lmppm_cli.restoration import single_pass


def images_of(restore_fn):
    return lambda x: restore_fn(x, False).images


@suite("mnist-noise", needs=("lmppm",))
def mnist_noise(*, models: dict, seed: int, limit: int | None = None, degradations=None) -> Suite:
    model = models["lmppm"]
    ae, f = model.config.autoencoder, model.config.flow
    test = mnist_5k().test.images
    test = conform(test[spread(len(test), limit)], ae.channels, ae.height, ae.width)
    methods = {
        "noisy input": lambda x: x,
        "single pass G(F(x))": lambda x: single_pass(model, x),
        "LMPPM": images_of(restorer(model)),
        "Ablation_lmppm (alpha=0)": images_of(restorer(model, "ablation-lmppm")),
        "LMPPM, paper alpha/beta (0.15/0.1, 8 steps)": images_of(restorer(model, alpha=0.15, beta=0.1, steps=8)),
    }
    notes = [
        f"{len(test)} held-out digits (mnist-5k test split), seed {seed}.",
        f"model flow defaults: alpha {f.alpha:g}, beta {f.beta:g}, steps {f.steps}, sigma_ker {f.sigma_ker:.4g}, tol {f.tol:g}.",
    ]
    degs = {f"noise {s}": functools.partial(_noise, sigma=s) for s in (0.4, 0.7)}
    return Suite("mnist-noise", test.to(model.device), degs, methods, notes, ["single pass G(F(x))", "LMPPM"])


def _noise(x, generator, sigma):
    return gaussian_noise(x, sigma, generator)
