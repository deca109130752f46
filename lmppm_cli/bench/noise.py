"""Suite `mnist-noise`: Gaussian noise at sigma 0.4 and 0.7 on the 1,000 held-out mnist-5k digits.

Does the flow earn its steps? Rows: the noisy input, the single pass G(F(x)), the flow with the model's
calibrated defaults, Ablation_lmppm (alpha = 0), and the flow with the paper's stated alpha 0.15,
beta 0.1 (8 steps) instead of the calibrated ones.
"""

from __future__ import annotations

import dataclasses
import functools

from lmppm_cli.bench.runner import Suite, spread, suite
from lmppm_cli.data import conform, mnist_5k
from lmppm_cli.degradations import gaussian_noise
from lmppm_cli.models import LMPPM
from lmppm_cli.restoration import restore, single_pass


def flow_method(model: LMPPM, **overrides):
    flow = dataclasses.replace(model.config.flow, **overrides)
    return lambda x: restore(model, x, flow).images


@suite("mnist-noise")
def mnist_noise(*, model: LMPPM, seed: int, limit: int | None = None) -> Suite:
    ae = model.config.autoencoder
    test = mnist_5k().test.images
    test = conform(test[spread(len(test), limit)], ae.channels, ae.height, ae.width)
    f = model.config.flow
    methods = {
        "noisy input": lambda x: x,
        "single pass G(F(x))": lambda x: single_pass(model, x),
        "LMPPM": flow_method(model),
        "Ablation_lmppm (alpha=0)": flow_method(model, alpha=0.0),
        "LMPPM, paper alpha/beta (0.15/0.1, 8 steps)": flow_method(model, alpha=0.15, beta=0.1, steps=8),
    }
    notes = [
        f"{len(test)} held-out digits (mnist-5k test split), seed {seed}.",
        f"model flow defaults: alpha {f.alpha:g}, beta {f.beta:g}, steps {f.steps}, sigma_ker {f.sigma_ker:.4g}, tol {f.tol:g}.",
    ]
    degradations = {f"noise {s}": functools.partial(_noise, sigma=s) for s in (0.4, 0.7)}
    figure = ["single pass G(F(x))", "LMPPM"]
    return Suite("mnist-noise", test.to(model.device), degradations, methods, notes, figure)


def _noise(x, generator, sigma):
    return gaussian_noise(x, sigma, generator)
