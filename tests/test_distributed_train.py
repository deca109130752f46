"""Training across processes started by torchrun (core/train.py): 2 gloo ranks on the CPU reach the
weights of one process with the same global batch, only rank 0 writes, and a distributed run resumes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import blob_images, tiny_config, write_png

from lmppm_cli.core.train import TrainConfig
from lmppm_cli.files.weights import load_model
from lmppm_cli.training import train

TESTS = Path(__file__).parent
ENV = os.environ | {"OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]

SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
from conftest import blob_images, tiny_config
from lmppm_cli.core.train import TrainConfig
from lmppm_cli.training import train
from lmppm_cli.files import shards
from lmppm_cli.core.data import Dataset, Split

torch.set_num_threads(1)
world = shards.world_from_env()
shards.start(world, torch.device("cpu"))
tcfg = TrainConfig(epochs=2, batch_size={batch}, lr=3e-3, seed=3, calibrate=False, sigma_range={sigma_range})
data = Dataset("blobs", Split(blob_images(48, seed=1)), Split(blob_images(16, seed=2)), Split(blob_images(16, seed=3)))
train(tiny_config(), data, tcfg, {out!r}, torch.device("cpu"), world=world)
shards.stop()
"""


def _state(path):
    return load_model(path).state_dict()


@pytest.mark.parametrize("sigma_range", [None, (0.0, 0.6)])
def test_two_gloo_ranks_train_the_weights_of_one_process_with_the_same_global_batch(
    blob_dataset, tmp_path, sigma_range
):
    """Rank r takes rows r::2 of every global batch of 16 (DistributedSampler) and the noise one
    process would draw for those rows; DDP averages the gradients, so two ranks at 8 each end where
    one process at 16 ends (48 training images: every batch splits evenly)."""
    script = tmp_path / "two.py"
    script.write_text(SCRIPT.format(tests=str(TESTS), batch=8, sigma_range=sigma_range, out=str(tmp_path / "two")))
    run = subprocess.run([*TORCHRUN, str(script)], capture_output=True, text=True, env=ENV, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    tcfg = TrainConfig(epochs=2, batch_size=16, lr=3e-3, seed=3, calibrate=False, sigma_range=sigma_range)
    train(tiny_config(), blob_dataset, tcfg, tmp_path / "one", torch.device("cpu"))
    one, two = _state(tmp_path / "one" / "model.safetensors"), _state(tmp_path / "two" / "model.safetensors")
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], atol=2e-5, rtol=1e-4, msg=key)
    summaries = [json.loads((tmp_path / d / "summary.json").read_text()) for d in ("one", "two")]
    assert summaries[0]["history"][0]["train"]["total"] == pytest.approx(
        summaries[1]["history"][0]["train"]["total"], rel=1e-4
    )
    assert summaries[0]["history"][1]["train"]["total"] < summaries[0]["history"][0]["train"]["total"]


def _folder(root: Path, n: int = 40) -> Path:
    for i, img in enumerate(blob_images(n, size=12, seed=5)):
        write_png(root / f"{i:03d}.png", (img[0].numpy() * 255).astype(np.uint8))
    (root / "broken.png").write_bytes(b"not an image")
    return root


def _cli_train(args, launcher):
    return subprocess.run(
        [*launcher, "-m", "lmppm_cli", "train", *args], capture_output=True, text=True, env=ENV, timeout=300
    )


@pytest.mark.parametrize("stream", [[], ["--stream", "--workers", "1"]])
def test_torchrun_training_from_the_cli_writes_once_names_unreadable_files_and_resumes_exactly(tmp_path, stream):
    """Also streamed: rank 0 decodes the folder into the run's cache while the other rank waits, then both read it."""
    data = _folder(tmp_path / "imgs")
    common = [
        str(data),
        "--image-size",
        "12",
        "--latent-dim",
        "4",
        "--widths",
        "4,8",
        "--batch-size",
        "4",
        "--seed",
        "1",
        "--device",
        "cpu",
        "--no-calibrate",
        *stream,
    ]
    straight = _cli_train([*common, "-o", str(tmp_path / "straight"), "--epochs", "2"], TORCHRUN)
    assert straight.returncode == 0, straight.stdout + straight.stderr
    assert (
        straight.stdout.count("model written to") == 1 and straight.stderr.count("2 processes") == 1
    )  # rank 0 alone reports
    assert "skipped 1 unreadable file(s), e.g. " + str(data / "broken.png") in straight.stderr.replace("\n", "")
    expected = ["checkpoint.safetensors", "model.safetensors", "summary.json", "summary.md"] + (
        ["cache"] if stream else []
    )
    assert sorted(p.name for p in (tmp_path / "straight").iterdir()) == sorted(expected)
    first = _cli_train([*common, "-o", str(tmp_path / "resumed"), "--epochs", "1"], TORCHRUN)
    assert first.returncode == 0, first.stderr
    again = _cli_train([*common, "-o", str(tmp_path / "resumed"), "--epochs", "2", "--resume"], TORCHRUN)
    assert again.returncode == 0, again.stdout + again.stderr
    a, b = _state(tmp_path / "straight" / "model.safetensors"), _state(tmp_path / "resumed" / "model.safetensors")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    summary = json.loads((tmp_path / "straight" / "summary.json").read_text())
    assert summary["epochs_run"] == 2 and summary["train_images"] + summary["val_images"] == 40


def test_a_baseline_that_trains_in_one_process_refuses_torchrun_in_one_sentence(tmp_path):
    data = _folder(tmp_path / "imgs", n=12)
    run = _cli_train([str(data), "-o", str(tmp_path / "run"), "--method", "classifier", "--device", "cpu"], TORCHRUN)
    said = " ".join(run.stderr.split())
    assert run.returncode != 0 and "--method classifier trains in one process; run it without torchrun." in said, said
    assert "/lmppm_cli/" not in run.stderr and not (tmp_path / "run").exists()  # torchrun's own traceback only
