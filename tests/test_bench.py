import json

import pytest

from lmppm_cli.bench import SUITES, run_suite
from lmppm_cli.errors import LmppmError
from lmppm_cli.weights import load_model


def test_quick_noise_bench_writes_every_row_and_column(tiny_model_file, tmp_path):
    model = load_model(tiny_model_file)
    cells = run_suite("mnist-noise", tmp_path, seed=0, model=model, limit=20)
    methods = {c.method for c in cells}
    assert len(cells) == 2 * len(methods) and "LMPPM" in methods and "single pass G(F(x))" in methods
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["suite"] == "mnist-noise" and len(data["cells"]) == len(cells)
    assert all(c["images"] == 20 for c in data["cells"])
    table = (tmp_path / "results.md").read_text().splitlines()
    header = next(line for line in table if line.startswith("| method"))
    assert header.count("PSNR") == 2 and header.count("SSIM") == 2
    rows = [line for line in table if line.startswith("| ") and not line.startswith("| method")]
    assert len(rows) == len(methods)
    noisy = {c.degradation: c for c in cells if c.method == "noisy input"}
    assert noisy["noise 0.4"].psnr > noisy["noise 0.7"].psnr  # more noise, lower PSNR


def test_same_seed_same_numbers(tiny_model_file, tmp_path):
    model = load_model(tiny_model_file)
    a = run_suite("mnist-noise", tmp_path / "a", seed=3, model=model, limit=10)
    b = run_suite("mnist-noise", tmp_path / "b", seed=3, model=model, limit=10)
    assert [(c.psnr, c.ssim) for c in a] == [(c.psnr, c.ssim) for c in b]


def test_unknown_suite_is_refused(tmp_path):
    assert "mnist-noise" in SUITES
    with pytest.raises(LmppmError, match="unknown bench suite"):
        run_suite("imagenet", tmp_path, seed=0)
    assert not (tmp_path / "results.json").exists()
