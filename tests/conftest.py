"""Shared fixtures: tiny configurations, a device and a seeded generator, tiny trained models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lmppm_cli.core.config import AutoencoderConfig, DistanceConfig, ModelConfig
from lmppm_cli.core.data import Dataset, Split
from lmppm_cli.core.models import LMPPM

torch.set_num_threads(2)


@pytest.fixture
def device() -> torch.device:
    return torch.device("cpu")


@pytest.fixture
def rng() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def tiny_config(channels: int = 1, height: int = 12, width: int = 12, latent_dim: int = 4) -> ModelConfig:
    return ModelConfig(
        autoencoder=AutoencoderConfig(
            channels=channels, height=height, width=width, latent_dim=latent_dim, widths=(4, 8)
        ),
        distance=DistanceConfig(hidden=(16, 8), dropout=0.0),
    )


@pytest.fixture
def tiny_model(rng) -> LMPPM:
    torch.manual_seed(0)
    model = LMPPM(tiny_config(), bank_size=0)
    model.build_bank(torch.rand(20, 1, 12, 12, generator=rng))
    return model


def blob_images(n: int, size: int = 12, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """Synthetic 'digits': one bright Gaussian blob per image at a random place, (n, C, size, size)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(n, 2, generator=g) * (size - 4) + 2
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    d2 = (yy[None] - centres[:, 0, None, None]) ** 2 + (xx[None] - centres[:, 1, None, None]) ** 2
    img = torch.exp(-d2 / 4.0).unsqueeze(1)
    return img.expand(n, channels, size, size).contiguous()


@pytest.fixture
def blob_dataset() -> Dataset:
    return Dataset(
        "blobs", Split(blob_images(48, seed=1)), Split(blob_images(16, seed=2)), Split(blob_images(16, seed=3))
    )


def write_png(path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory):
    """A tiny 12x12 gray model trained for 3 epochs on blob images, saved as a model file."""
    from lmppm_cli.core.train import TrainConfig
    from lmppm_cli.training import train

    torch.set_num_threads(2)
    run = tmp_path_factory.mktemp("tiny-run")
    ds = Dataset("blobs", Split(blob_images(48, seed=1)), Split(blob_images(16, seed=2)))
    tcfg = TrainConfig(epochs=3, batch_size=16, lr=3e-3, lr_distance=1e-3, seed=0)
    train(tiny_config(), ds, tcfg, run, torch.device("cpu"))
    return run / "model.safetensors"


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model_file, tmp_path_factory):
    """Tiny 12x12 models of every kind a bench suite needs: lmppm, dae, ldm (on that dae), classifier."""
    import dataclasses

    from lmppm_cli.core.config import DiffusionConfig
    from lmppm_cli.core.train import TrainConfig
    from lmppm_cli.files.weights import load_model
    from lmppm_cli.training import train

    root = tmp_path_factory.mktemp("bundle")
    x = blob_images(60, seed=1)
    labels = torch.arange(60) % 10
    ds = Dataset("blobs", Split(x[:48], labels[:48]), Split(x[48:], labels[48:]))
    tcfg = TrainConfig(epochs=2, batch_size=16, lr=3e-3, seed=0)
    cpu = torch.device("cpu")
    train(dataclasses.replace(tiny_config(), method="dae"), ds, tcfg, root / "dae", cpu)
    ldm_cfg = dataclasses.replace(tiny_config(), method="ldm", diffusion=DiffusionConfig(hidden=(16,)))
    train(ldm_cfg, ds, tcfg, root / "ldm", cpu, base=load_model(root / "dae" / "model.safetensors"))
    train(dataclasses.replace(tiny_config(), method="classifier"), ds, tcfg, root / "clf", cpu)
    files = {
        "lmppm": tiny_model_file,
        "dae": root / "dae" / "model.safetensors",
        "ldm": root / "ldm" / "model.safetensors",
        "classifier": root / "clf" / "model.safetensors",
    }
    return files
