"""Suite `faces`: the paper's face experiment (Table 2) on the real face crops scikit-image ships.

The 20 held-out faces of lfw-faces (25x25 grayscale, Labeled Faces in the Wild; never seen in training
or calibration), with Table 2's degradations at its strengths (noise 0.2 / 0.25 / 0.3, missing pixels
0.04 / 0.08 / 0.1, scribbles 6 / 13 / 20, sharpening 8 / 10 / 18) and Table 6's faces presets for the
two kinds Table 2 leaves out (elastic, downsampling; mild and severe). Rows: the DAE baseline, the LDM on
that DAE's latents (from SDEdit's start step, from the start step best on validation PSNR, and the
full chain), LMPPM, its single pass G(F(x)), the true ablations of its flow (noise.ablation_rows: D
off, kernel step off, re-encoding only, the paper's flow), the same U-Net trained without
latent-to-skip projections, and the classical blind denoisers (BM3D, NL-means, wavelet). SSIM and
PSNR; Inception FID where it can run.
"""

from __future__ import annotations

from lmppm_cli.core.calibrate import NOISE_FACTORS
from lmppm_cli.core.degradations import strength
from lmppm_cli.core.restoration import single_pass
from lmppm_cli.experiments.bench.noise import ablation_rows, classical_rows, describe, images_of, unet_rows
from lmppm_cli.experiments.bench.runner import Suite, at_strength, check_same_input, degradation_kinds, suite
from lmppm_cli.files.data import conform, lfw_faces
from lmppm_cli.methods import restorer
from lmppm_cli.methods.ldm import START_STEPS, LdmOptions, psnr_best_start_step

TABLE_2 = {
    "noise": (0.2, 0.25, 0.3),
    "missing-pixels": (0.04, 0.08, 0.1),
    "scribbles": (6, 13, 20),
    "sharpen": (8, 10, 18),
}


@suite("faces", needs={"lmppm": "faces", "ablation": "faces-noproj", "dae": "faces-dae", "ldm": "faces-ldm"})
def faces(*, models: dict, seed: int, limit: int | None = None, degradations=None, classical=True) -> Suite:
    check_same_input(models)
    model, ablation, dae, ldm_model = models["lmppm"], models["ablation"], models["dae"], models["ldm"]
    ae = model.config.autoencoder
    data = lfw_faces()
    test = data.held_out().images
    clean = conform(test[: limit or len(test)], ae.channels, ae.height, ae.width)
    val = conform(data.val.images, ae.channels, ae.height, ae.width).to(ldm_model.device)
    tuned = psnr_best_start_step(ldm_model, val, TABLE_2["noise"][0], seed)
    methods = {
        "degraded input": lambda x: x,
        "DAE": images_of(restorer(dae, "dae")),
        "LDM": images_of(restorer(ldm_model, "ldm", LdmOptions(seed=seed))),
        "LDM, PSNR-best start": images_of(restorer(ldm_model, "ldm", LdmOptions(seed=seed, start_step=tuned))),
        "LDM, full chain": images_of(
            restorer(ldm_model, "ldm", LdmOptions(seed=seed, start_step=ldm_model.config.diffusion.steps - 1))
        ),
        "LMPPM": images_of(restorer(model)),
        "single pass G(F(x))": lambda x: single_pass(model, x),
        **ablation_rows(model),
        **unet_rows(model, ablation),
        **classical_rows(len(clean), on=classical)[0],
    }
    notes = [
        f"{len(clean)} held-out faces (lfw-faces test split: faces 80-99 of scikit-image's lfw_subset), seed {seed}.",
        describe(model, "LMPPM"),
        describe(ablation, "no-projections LMPPM"),
        f"LDM (faces-ldm, on faces-dae's latents; the degraded input's skips): restoration starts at step "
        f"{ldm_model.config.diffusion.start_step} of {ldm_model.config.diffusion.steps} (SDEdit's rule); PSNR-best start: step {tuned}, the best of "
        f"{len(START_STEPS)} candidates on the 10 validation faces at noise {TABLE_2['noise'][0]:g} and "
        f"{TABLE_2['noise'][0] * NOISE_FACTORS[-1]:g}; full chain: from the last step.",
    ]
    return Suite(
        "faces",
        clean.to(model.device),
        _degradations(degradations),
        methods,
        notes,
        ["DAE", "LDM", "single pass G(F(x))", "LMPPM"],
        figure_rows=8,
        inception_fid=True,
    )


def _degradations(names) -> dict:
    out = {}
    for kind in degradation_kinds(names):
        if kind in TABLE_2:
            out.update({f"{kind} {v:g}": at_strength(kind, v) for v in TABLE_2[kind]})
        else:
            levels = {s: strength(kind, s, "faces") for s in ("mild", "severe")}
            out.update({f"{kind} {s} {v:g}": at_strength(kind, v) for s, v in levels.items()})
    return out
