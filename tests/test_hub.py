"""`lmppm export` -> a Hub-style folder -> a local Hub cache laid out as the Hub client lays it out ->
`restore --model owner/name --offline`; and `lmppm models` over bundled, cached and local models."""

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from lmppm_cli.cli import app
from lmppm_cli.files.catalog import bundled_entries, hub_entries
from lmppm_cli.files.weights import bundled_models, read_tensors

runner = CliRunner()
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _hub_cache(cache, repo_id: str, folder) -> None:
    """models--owner--name/{blobs/<hash>, snapshots/<commit>/<file> -> blob, refs/main}, as the client writes it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True)
    (repo / "snapshots" / COMMIT).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    for i, f in enumerate(sorted(folder.iterdir())):
        blob = repo / "blobs" / f"{i:040x}"
        blob.write_bytes(f.read_bytes())
        os.symlink(os.path.relpath(blob, repo / "snapshots" / COMMIT), repo / "snapshots" / COMMIT / f.name)


def test_export_writes_a_hub_repo_that_loads_from_the_folder_and_the_cache(tmp_path):
    result = runner.invoke(
        app, ["export", "mnist", "-o", str(tmp_path / "repo"), "--bench", "examples/bench_mnist_noise/results.json"]
    )
    assert result.exit_code == 0, result.output
    card = (tmp_path / "repo" / "README.md").read_text()
    front = card.split("---")[1]
    assert "library_name: lmppm" in front and "license: mit" in front and "- mnist-5k" in front and "tags:" in front
    assert "| noise 0.4 | LMPPM |" in card
    config = json.loads((tmp_path / "repo" / "config.json").read_text())
    assert config["library_name"] == "lmppm" and config["lmppm"]["autoencoder"]["latent_dim"] == 18
    original, _ = read_tensors("weights/mnist.safetensors")
    exported, meta = read_tensors(tmp_path / "repo" / "model.safetensors")
    assert all((original[k] == exported[k]).all() for k in original) and meta["lmppm.headline"].startswith("noise 0.4")
    again = runner.invoke(app, ["export", "mnist", "-o", str(tmp_path / "repo")])
    assert again.exit_code != 0 and "already exists" in again.stderr

    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    Image.fromarray(digit).save(tmp_path / "d.png")
    assert (
        runner.invoke(
            app, ["restore", str(tmp_path / "d.png"), "-o", str(tmp_path / "a.png"), "-m", str(tmp_path / "repo")]
        ).exit_code
        == 0
    )

    cache = tmp_path / "cache"
    _hub_cache(cache, "someone/digits", tmp_path / "repo")
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    cmd = [
        sys.executable,
        "-m",
        "lmppm_cli",
        "restore",
        str(tmp_path / "d.png"),
        "-o",
        str(tmp_path / "b.png"),
        "--model",
        "someone/digits",
        "--offline",
        "--device",
        "cpu",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png")))

    (row,) = hub_entries(str(cache))
    assert row["name"] == "someone/digits" and row["source"] == "hub cache" and row["headline"].startswith("noise 0.4")
    listed = runner.invoke(app, ["models", str(tmp_path / "repo"), "--cache-dir", str(cache)], env={"COLUMNS": "250"})
    assert listed.exit_code == 0 and "someone/digits" in listed.stdout and "hub cache" in listed.stdout


def test_models_lists_every_bundled_model_with_a_headline():
    rows = {r["name"]: r for r in bundled_entries()}
    assert set(rows) == set(bundled_models())
    assert all(r["headline"] for r in rows.values())
    assert rows["photos"]["input CxHxW"] == "3x64x64" and rows["mnist"]["auto-pick for"] == "handwritten digits"


def test_models_lists_a_malformed_file_as_unreadable_with_the_reason(tmp_path):
    import torch
    from safetensors.torch import save_file

    from lmppm_cli.files.catalog import local_entries
    from lmppm_cli.files.weights import CONFIG_KEY

    save_file({"w": torch.zeros(2)}, tmp_path / "odd.safetensors", metadata={CONFIG_KEY: '{"autoencoder": 3}'})
    (row,) = local_entries([str(tmp_path)])
    assert row["method"] == "unreadable" and "not a JSON object" in row["headline"]
    listed = CliRunner().invoke(app, ["models", str(tmp_path)], env={"COLUMNS": "250"})
    assert listed.exit_code == 0 and "unreadable" in listed.stdout


def test_export_half_halves_the_file_and_loads_back_as_float32_with_the_same_restorations(tmp_path):
    import torch

    from lmppm_cli.core.restoration import restore
    from lmppm_cli.files.weights import load_model

    result = runner.invoke(app, ["export", "faces", "-o", str(tmp_path / "half"), "--half"])
    assert result.exit_code == 0, result.output
    exported, _ = read_tensors(tmp_path / "half" / "model.safetensors")
    assert all(t.dtype == torch.float16 for t in exported.values() if t.is_floating_point())
    assert (tmp_path / "half" / "model.safetensors").stat().st_size < 0.55 * os.path.getsize(
        "weights/faces.safetensors"
    )
    full, half = load_model("weights/faces.safetensors"), load_model(tmp_path / "half" / "model.safetensors")
    assert all(p.dtype == torch.float32 for p in half.parameters())
    x = torch.rand(4, 1, 25, 25, generator=torch.Generator().manual_seed(0))
    a, b = restore(full, x).images, restore(half, x).images
    assert 10 * torch.log10(1 / (a - b).pow(2).mean()) > 40


def test_half_keeps_a_tensor_beyond_float16_range_in_float32(tmp_path):
    import torch

    from lmppm_cli.files.weights import load_model, save_model

    model = load_model("weights/faces.safetensors")
    key = next(k for k in model.state_dict() if k.endswith("running_var"))
    model.state_dict()[key][0] = 1e6  # float16 would make it inf
    save_model(model, tmp_path / "m.safetensors", half=True)
    tensors, _ = read_tensors(tmp_path / "m.safetensors")
    assert tensors[key].dtype == torch.float32 and any(t.dtype == torch.float16 for t in tensors.values())
    assert float(load_model(tmp_path / "m.safetensors").state_dict()[key][0]) == 1e6
