import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import tiny_config
from safetensors.torch import save_file

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.files.weights import CONFIG_KEY, HUB_FILENAME, bundled_models, load_model, resolve_model, save_model


def test_save_load_round_trip_restores_identically(tiny_model, tmp_path, rng):
    path = save_model(tiny_model, tmp_path / "m.safetensors", {"note": "hello"})
    loaded = load_model(path)
    assert loaded.config == tiny_model.config
    for k, v in tiny_model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)
    x = torch.rand(3, 1, 12, 12, generator=rng)
    tiny_model.eval()
    with torch.no_grad():
        z = tiny_model.autoencoder.encode(x)[0]
        torch.testing.assert_close(
            loaded.autoencoder.decode(loaded.autoencoder.encode(x)[0]), tiny_model.autoencoder.decode(z)
        )
    assert not loaded.training
    assert not list(tmp_path.glob(".*part*")), "no temporary file may remain"


def test_not_a_safetensors_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_text("certainly not a model")
    with pytest.raises(LmppmError, match="not a readable safetensors"):
        load_model(bad)


def test_safetensors_without_lmppm_metadata(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, path)
    with pytest.raises(LmppmError, match="not an lmppm model"):
        load_model(path)


def test_wrong_shapes_for_the_declared_config(tiny_model, tmp_path):
    tensors = {k: v.contiguous() for k, v in tiny_model.state_dict().items()}
    wrong = tiny_config(latent_dim=7)
    path = tmp_path / "wrong.safetensors"
    save_file(tensors, path, metadata={CONFIG_KEY: wrong.to_json()})
    with pytest.raises(LmppmError, match="does not match"):
        load_model(path)


def test_unknown_name_and_missing_file():
    with pytest.raises(LmppmError, match="unknown model 'no-such-model'"):
        resolve_model("no-such-model")
    with pytest.raises(LmppmError, match="no model file"):
        resolve_model("missing/dir/model.safetensors")


def test_bundled_default_model_resolves_and_loads():
    assert "mnist" in bundled_models()
    model = load_model(resolve_model("mnist"))
    ae = model.config.autoencoder
    assert (ae.channels, ae.height, ae.width, ae.latent_dim) == (1, 28, 28, 18)
    assert model.bank.shape[0] > 1000


def _fake_hub_cache(root, repo_id: str, payload: bytes, commit: str = "a" * 40) -> None:
    """Lay out a cache as huggingface_hub does: blobs/, snapshots/<commit>/<file> -> blob, refs/main."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / "0123abcd").write_bytes(payload)
    (repo / "snapshots" / commit).mkdir(parents=True)
    os.symlink(repo / "blobs" / "0123abcd", repo / "snapshots" / commit / HUB_FILENAME)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def test_hub_repo_resolves_from_the_local_cache(tiny_model, tmp_path):
    src = save_model(tiny_model, tmp_path / "src.safetensors")
    cache = tmp_path / "hub"
    _fake_hub_cache(cache, "someone/tiny-digits", src.read_bytes())
    path = resolve_model("someone/tiny-digits", offline=True, cache_dir=str(cache))
    assert path.name == HUB_FILENAME
    assert load_model(path).config == tiny_model.config
    same = resolve_model("someone/tiny-digits", revision="a" * 40, offline=True, cache_dir=str(cache))
    assert same.resolve() == path.resolve()


def test_hub_repo_missing_while_offline_is_one_clear_error(tmp_path):
    with pytest.raises(LmppmError, match="not in the local cache"):
        resolve_model("someone/not-cached", offline=True, cache_dir=str(tmp_path))


def test_hf_hub_offline_environment_is_honoured(tiny_model, tmp_path):
    """With HF_HUB_OFFLINE=1 (read by huggingface_hub at import) and HF_HUB_CACHE set, the CLI
    restores from the cache and reports a repo that is not cached in one sentence."""
    src = save_model(tiny_model, tmp_path / "src.safetensors")
    cache = tmp_path / "hub"
    _fake_hub_cache(cache, "someone/tiny-digits", src.read_bytes())
    img = tmp_path / "in.png"
    from PIL import Image

    Image.new("L", (12, 12), 30).save(img)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "lmppm_cli",
            "restore",
            str(img),
            "-o",
            str(tmp_path / "out.png"),
            "-m",
            "someone/tiny-digits",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "out.png").is_file()
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "lmppm_cli",
            "restore",
            str(img),
            "-o",
            str(tmp_path / "o2.png"),
            "-m",
            "someone/absent",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode != 0
    assert "not in the local cache" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_nan_weights_and_malformed_configurations_are_named(tiny_model, tmp_path):
    tensors = {k: v.contiguous().clone() for k, v in tiny_model.state_dict().items()}
    good = json.loads(tiny_model.config.to_json())
    first = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel() > 1)
    tensors[first][0] = float("nan")
    save_file(tensors, tmp_path / "nan.safetensors", metadata={CONFIG_KEY: json.dumps(good)})
    with pytest.raises(LmppmError, match=f"NaN or infinite weights \\(in {first}\\)"):
        load_model(tmp_path / "nan.safetensors")
    clean = {k: v.contiguous() for k, v in tiny_model.state_dict().items()}
    cases = {
        "latent_dim": (
            {**good, "autoencoder": {**good["autoencoder"], "latent_dim": "four"}},
            "autoencoder.latent_dim = 'four'",
        ),
        "absurd": (
            {**good, "autoencoder": {**good["autoencoder"], "height": 10**9}},
            "autoencoder.height = 1000000000",
        ),
        "not a dict": ([1, 2], "not a JSON object"),
        "section": ({**good, "flow": 3}, "FlowConfig is not a JSON object"),
        "two channels": (
            {**good, "autoencoder": {**good["autoencoder"], "channels": 2}},
            "gray \\(1\\) or RGB \\(3\\)",
        ),
        "schedule": ({**good, "flow": {**good["flow"], "schedule": 7}}, "flow.schedule = 7"),
    }
    for name, (config, message) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        save_file(clean, path, metadata={CONFIG_KEY: json.dumps(config)})
        with pytest.raises(LmppmError, match=message):
            load_model(path)


def test_revision_is_refused_for_local_and_bundled_models(tiny_model, tmp_path):
    path = save_model(tiny_model, tmp_path / "m.safetensors")
    for ref in (str(path), "mnist"):
        with pytest.raises(LmppmError, match="--revision v1 applies to Hugging Face Hub models"):
            resolve_model(ref, revision="v1")
