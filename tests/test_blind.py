"""The blind rule (restoration.blind_rule, FlowConfig.noisy / far): each image takes the flow of its
regime, exactly as if that flow ran alone on it; the rule survives a model file; the ablations remove D
from every regime."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import blob_images

from lmppm_cli.core.config import FlowOverride, ModelConfig
from lmppm_cli.core.errors import LmppmError, ModelError
from lmppm_cli.core.noise_level import estimate_noise, noise_levels
from lmppm_cli.core.restoration import blind_rule, everywhere, restore
from lmppm_cli.files.weights import load_model, save_model


def _blind(model, far_residual: float, noisy_above: float = 0.2):
    """Near: the kernel step alone; far: a stronger flow; noisy: the model's own flow."""
    f = model.config.flow
    far = dataclasses.replace(f, alpha=0.15, beta=0.1, steps=4, adaptive=False)
    near = dataclasses.replace(
        f,
        alpha=0.0,
        beta=0.1,
        steps=2,
        adaptive=False,
        far=far,
        far_residual=far_residual,
        noisy=f,
        noisy_above=noisy_above,
    )
    return near


def _inputs(model):
    """Two clean blobs, two blobs with a bright square pasted on (off the data: a large residual, no
    noise), two with heavy Gaussian noise."""
    clean = blob_images(6, seed=5)
    x = clean.clone()
    x[2:4, :, 2:8, 2:8] = 1.0
    x[4:] = (x[4:] + 0.5 * torch.randn(x[4:].shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    return x


def _residual(model, x):
    z, skips = model.autoencoder.encode(x)
    return (x - model.autoencoder.decode(z, skips)).flatten(1).pow(2).mean(1).sqrt()


def test_noise_levels_match_the_per_image_estimate_and_rise_with_noise():
    x = blob_images(3, seed=0)
    noisy = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    levels = noise_levels(noisy)
    assert levels.shape == (3,) and torch.allclose(levels, torch.tensor([estimate_noise(i) for i in noisy]))
    assert (noise_levels(x) < 0.02).all() and (levels > 0.1).all()


@torch.no_grad()
def test_every_image_takes_its_regimes_flow_as_if_it_ran_alone(tiny_model_file):
    model = load_model(tiny_model_file)
    x = _inputs(model)
    r = _residual(model, x)
    flow = _blind(model, far_residual=float((r[:2].max() + r[2:4].min()) / 2))
    regimes = blind_rule(model, x, *model.autoencoder.encode(x), flow)
    rows = {f.steps: set(torch.nonzero(b).flatten().tolist()) for b, f in regimes}
    assert rows == {2: {0, 1}, 4: {2, 3}, model.config.flow.steps: {4, 5}}
    out = restore(model, x, flow)
    for regime, f in regimes:
        alone = restore(model, x[regime], dataclasses.replace(f, far=None, noisy=None))
        torch.testing.assert_close(out.images[regime], alone.images)
        assert (out.steps_taken[regime] == alone.steps_taken).all()


@torch.no_grad()
def test_a_kept_trajectory_ends_at_each_images_result(tiny_model_file):
    model = load_model(tiny_model_file)
    x = _inputs(model)
    r = _residual(model, x)
    out = restore(model, x, _blind(model, float((r[:2].max() + r[2:4].min()) / 2)), keep_trajectory=True)
    alone = restore(
        model,
        x[:2],
        dataclasses.replace(model.config.flow, alpha=0.0, beta=0.1, steps=4, adaptive=False),
        keep_trajectory=True,
    )
    assert len(out.trajectory) == len(out.latents) >= len(alone.trajectory) > 1  # the longest regime's
    torch.testing.assert_close(out.trajectory[-1], out.images)


def test_the_rule_survives_a_model_file_and_bad_values_are_named(tiny_model_file, tmp_path):
    model = load_model(tiny_model_file)
    model.config = dataclasses.replace(model.config, flow=_blind(model, 0.3))
    save_model(model, tmp_path / "m.safetensors")
    assert load_model(tmp_path / "m.safetensors").config == model.config
    text = model.config.to_json().replace('"noisy_above": 0.2', '"noisy_above": -1.0')
    with pytest.raises(ModelError, match="flow.noisy_above"):
        ModelConfig.from_json(text)
    bad = dataclasses.replace(model.config.flow, far=dataclasses.replace(model.config.flow.far, alpha=-0.5))
    with pytest.raises(ModelError, match="flow.far.alpha"):
        ModelConfig.from_json(dataclasses.replace(model.config, flow=bad).to_json())
    with pytest.raises(LmppmError, match="alpha \\+ beta"):
        everywhere(model.config.flow, alpha=0.95)  # checked in every regime


def test_the_d_off_ablation_of_a_blind_model_never_evaluates_d(tiny_model_file):
    from lmppm_cli.experiments.bench.noise import ABLATION_LMPPM, ablation_rows
    from lmppm_cli.methods import restorer

    model = load_model(tiny_model_file)
    model.config = dataclasses.replace(model.config, flow=_blind(model, 0.01, noisy_above=0.01))
    x = _inputs(model)

    def broken(*_):
        raise AssertionError("D was evaluated")

    model.distance.forward = broken
    rows = ablation_rows(model)
    assert sum(name.startswith("one flow for all") for name in rows) == 2  # the rule off, per regime
    out = rows[ABLATION_LMPPM](x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    with pytest.raises(AssertionError, match="D was evaluated"):
        restorer(model)(x)


def test_a_flow_asked_for_runs_on_every_image(tiny_model_file):
    from lmppm_cli.core.restoration import flow_settings

    model = load_model(tiny_model_file)
    model.config = dataclasses.replace(model.config, flow=_blind(model, 0.3))
    assert (
        flow_settings(model).far is not None and flow_settings(model, FlowOverride(steps=None)).noisy is not None
    )  # nothing asked: the rule
    asked = flow_settings(model, FlowOverride(steps=5, alpha=0.2))
    assert (asked.far, asked.noisy, asked.steps, asked.alpha) == (None, None, 5, 0.2)
    searched = flow_settings(
        model, FlowOverride(top_k=4, tol=0.01)
    )  # the bank search and the stop are not flows of their own
    assert (searched.far.top_k, searched.noisy.top_k, searched.top_k, searched.noisy.tol) == (4, 4, 4, 0.01)
