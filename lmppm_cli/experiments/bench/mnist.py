"""Suite `mnist`: the paper's MNIST experiment (Table 1, Figs. 8-13). Every degradation of Table 6 at
both severities on the 1,000 held-out mnist-5k digits; DAE, LDM, LMPPM, the true ablations of its
flow (noise.ablation_rows), Ablation_dae and, where given, the pure Eq. 20 model (`mnist-eq20`); SSIM,
PSNR, the classifier-feature FID (overall and per class), the classifier's accuracy, time per image;
and the classical blind denoisers a user would otherwise run (BM3D on a spread subset, no FID there)."""

from __future__ import annotations

import torch

from lmppm_cli.core.degradations import strength
from lmppm_cli.experiments.bench.noise import ablation_rows, classical_rows, described, images_of
from lmppm_cli.experiments.bench.runner import (
    PerRow,
    Suite,
    at_strength,
    check_same_input,
    degradation_kinds,
    spread,
    suite,
)
from lmppm_cli.files.data import conform, mnist_5k
from lmppm_cli.methods import restorer
from lmppm_cli.methods.ldm import LdmOptions, best_start, start_scores

SSIM_SLACK = 0.02  # the target: LMPPM's SSIM no more than this below the DAE's
BM3D_IMAGES = 50  # BM3D (slow: docs/speed.md) on 50 of the digits in each of the 12 cells


@suite(
    "mnist",
    needs={
        "lmppm": "mnist",
        "dae": "mnist-dae",
        "ldm": "mnist-ldm",
        "classifier": "mnist-classifier",
        "eq20": "mnist-eq20",
    },
)
def mnist(
    *, models: dict, seed: int, limit: int | None = None, degradations=None, classical=True, split: str = "test"
) -> Suite:
    """`split`: "test" (the 1,000 held-out digits, every reported figure) or "validation" (the 500 digits
    that settings are chosen on)."""
    test = mnist_5k().held_out() if split == "test" else mnist_5k().val
    idx = spread(len(test.images), limit)
    lmppm, dae, ldm_model = models["lmppm"], models["dae"], models["ldm"]
    ae = lmppm.config.autoencoder
    check_same_input(models)
    clean = conform(test.images[idx], ae.channels, ae.height, ae.width)
    notes = [
        f"{len(idx)} held-out digits (mnist-5k {split} split, spread over the classes), seed {seed}.",
        "FID: Frechet distance of the bundled classifier's penultimate features, restored vs clean test "
        "digits; FID/class: its mean over the ten classes (grouped by true label); acc: the classifier's "
        "accuracy on the restored digits against the true labels.",
        f"LMPPM flow: {described(lmppm.config.flow)}. Ablation_dae flow: {described(dae.config.flow)}. "
        f"LDM: restoration starts at step {ldm_model.config.diffusion.start_step} of {ldm_model.config.diffusion.steps}; "
        "LDM, full chain: from the last step (the whole reverse chain; the input's latent is noised almost away).",
        "LDM, start chosen per row: for each row, the start step of ldm.START_STEPS (above 0) chosen on the "
        "500 validation digits by ldm.best_start (accuracy within 0.02 of the best start's, then the lowest FID).",
    ]
    methods = {
        "degraded input": lambda x: x,
        "DAE": images_of(restorer(dae, "dae")),
        "LDM": images_of(restorer(ldm_model, "ldm", LdmOptions(seed=seed))),
        "LDM, full chain": images_of(
            restorer(ldm_model, "ldm", LdmOptions(seed=seed, start_step=ldm_model.config.diffusion.steps - 1))
        ),
        "LDM, start chosen per row": PerRow(_validation_start(ldm_model, models["classifier"], seed, notes)),
        "LMPPM": images_of(restorer(lmppm, "lmppm")),
        **ablation_rows(lmppm),
        "Ablation_dae": images_of(restorer(dae, "ablation-dae")),
    }
    if "eq20" in models:  # the pure Eq. 20 model: the bar on warps and low resolution
        methods["LMPPM, Eq. 20 alone (mnist-eq20)"] = images_of(restorer(models["eq20"]))
    rows, limits = classical_rows(len(idx), {"bm3d": BM3D_IMAGES}, classical)
    methods.update(rows)
    return Suite(
        "mnist",
        clean.to(lmppm.device),
        _degradations(degradations),
        methods,
        notes,
        ["DAE", "LDM", "LMPPM"],
        classifier=models["classifier"],
        labels=None if test.labels is None else test.labels[idx],
        checks=target_checks,
        limits=limits,
    )


def _validation_start(ldm_model, classifier, seed: int, notes: list[str]):
    """PerRow's chooser: each row's LDM start step, chosen on the validation digits (never the test
    digits) with that row's degradation; the steps chosen are added to `notes` as they are."""
    val = mnist_5k().val
    ae = ldm_model.config.autoencoder
    clean = conform(val.images, ae.channels, ae.height, ae.width).to(ldm_model.device)
    chosen: dict[str, int] = {}

    def for_row(name: str, degrade):
        degraded = degrade(clean, torch.Generator().manual_seed(seed + 7))
        chosen[name] = best_start(start_scores(ldm_model, degraded, clean, val.labels, classifier, seed))
        line = "LDM, start chosen per row (validation): " + ", ".join(f"{k} {v}" for k, v in chosen.items()) + "."
        notes[:] = [n for n in notes if not n.startswith("LDM, start chosen per row (validation)")] + [line]
        return images_of(restorer(ldm_model, "ldm", LdmOptions(seed=seed, start_step=chosen[name])))

    return for_row


def _degradations(names) -> dict:
    """Table 6 at both severities, after the clean digits themselves (do no harm: a restorer should keep
    what a clean digit shows)."""
    out = {"clean": _unchanged}
    for kind in degradation_kinds(names):
        for severity in ("mild", "severe"):
            value = strength(kind, severity, "digits")
            out[f"{kind} {severity} {value:g}"] = at_strength(kind, value)
    return out


def _unchanged(x, generator):
    return x


def target_checks(cells) -> list[str]:
    """Per degradation, by the interval rule (paired 95% intervals): LMPPM's FID and accuracy against the
    DAE's and the LDM's, from SDEdit's start and from the start chosen for the row on validation (win /
    tie / loss), and whether its SSIM is within 0.02 of the DAE's (the interval of LMPPM - DAE lies above
    -0.02)."""
    by = {(c.degradation, c.method): c for c in cells}
    lines = [
        "| degradation | FID vs DAE | FID vs LDM | FID vs LDM, row's start | acc vs DAE | acc vs LDM | acc vs LDM, row's start "
        "| SSIM LMPPM - DAE [95%] | within 0.02 | acc vs its input (do no harm) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for deg in dict.fromkeys(c.degradation for c in cells):
        da, ld = by[(deg, "DAE")].versus, by[(deg, "LDM")].versus
        row = by[(deg, "LDM, start chosen per row")].versus if (deg, "LDM, start chosen per row") in by else {}
        if not da or "fid" not in da:
            continue
        gap, kept = da["ssim"], by[(deg, "degraded input")].versus["accuracy"]
        verdict = lambda v, k: v[k]["verdict"] if k in v else "-"  # noqa: E731
        lines.append(
            f"| {deg} | {verdict(da, 'fid')} | {verdict(ld, 'fid')} | {verdict(row, 'fid')} | {verdict(da, 'accuracy')} | "
            f"{verdict(ld, 'accuracy')} | {verdict(row, 'accuracy')} | "
            f"{gap['mean']:+.3f} [{gap['low']:+.3f}, {gap['high']:+.3f}] | {'yes' if gap['low'] >= -SSIM_SLACK else 'no'} | "
            f"{100 * kept['mean']:+.1f} [{100 * kept['low']:+.1f}, {100 * kept['high']:+.1f}] {kept['verdict']} |"
        )
    return ["Targets, LMPPM's verdicts by the interval rule:", "", *lines]
