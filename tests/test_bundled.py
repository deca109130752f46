"""The claims the README makes about the bundled MNIST model, checked on held-out digits."""

import pytest
import torch

from lmppm_cli.bench import run_suite
from lmppm_cli.cli import app
from lmppm_cli.weights import load_model, resolve_model


def _check_gains(cells):
    by = {(c.degradation, c.method): c for c in cells}
    for noise in ("noise 0.4", "noise 0.7"):
        noisy, single, flow = (by[(noise, m)].psnr for m in ("noisy input", "single pass G(F(x))", "LMPPM"))
        assert flow >= noisy + 4.0, (noise, flow, noisy)
        assert flow > single, (noise, flow, single)


def test_bundled_model_gains_4db_and_beats_its_single_pass(tmp_path):
    """On 500 held-out digits (spread over the classes): the flow gains >= 4 dB over the noisy input
    and beats G(F(x)) at sigma 0.4 and 0.7."""
    model = load_model(resolve_model("mnist"))
    _check_gains(run_suite("mnist-noise", tmp_path, seed=0, models={"lmppm": model}, limit=500))


@pytest.mark.slow
def test_training_from_scratch_reproduces_the_bundled_claims(tmp_path):
    """The README's training command, run in full on the CPU (about 7 minutes on 2 cores)."""
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["train", "mnist-5k", "-o", str(tmp_path / "run"), "--seed", "0", "--device", "cpu", "--lambdas", "1,4,1,1,1,1"])
    assert result.exit_code == 0, result.output
    model = load_model(tmp_path / "run" / "model.safetensors")
    _check_gains(run_suite("mnist-noise", tmp_path / "bench", seed=0, models={"lmppm": model}))
    assert torch.isfinite(model.bank).all()
