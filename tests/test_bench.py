import json
import re

import pytest
import torch

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.experiments.bench import SUITES, run_suite
from lmppm_cli.files.weights import load_model
from lmppm_cli.methods import ldm


def test_quick_noise_bench_writes_every_row_and_column(tiny_bundle, tmp_path, monkeypatch):
    from lmppm_cli.experiments.bench import noise

    monkeypatch.setattr(noise, "MNIST_BM3D_IMAGES", 4)  # BM3D takes ~1 s an image: score it on 4 of 20
    models = {"lmppm": load_model(tiny_bundle["lmppm"]), "dae": load_model(tiny_bundle["dae"])}
    cells = run_suite("mnist-noise", tmp_path, seed=0, models=models, limit=20, draws=2)
    methods = list(dict.fromkeys(c.method for c in cells))
    assert len(cells) == 3 * len(methods) and {
        "LMPPM",
        "single pass G(F(x))",
        "DAE",
        "NL-means (blind)",
        "wavelet (blind)",
    } <= set(methods)
    bm3d = "BM3D (blind; 4 of 20 images)"
    assert bm3d in methods and {c.images for c in cells if c.method == bm3d} == {4}
    assert all(c.images == 20 for c in cells if c.method != bm3d)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["suite"] == "mnist-noise" and len(data["cells"]) == len(cells)
    table = (tmp_path / "results.md").read_text().split("\n\n")[2].splitlines()  # the metric table
    assert table[0].startswith("| method") and table[0].count("PSNR") == 3 and table[0].count("SSIM") == 3
    assert [line.split(" | ")[0][2:] for line in table[2:]] == list(methods)
    noisy = {c.degradation: c for c in cells if c.method == "noisy input"}
    assert noisy["noise 0.4"].psnr > noisy["noise 0.7"].psnr > noisy["noise 0.85"].psnr  # more noise, lower PSNR
    for method in ("NL-means (blind)", "wavelet (blind)", bm3d):
        by = {c.degradation: c for c in cells if c.method == method}
        assert by["noise 0.4"].psnr > noisy["noise 0.4"].psnr, method  # a denoiser that denoises


def test_same_seed_same_numbers(tiny_bundle, tmp_path):
    models = {"lmppm": load_model(tiny_bundle["lmppm"]), "dae": load_model(tiny_bundle["dae"])}
    a = run_suite("mnist-noise", tmp_path / "a", seed=3, models=models, limit=10, classical=False, draws=2)
    b = run_suite("mnist-noise", tmp_path / "b", seed=3, models=models, limit=10, classical=False, draws=2)
    assert [(c.psnr, c.ssim) for c in a] == [(c.psnr, c.ssim) for c in b]
    assert not any("BM3D" in c.method for c in a)


def test_unknown_suite_is_refused(tmp_path):
    assert "mnist-noise" in SUITES
    with pytest.raises(LmppmError, match="unknown bench suite"):
        run_suite("imagenet", tmp_path, seed=0)
    assert not (tmp_path / "results.json").exists()


def test_quick_mnist_suite_writes_table1_layout_grids_and_checks(tiny_bundle, tmp_path, monkeypatch):
    from lmppm_cli.experiments.bench import intervals, mnist

    monkeypatch.setattr(mnist, "BM3D_IMAGES", 3)
    monkeypatch.setattr(ldm, "START_STEPS", (0, 10, 100))  # the per-row LDM start, from fewer candidates
    monkeypatch.setattr(intervals, "FID_RESAMPLES", 20)  # each FID resample is an eigen-decomposition per draw
    models = {kind: load_model(path) for kind, path in tiny_bundle.items()}
    cells = run_suite("mnist", tmp_path, seed=0, models=models, limit=20, degradations=["noise", "elastic"], draws=2)
    from lmppm_cli.experiments.bench.noise import ABLATION_LMPPM

    methods = [
        "degraded input",
        "DAE",
        "LDM",
        "LDM, full chain",
        "LDM, start chosen per row",
        "LMPPM",
        ABLATION_LMPPM,
        "kernel step off (beta 0)",
        f"re-encoding only (alpha=beta=0, {models['lmppm'].config.flow.steps} steps)",
        "paper flow (alpha 0.15, beta 0.1, 8 steps, no adaptive step)",
        "Ablation_dae",
        "BM3D (blind; 3 of 20 images)",
        "NL-means (blind)",
        "wavelet (blind)",
    ]
    assert [c.method for c in cells[:14]] == methods and len(cells) == 5 * 14
    full = [c for c in cells if "BM3D" not in c.method]
    assert all(c.fid is not None and c.fid >= 0 and 0 <= c.accuracy <= 1 and c.images == 20 for c in full)
    subset = [c for c in cells if "BM3D" in c.method]  # FID depends on the sample size: none on a subset
    assert all(c.fid is None and 0 <= c.accuracy <= 1 and c.images == 3 for c in subset)
    assert {c.degradation for c in cells} == {
        "clean",
        "noise mild 0.7",
        "noise severe 0.85",
        "elastic mild 2.3",
        "elastic severe 1.8",
    }
    clean_input = next(c for c in cells if c.degradation == "clean" and c.method == "degraded input")
    assert clean_input.psnr == 100.0 and clean_input.ssim == pytest.approx(
        1.0
    )  # the clean row is the digits themselves
    md = (tmp_path / "results.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| method | noise"))
    assert header.count("FID/class") == 2 and header.count("SSIM") == 2 and header.count("acc %") == 2
    assert sum(line.startswith("| LMPPM |") for line in md.splitlines()) == 4  # clean, noise, elastic, timing tables
    assert "Targets, LMPPM's verdicts" in md and md.count("| elastic ") >= 2
    grids = sorted(p.name for p in tmp_path.glob("grid_*.png"))
    assert grids == [
        "grid_clean.png",
        "grid_elastic-mild-2.3.png",
        "grid_elastic-severe-1.8.png",
        "grid_noise-mild-0.7.png",
        "grid_noise-severe-0.85.png",
    ]
    data = json.loads((tmp_path / "results.json").read_text())
    assert {"fid", "fid_per_class", "accuracy", "ssim", "psnr", "seconds_per_image", "intervals", "versus"} <= set(
        data["cells"][0]
    )
    for c in full:  # every figure inside its own interval, 2 draws
        assert c.draws == 2 and set(c.intervals) == {"psnr", "ssim", "accuracy", "fid"}
        assert all(
            low <= value + 1e-9 and value - 1e-9 <= high
            for (low, high), value in ((c.intervals[k], getattr(c, k)) for k in ("psnr", "ssim", "accuracy"))
        )
    lm = {c.degradation: c for c in cells if c.method == "LMPPM"}
    for c in cells:
        if c.method == "LMPPM":
            assert c.versus == {}
            continue
        v = c.versus  # reference minus row, on the row's own images (BM3D: its 3)
        assert v["psnr"]["low"] <= v["psnr"]["mean"] <= v["psnr"]["high"] and v["psnr"]["verdict"] in (
            "win",
            "tie",
            "loss",
        )
        assert ("fid" in v) == ("BM3D" not in c.method)
        if "BM3D" not in c.method:
            assert v["psnr"]["mean"] == pytest.approx(lm[c.degradation].psnr - c.psnr, abs=1e-4)
    assert "Paired against LMPPM" in md and "| noise mild 0.7 | DAE |" in md
    chosen = next(line for line in md.splitlines() if "LDM, start chosen per row (validation):" in line)
    steps = re.findall(r"(clean|noise mild 0.7|noise severe 0.85|elastic mild 2.3|elastic severe 1.8) (\d+)", chosen)
    assert len(steps) == 5 and all(s in ("10", "100") for _, s in steps)


def test_best_start_takes_fidelity_first_then_the_lowest_fid():
    scores = {
        0: {"acc": 0.99, "fid": 1.0},  # the DAE within noise: never chosen
        10: {"acc": 0.90, "fid": 50.0},
        50: {"acc": 0.89, "fid": 40.0},  # within 0.02 of the best accuracy, lower FID
        300: {"acc": 0.80, "fid": 10.0},  # realistic but the wrong digits
    }
    assert ldm.best_start(scores) == 50
    assert ldm.best_start({**scores, 50: {"acc": 0.85, "fid": 40.0}}) == 10


def test_mnist_suite_refuses_a_model_that_is_not_a_classifier(tiny_bundle, tmp_path):
    """Asking for FID with a model that holds no classifier is one clear error (CLI: exit code 2)."""
    from typer.testing import CliRunner

    from lmppm_cli.cli import app

    res = CliRunner().invoke(
        app,
        [
            "bench",
            "--suite",
            "mnist",
            "-o",
            str(tmp_path / "b"),
            "--limit",
            "10",
            "--model",
            str(tiny_bundle["lmppm"]),
            "--dae",
            str(tiny_bundle["dae"]),
            "--ldm",
            str(tiny_bundle["ldm"]),
            "--classifier",
            str(tiny_bundle["lmppm"]),
        ],
    )
    assert res.exit_code == 3 and "not a classifier model" in res.stderr and "Traceback" not in res.output
    assert not (tmp_path / "b").exists()
    res = CliRunner().invoke(app, ["bench", "--suite", "cifar", "-o", str(tmp_path / "c")])
    assert res.exit_code == 2 and "'cifar' is not one of" in res.stderr


def test_a_bench_refuses_models_of_different_sizes(tmp_path):
    from typer.testing import CliRunner

    from lmppm_cli.cli import app

    res = CliRunner().invoke(
        app, ["bench", "--suite", "faces", "-o", str(tmp_path / "b"), "--ablation", "photos-patches", "--limit", "3"]
    )
    assert res.exit_code == 2 and "must share their image size" in res.stderr and "Traceback" not in res.output
    assert not (tmp_path / "b").exists()


def test_generation_suite_scores_every_generator_with_intervals_against_lmppm(tmp_path):
    """Bundled models, 12 samples x 2 seed sets: every row has FID, confidence and imbalance inside their
    intervals; every other row is compared with LMPPM; the markdown says it; imbalance on known cases."""
    import torch

    from lmppm_cli.experiments.bench.generation import REFERENCE, imbalance, run_generation

    assert imbalance(torch.arange(10).repeat(3)) == pytest.approx(0.0)
    assert imbalance(torch.zeros(20, dtype=torch.long)) == pytest.approx(0.9)
    summary = run_generation(tmp_path, seed=0, limit=12, draws=2)
    data = json.loads((tmp_path / "results.json").read_text())
    assert list(data["rows"]) == [
        REFERENCE,
        "LDM full chain (2000 steps)",
        "DAE kernel flow (mnist-dae, 16 steps)",
        "validation digits (real)",
    ]
    for name, row in data["rows"].items():
        for metric in ("fid", "confidence", "consensus", "imbalance"):
            assert row[metric]["low"] - 1e-9 <= row[metric]["mean"] <= row[metric]["high"] + 1e-9, (name, metric)
        assert 0 < row["confidence"]["mean"] <= 1 and row["fid"]["mean"] >= 0
        assert ("versus" in row) == (name != REFERENCE)
    assert set(summary) == set(data["rows"]) and data["rows"]["LDM full chain (2000 steps)"]["seconds_per_sample"] > 0
    assert "| LDM full chain (2000 steps) |" in (tmp_path / "results.md").read_text()
    assert data["rows"]["validation digits (real)"]["consensus"]["mean"] >= 0.75  # real digits read alike
    grids = sorted(p.name for p in tmp_path.glob("grid_*.png"))
    assert grids == [
        "grid_DAE-kernel-flow--mnist-dae--16-steps-.png",
        "grid_LDM-full-chain--2000-steps-.png",
        "grid_LMPPM-flow--mnist--16-steps-.png",
    ]
    from PIL import Image

    assert Image.open(tmp_path / grids[0]).size == (2 + 8 * 30, 2 + 2 * 30)  # 12 samples: rows of 8, then 4


def test_the_consensus_reader_reads_training_digits_as_their_labels():
    from lmppm_cli.experiments.bench.generation import NearestDigit
    from lmppm_cli.files.data import mnist_5k

    train = mnist_5k().train
    reader = NearestDigit(train.images[:200], train.labels[:200])
    assert torch.equal(reader(train.images[:50]), train.labels[:50])


def test_generation_suite_scores_the_ldm_it_is_given_and_refuses_kinds_it_has_no_row_for(tmp_path, monkeypatch):
    """--ldm FILE replaces the bundled LDM (the strongest LDM found is compared this way); --ablation,
    which no generation row uses, is refused in one sentence."""
    import shutil

    from typer.testing import CliRunner

    from lmppm_cli.cli import app
    from lmppm_cli.experiments.bench import generation

    mine = tmp_path / "my-ldm.safetensors"
    shutil.copy(generation.resolve_model("mnist-ldm"), mine)
    resolved = []
    real = generation.resolve_model
    monkeypatch.setattr(generation, "resolve_model", lambda ref: resolved.append(str(ref)) or real(ref))
    generation.run_generation(tmp_path / "out", seed=0, limit=4, draws=1, models={"ldm": str(mine)})
    assert str(mine) in resolved and "mnist-ldm" not in resolved
    out = CliRunner().invoke(app, ["bench", "--suite", "generation", "--ablation", "x", "-o", str(tmp_path / "b")])
    assert out.exit_code != 0 and "not --ablation" in out.output and "Traceback" not in out.output


def test_mnist_suite_scores_the_validation_digits_when_asked(tiny_bundle, tmp_path, monkeypatch):
    """--split validation (settings are chosen there) scores other digits than the test split, and says so."""
    from lmppm_cli.experiments.bench import intervals

    monkeypatch.setattr(intervals, "FID_RESAMPLES", 10)
    models = {kind: load_model(path) for kind, path in tiny_bundle.items()}
    runs = {
        split: run_suite(
            "mnist",
            tmp_path / split,
            seed=0,
            models=models,
            limit=6,
            degradations=["sharpen"],
            classical=False,
            draws=1,
            split=split,
        )
        for split in ("test", "validation")
    }
    inputs = {
        split: [c.psnr for c in cells if c.method == "degraded input" and c.degradation != "clean"]
        for split, cells in runs.items()
    }
    assert inputs["test"] != inputs["validation"]
    assert "mnist-5k validation split" in (tmp_path / "validation" / "results.md").read_text()
    assert "mnist-5k test split" in (tmp_path / "test" / "results.md").read_text()


def test_bench_split_is_refused_where_a_suite_has_no_validation_run(tmp_path):
    from typer.testing import CliRunner

    from lmppm_cli.cli import app

    res = CliRunner().invoke(app, ["bench", "--suite", "faces", "--split", "validation", "-o", str(tmp_path / "b")])
    assert res.exit_code == 2 and "--split is not an option of the faces suite" in res.output
    assert not (tmp_path / "b").exists()
