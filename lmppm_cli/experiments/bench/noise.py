"""Suites `mnist-noise` and `photo-noise`: Gaussian noise on held-out images. Does the flow earn its steps?

mnist-noise: sigma 0.4, 0.7 and 0.85 on the 1,000 held-out mnist-5k digits. Rows: the noisy input, the
DAE, the single pass G(F(x)), the flow with the model's calibrated defaults, Ablation_lmppm (alpha = 0),
the flow with the paper's stated alpha 0.15, beta 0.1 (8 steps), and the classical blind denoisers.

photo-noise: sigma 0.2, 0.25 and 0.3 on the 1,000 test patches of the held-out photo (photo-patches,
the earlier 32x32 RGB U-Net `photos-patches` and its no-projections twin; the photo model is `photos`,
measured on whole photos by the `photos` suite). Rows as above, plus the U-Net's own questions: the flow with alpha = beta = 0 (only
Appendix B's re-encoding of each new image, as many steps), and the model trained without latent-to-skip
projections (its single pass and its calibrated flow).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from lmppm_cli.core.restoration import everywhere, restore, single_pass
from lmppm_cli.experiments.bench.runner import Suite, at_strength, check_same_input, spread, suite
from lmppm_cli.files.data import conform, mnist_5k, photo_patches
from lmppm_cli.methods import restorer
from lmppm_cli.methods.classical import denoise


def images_of(restore_fn):
    return lambda x: restore_fn(x, False).images


def flow_rows(model, tag: str = "") -> dict:
    """The single pass, the calibrated flow and its true ablations (ablation_rows); `tag` names the model."""
    return {
        f"single pass G(F(x)){tag}": lambda x: single_pass(model, x),
        f"LMPPM{tag}": images_of(restorer(model)),
        **{f"{k}{tag}": v for k, v in ablation_rows(model).items()},
    }


ABLATION_LMPPM = "Ablation_lmppm (D off: alpha 0, no adaptive step)"


def ablation_rows(model) -> dict:
    """What D and the kernel mean each contribute, every row the model's flow with one part
    removed, from its far flow too where it has one: D off entirely (alpha 0 and no adaptive step: D is
    never evaluated; the paper's Ablation_lmppm), the kernel step off (beta 0), both off (Appendix B's
    re-encoding alone, the model's step count, no early stop), and the paper's flow as written (alpha
    0.15, beta 0.1, 8 steps, no adaptive step, the bank's default sigma_ker without the calibrated
    multiple, one flow for every image). A model with the blind rule (restoration.blind_rule) adds the
    rule off: its near flow, and its noisy flow, each for every image."""
    from lmppm_cli.core.bank import default_sigma_ker

    flow = model.config.flow
    paper = dict(
        alpha=0.15, beta=0.1, steps=8, adaptive=False, schedule="constant", sigma_ker=default_sigma_ker(model.bank)
    )
    rows = {
        ABLATION_LMPPM: images_of(restorer(model, "ablation-lmppm")),
        "kernel step off (beta 0)": _flow_row(model, everywhere(flow, beta=0.0)),
        f"re-encoding only (alpha=beta=0, {flow.steps} steps)": _flow_row(
            model, everywhere(flow, alpha=0.0, beta=0.0, adaptive=False, tol=0.0)
        ),
        "paper flow (alpha 0.15, beta 0.1, 8 steps, no adaptive step)": _flow_row(
            model, replace(flow, **paper, far=None, noisy=None)
        ),
    }
    blind = flow.far is not None or flow.noisy is not None
    for regime in [b for b in (flow, flow.noisy) if b is not None] if blind else []:
        one = replace(regime, far=None, noisy=None)  # the blind rule off: one regime's flow for every image
        rows[f"one flow for all ({described(one)})"] = _flow_row(model, one)
    return rows


def described(f) -> str:
    """A flow in words, its blind rule's regimes included."""
    text = f"alpha {f.alpha:g}, beta {f.beta:g}, {f.steps} steps{', adaptive step' if f.adaptive else ''}, sigma_ker {f.sigma_ker:.3g}"
    if f.noisy is not None and f.noisy_above > 0:
        text += f"; estimated noise above {f.noisy_above:g}: {described(f.noisy)}"
    if f.far is not None and f.far_residual > 0:
        text += f"; else residual above {f.far_residual:g}: {described(f.far)}"
    return text


def _flow_row(model, flow):
    return lambda x: restore(model, x, flow).images


CLASSICAL_ROWS = {"BM3D (blind)": "bm3d", "NL-means (blind)": "nlmeans", "wavelet (blind)": "wavelet"}


def classical_rows(n_images: int, images: dict[str, int] | None = None, on: bool = True) -> tuple[dict, dict]:
    """(methods, limits): the classical blind denoisers a user would otherwise run (none when not `on`).
    BM3D costs about a second per image here whatever its size, so a suite may score a method on
    `images[method]` images spread over the set; its row then says how many."""
    methods: dict[str, Callable] = {}
    limits: dict[str, int] = {}
    if not on:
        return methods, limits
    for label, name in CLASSICAL_ROWS.items():
        limit = (images or {}).get(name, n_images)
        if limit < n_images:
            label = f"{label[:-1]}; {limit} of {n_images} images)"
            limits[label] = limit
        methods[label] = lambda x, name=name: denoise(x, name)
    return methods, limits


def describe(model, name: str) -> str:
    f = model.config.flow
    return f"{name} flow defaults: alpha {f.alpha:g}, beta {f.beta:g}, steps {f.steps}, sigma_ker {f.sigma_ker:.4g}, tol {f.tol:g}."


MNIST_BM3D_IMAGES = 200  # mnist-noise's BM3D rows: 200 of the 1,000 test digits (BM3D is slow: docs/speed.md)


@suite("mnist-noise", needs={"lmppm": "mnist", "dae": "mnist-dae"})
def mnist_noise(*, models: dict, seed: int, limit: int | None = None, degradations=None, classical=True) -> Suite:
    model = models["lmppm"]
    test = _held_out(mnist_5k().held_out().images, model, limit)
    classical, limits = classical_rows(len(test), {"bm3d": MNIST_BM3D_IMAGES}, classical)
    methods = {
        "noisy input": lambda x: x,
        "DAE": images_of(restorer(models["dae"], "dae")),
        **flow_rows(model),
        **classical,
    }
    notes = [f"{len(test)} held-out digits (mnist-5k test split), seed {seed}.", describe(model, "model")]
    degs = {f"noise {s}": at_strength("noise", s) for s in (0.4, 0.7, 0.85)}
    return Suite(
        "mnist-noise",
        test.to(model.device),
        degs,
        methods,
        notes,
        ["DAE", "single pass G(F(x))", "LMPPM"],
        limits=limits,
    )


@suite("photo-noise", needs={"lmppm": "photos-patches", "ablation": "photos-noproj"})
def photo_noise(*, models: dict, seed: int, limit: int | None = None, degradations=None, classical=True) -> Suite:
    check_same_input(models)
    model, ablation = models["lmppm"], models["ablation"]
    test = _held_out(photo_patches(model.config.autoencoder.height).held_out().images, model, limit)
    classical, limits = classical_rows(len(test), on=classical)
    methods = {"noisy input": lambda x: x, **flow_rows(model), **unet_rows(model, ablation), **classical}
    notes = [
        f"{len(test)} patches of the held-out test photo (photo-patches test split: coffee), seed {seed}.",
        describe(model, "model"),
        describe(ablation, "no-projections model"),
    ]
    degs = {f"noise {s}": at_strength("noise", s) for s in (0.2, 0.25, 0.3)}
    return Suite(
        "photo-noise", test.to(model.device), degs, methods, notes, ["single pass G(F(x))", "LMPPM"], limits=limits
    )


def unet_rows(model, ablation) -> dict:
    """The projections-off model's single pass and flow."""
    return {
        "single pass, no projections": lambda x: single_pass(ablation, x),
        "LMPPM, no projections": images_of(restorer(ablation)),
    }


def _held_out(images, model, limit):
    ae = model.config.autoencoder
    return conform(images[spread(len(images), limit)], ae.channels, ae.height, ae.width)
