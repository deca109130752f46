"""The claims the README and docs/reproduction.md make about the bundled models, checked on held-out images."""

import pytest
import torch

from lmppm_cli.cli import app
from lmppm_cli.experiments.bench import run_suite
from lmppm_cli.files.weights import load_model, resolve_model


def _check_gains(cells):
    """By the paired interval rule: the flow gains >= 4 dB over the noisy input (the whole interval),
    beats G(F(x)) in SSIM and is not behind it in PSNR (at sigma 0.4 the two tie: +0.002 dB
    [-0.016, +0.020] on 500 digits), and is not behind the DAE in PSNR or SSIM (a win or a tie)."""
    by = {(c.degradation, c.method): c for c in cells}
    for noise in ("noise 0.4", "noise 0.7", "noise 0.85"):
        noisy, single, dae = (by[(noise, m)].versus for m in ("noisy input", "single pass G(F(x))", "DAE"))
        assert noisy["psnr"]["low"] >= 4.0, (noise, noisy["psnr"])
        assert single["ssim"]["verdict"] == "win" and single["psnr"]["verdict"] != "loss", (noise, single)
        assert dae["psnr"]["verdict"] != "loss" and dae["ssim"]["verdict"] != "loss", (noise, dae)


def _digit_models():
    return {"lmppm": load_model(resolve_model("mnist")), "dae": load_model(resolve_model("mnist-dae"))}


def test_bundled_model_gains_4db_beats_its_single_pass_and_matches_the_dae(tmp_path):
    """On 500 held-out digits (spread over the classes), 3 draws, at sigma 0.4, 0.7 and 0.85 (_check_gains)."""
    _check_gains(run_suite("mnist-noise", tmp_path, seed=0, models=_digit_models(), limit=500, classical=False))


@pytest.mark.slow
def test_training_from_scratch_reproduces_the_bundled_claims(tmp_path):
    """The two training commands of docs/reproduction.md (the DAE, then LMPPM started from it), run in full on the CPU."""
    from typer.testing import CliRunner

    common = ["--seed", "0", "--device", "cpu", "--sigma-range", "0,0.9"]
    dae = CliRunner().invoke(app, ["train", "mnist-5k", "-o", str(tmp_path / "dae"), "--method", "dae", *common])
    assert dae.exit_code == 0, dae.output
    result = CliRunner().invoke(
        app,
        [
            "train",
            "mnist-5k",
            "-o",
            str(tmp_path / "run"),
            *common,
            "--lambdas",
            "1,4,1,1,1,1",
            "--lambda-denoise",
            "4",
            "--init",
            str(tmp_path / "dae" / "model.safetensors"),
        ],
    )
    assert result.exit_code == 0, result.output
    model = load_model(tmp_path / "run" / "model.safetensors")
    models = {"lmppm": model, "dae": load_model(tmp_path / "dae" / "model.safetensors")}
    _check_gains(run_suite("mnist-noise", tmp_path / "bench", seed=0, models=models, classical=False))
    assert torch.isfinite(model.bank).all()


def test_bundled_rgb_model_gains_and_beats_its_single_pass_and_its_ablation(tmp_path):
    """On 200 patches of the held-out test photo: at sigma 0.2 and 0.3 the flow gains >= 6 dB over the
    noisy input, beats G(F(x)), and beats the same U-Net trained without latent-to-skip projections."""
    models = {
        "lmppm": load_model(resolve_model("photos-patches")),
        "ablation": load_model(resolve_model("photos-noproj")),
    }
    by = {
        (c.degradation, c.method): c.psnr
        for c in run_suite("photo-noise", tmp_path, seed=0, models=models, limit=200, classical=False, draws=1)
    }
    for noise in ("noise 0.2", "noise 0.3"):
        flow = by[(noise, "LMPPM")]
        assert flow >= by[(noise, "noisy input")] + 6.0 and flow > by[(noise, "single pass G(F(x))")], noise
        assert flow > by[(noise, "LMPPM, no projections")], noise


def test_faces_bench_runs_on_the_bundled_models_from_the_cli(tmp_path):
    """`lmppm bench --suite faces` with no model options uses the bundled faces models; Table 2's noise
    strengths; SSIM and PSNR; LMPPM ahead of blind BM3D; one sentence where Inception FID cannot run."""
    import json

    from typer.testing import CliRunner

    from lmppm_cli.core.metrics import inception_fid_missing

    res = CliRunner().invoke(
        app,
        [
            "bench",
            "--suite",
            "faces",
            "-o",
            str(tmp_path),
            "--degradations",
            "noise",
            "--device",
            "cpu",
            "--draws",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "results.json").read_text())
    cells = {(c["degradation"], c["method"]): c for c in data["cells"]}
    assert {c["images"] for c in data["cells"]} == {20}
    for noise in ("noise 0.2", "noise 0.25", "noise 0.3"):
        lmppm, bm3d = cells[(noise, "LMPPM")], cells[(noise, "BM3D (blind)")]
        assert lmppm["psnr"] > cells[(noise, "degraded input")]["psnr"] + 3.0
        assert lmppm["psnr"] > bm3d["psnr"] and lmppm["ssim"] > bm3d["ssim"], noise  # what a user would otherwise run
        assert 0 < cells[(noise, "LMPPM, no projections")]["ssim"] <= 1
    missing = inception_fid_missing()
    assert (missing in data["notes"]) if missing else all(c["fid"] is not None for c in data["cells"])
    assert sorted(p.name for p in tmp_path.glob("grid_*.png")) == [
        "grid_noise-0.2.png",
        "grid_noise-0.25.png",
        "grid_noise-0.3.png",
    ]
