"""Every script in examples/ runs in its quick mode (tiny arguments), as a process of its own, so a
renamed argument or a moved function fails here and not in a reader's hands. Quick runs write into a
temporary folder, never over the committed figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# script -> (arguments, text its output must hold); "{tmp}" and "{run}" are filled in by the test
QUICK = {
    "bank_scale.py": (["--size", "3000", "--k", "8"], "top-8 through FAISS HNSW"),
    "behaviour_check.py": (["{tmp}/check", "--quick"], "outputs digested"),
    "blind_rule.py": (["--n", "20", "--out", "{tmp}/m.safetensors"], "| scribbles severe 22 |"),
    "before_after.py": (["--quick", "--out", "{tmp}"], "photo, noise 0.1"),
    "camera_blend.py": (["--quick"], "| camera, clean JPEG | 0.5 |"),
    "domain_scores.py": (["--quick"], "chelsea (photo, validation) |"),
    "folder_speed.py": (["--n", "64"], "64 files written"),
    "ldm_search.py": (
        ["--quick", "--limit", "20", "--variants", "shipped,retrained", "--out", "{tmp}/ldm"],
        "| retrained |",
    ),
    "make_examples.py": (["--out", "{tmp}"], ""),
    "photo_ablation.py": (["--quick", "--out", "{tmp}/runs"], "sigmoid output (not residual)"),
    "photo_recipe.py": (["--quick", "--variants", "base,relative", "--out", "{tmp}/recipe"], "relative {"),
    "pick_trial_pilot.py": (["--quick"], '"scene": "chelsea (centre)"'),
    "photo_training_curve.py": (["{run}", "{run}", "--out", "{tmp}/curve.png"], "wrote"),  # a run continued
    "report_pages.py": (["--quick", "--out", "{tmp}"], "pages: "),
    "startup_times.py": (["--rounds", "1"], "lmppm restore / import torch"),
    "stream_scale.py": (["--n", "60"], "whole run"),
    "tiled_photo.py": (["--quick", "--out", "{tmp}"], "PSNR noisy"),
    "train_scale.py": (["--sizes", "300", "--modes", "exact", "--out", "{tmp}"], "| 300 | exact |"),
    "user_check.py": (["digits", "0.4", "--n", "3"], "| BM3D |"),
}
WRITES = {
    "blind_rule.py": "m.safetensors",
    "before_after.py": "before_after_photo.png",
    "make_examples.py": "noisy_photo.png",
    "tiled_photo.py": "tiled_coffee_noise-0.2.png",
    "photo_training_curve.py": "curve.png",
    "train_scale.py": "train_scale.md",
}


def test_every_example_has_a_quick_run():
    assert sorted(QUICK) == sorted(p.name for p in EXAMPLES.glob("*.py"))


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory) -> Path:
    """A tiny run directory whose summary.json is what photo_training_curve.py reads (a real training)."""
    import torch

    from lmppm_cli.core.config import AutoencoderConfig, DistanceConfig, ModelConfig
    from lmppm_cli.core.data import Dataset, Split
    from lmppm_cli.core.train import TrainConfig
    from lmppm_cli.training import train

    run = tmp_path_factory.mktemp("curve-run")
    x = torch.rand(32, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    ae = AutoencoderConfig(arch="unet", channels=3, height=16, width=16, latent_dim=4, widths=(4, 8), residual=True)
    config = ModelConfig(autoencoder=ae, distance=DistanceConfig(hidden=(8,)), method="dae")
    train(
        config,
        Dataset("tiny", Split(x[:24]), Split(x[24:])),
        TrainConfig(epochs=2, batch_size=8, calibrate=False),
        run,
        torch.device("cpu"),
    )
    return run


@pytest.mark.parametrize("script", sorted(QUICK))
def test_example_runs_in_quick_mode(script, tmp_path, photo_run):
    args, expected = QUICK[script]
    args = [a.replace("{tmp}", str(tmp_path)).replace("{run}", str(photo_run)) for a in args]
    before = {p: p.stat().st_mtime_ns for p in EXAMPLES.rglob("*") if p.is_file()}
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "OMP_NUM_THREADS": "2",
    }
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert expected in run.stdout, run.stdout[-2000:]
    if script in WRITES:
        assert (tmp_path / WRITES[script]).stat().st_size > 0
    after = {p: p.stat().st_mtime_ns for p in EXAMPLES.rglob("*") if p.is_file()}
    assert after == before, "a quick run changed the committed examples"
    if script == "train_scale.py":
        rows = json.loads((tmp_path / "train_scale.json").read_text())["rows"]
        assert rows[0]["images"] == 300 and rows[0]["seconds_per_epoch"] > 0
