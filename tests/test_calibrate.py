import dataclasses

import torch
from conftest import blob_images

from lmppm_cli.core.calibrate import ALPHAS, BETAS, KERNEL_MULTIPLIERS, STEPS, calibrate_flow, choose
from lmppm_cli.core.metrics import psnr, ssim
from lmppm_cli.core.restoration import restore, single_pass
from lmppm_cli.files.weights import load_model


def test_calibration_follows_its_rule_within_the_papers_constraints(tiny_model_file):
    model = load_model(tiny_model_file)
    clean = blob_images(24, seed=11)
    grid = dict(alphas=ALPHAS[:2], betas=BETAS[:3], multipliers=KERNEL_MULTIPLIERS[:2])
    flow, rows = calibrate_flow(model, clean, sigma_d=0.3, generator=torch.Generator().manual_seed(0), **grid)
    assert len(rows) == 2 * 3 * 2 * 2 * len(STEPS)  # x2: the paper's kernel step and the adaptive one
    assert {r["adaptive"] for r in rows} == {False, True}
    assert 0 < flow.alpha and 0 < flow.beta and flow.alpha + flow.beta < 1 and flow.steps in STEPS
    best = choose(rows)
    assert all((r["clean_ssim_loss"] is None) == (r["worst"] < 0) for r in rows)  # scored only where it can matter
    safe = [r for r in rows if r["worst"] >= 0 and r["clean_ssim_loss"] <= 0.02]
    if safe:
        assert best["worst"] >= 0 and best["distance_to_bank"] == min(r["distance_to_bank"] for r in safe)
    assert (flow.alpha, flow.beta, flow.steps, flow.sigma_ker, flow.adaptive) == tuple(
        best[k] for k in ("alpha", "beta", "steps", "sigma_ker", "adaptive")
    )
    # the recorded gain is what restoring with the chosen setting really gives, at the first noise level
    noisy = (clean + 0.3 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    gain = psnr(restore(model, noisy, flow).images, clean).mean() - psnr(single_pass(model, noisy), clean).mean()
    assert abs(gain.item() - best["gains"]["1x"]) < 1e-3
    assert best["clean_ssim_loss"] is not None or not safe
    if best["clean_ssim_loss"] is not None:  # and so is the SSIM its restoration costs a clean image
        loss = ssim(single_pass(model, clean), clean).mean() - ssim(restore(model, clean, flow).images, clean).mean()
        assert abs(loss.item() - best["clean_ssim_loss"]) < 1e-4


def test_choose_prefers_fidelity_then_closeness_to_the_bank():
    rows = [
        {"worst": -0.1, "distance_to_bank": 0.1, "clean_ssim_loss": 0.0},  # closest, but loses PSNR
        {"worst": 0.2, "distance_to_bank": 0.2, "clean_ssim_loss": 0.05},  # damages clean images
        {"worst": 0.3, "distance_to_bank": 0.9, "clean_ssim_loss": 0.0},
        {"worst": 0.05, "distance_to_bank": 0.5, "clean_ssim_loss": 0.01},  # safe and closest among the safe
    ]
    assert choose(rows) is rows[3]
    losing = [
        {"worst": -0.5, "distance_to_bank": 0.1, "clean_ssim_loss": 0.0},
        {"worst": -0.2, "distance_to_bank": 0.9, "clean_ssim_loss": 0.0},
    ]
    assert choose(losing) is losing[1]  # nothing safe: the smallest loss


def test_calibration_rows_match_restoring_at_each_step_count(tiny_model_file):
    """The batched search (one flow run per input, only the needed steps decoded, metrics over all step
    counts at once) records what restoring with that exact setting gives, at every step count."""
    import dataclasses

    model = load_model(tiny_model_file)
    clean = blob_images(16, seed=5)
    flow, rows = calibrate_flow(
        model,
        clean,
        sigma_d=0.3,
        generator=torch.Generator().manual_seed(1),
        alphas=(0.3,),
        betas=(0.2,),
        multipliers=(1.0,),
    )
    noisy = (clean + 0.3 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    single = psnr(single_pass(model, noisy), clean).mean()
    for r in rows:
        setting = dataclasses.replace(
            model.config.flow,
            alpha=r["alpha"],
            beta=r["beta"],
            steps=r["steps"],
            sigma_ker=r["sigma_ker"],
            adaptive=r["adaptive"],
        )
        gain = psnr(restore(model, noisy, setting).images, clean).mean() - single
        assert abs(gain.item() - r["gains"]["1x"]) < 1e-3
        if r["clean_ssim_loss"] is not None:
            loss = (
                ssim(single_pass(model, clean), clean).mean()
                - ssim(restore(model, clean, setting).images, clean).mean()
            )
            assert abs(loss.item() - r["clean_ssim_loss"]) < 1e-4


def test_the_small_grid_searches_its_own_values_and_step_counts(tiny_model, rng):
    from lmppm_cli.core.calibrate import GRIDS

    alphas, betas, steps, mults = GRIDS["small"]
    clean = torch.rand(6, 1, 12, 12, generator=rng)
    flow, rows = calibrate_flow(tiny_model, clean, 0.3, torch.Generator().manual_seed(0), alphas, betas, mults, steps)
    assert len(rows) == len(alphas) * len(betas) * len(mults) * 2 * len(steps)
    assert {r["steps"] for r in rows} == set(steps) and flow.steps in steps and flow.alpha in alphas


def test_calibration_noise_levels_judge_the_flow_on_clean_images_too(tiny_model_file):
    """--calibration-noise: the gains are measured at the levels given (0: the clean images themselves),
    and the worst gain is over all of them."""
    model = load_model(tiny_model_file)
    clean = blob_images(16, seed=12)
    grid = dict(alphas=ALPHAS[:1], betas=BETAS[:2], multipliers=KERNEL_MULTIPLIERS[:1], steps=(1, 2))
    flow, rows = calibrate_flow(model, clean, 0.3, torch.Generator().manual_seed(0), levels=(0.0, 0.3), **grid)
    assert all(list(r["gains"]) == ["sigma 0", "sigma 0.3"] for r in rows)
    assert all(r["worst"] == min(r["gains"].values()) for r in rows)
    row = rows[0]
    setting = dataclasses.replace(
        model.config.flow, **{k: row[k] for k in ("alpha", "beta", "steps", "sigma_ker", "adaptive")}
    )
    on_clean = psnr(restore(model, clean, setting).images, clean).mean() - psnr(single_pass(model, clean), clean).mean()
    assert abs(on_clean.item() - row["gains"]["sigma 0"]) < 1e-3


def test_calibration_reports_each_setting_and_the_bar_shows_a_finite_time_left(tiny_model_file):
    import io
    import re
    import time

    from rich.console import Console

    from lmppm_cli.display import bar, training_progress  # the bars `lmppm train` shows

    told = []
    model = load_model(tiny_model_file)
    grid = dict(alphas=ALPHAS[:2], betas=BETAS[:2], multipliers=KERNEL_MULTIPLIERS[:1], steps=(1, 2))
    gen = torch.Generator().manual_seed(0)
    calibrate_flow(model, blob_images(8, seed=3), 0.3, gen, on_setting=lambda d, t: told.append((d, t)), **grid)
    assert told == [(d, 8) for d in range(9)]  # 2 x 2 x 1 settings, with and without the adaptive cap

    screen = io.StringIO()
    progress = bar()
    progress.live.console = Console(file=screen, force_terminal=True, width=140)
    hooks = training_progress(progress)
    hooks.on_start(1, 1)
    for done, total in told:
        hooks.on_calibration(done, total)
        time.sleep(0.05)
        if done == 4:
            shown = [t for t in progress.tasks if t.description.startswith("calibrating")][0]
            assert shown.time_remaining is not None and 0 < shown.time_remaining < 60  # finite, before the end
    progress.stop()
    assert re.search(r"calibrating the flow", screen.getvalue())
