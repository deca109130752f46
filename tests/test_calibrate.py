import torch

from lmppm_cli.calibrate import ALPHAS, BETAS, KERNEL_MULTIPLIERS, STEPS, calibrate_flow
from lmppm_cli.restoration import restore, single_pass
from lmppm_cli.metrics import psnr
from lmppm_cli.weights import load_model

from conftest import blob_images


def test_calibration_keeps_the_best_worst_gain_within_the_papers_constraints(tiny_model_file):
    model = load_model(tiny_model_file)
    clean = blob_images(24, seed=11)
    flow, rows = calibrate_flow(model, clean, sigma_d=0.3, generator=torch.Generator().manual_seed(0))
    assert len(rows) == len(ALPHAS) * len(BETAS) * len(KERNEL_MULTIPLIERS) * len(STEPS)
    assert 0 < flow.alpha and 0 < flow.beta and flow.alpha + flow.beta < 1 and flow.steps in STEPS
    best = max(rows, key=lambda r: r["worst"])
    assert (flow.alpha, flow.beta, flow.steps, flow.sigma_ker) == (best["alpha"], best["beta"], best["steps"], best["sigma_ker"])
    # the recorded gain is what restoring with the chosen setting really gives, at the first noise level
    noisy = (clean + 0.3 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    gain = psnr(restore(model, noisy, flow).images, clean).mean() - psnr(single_pass(model, noisy), clean).mean()
    assert abs(gain.item() - best["gains"]["1x"]) < 1e-3
