import dataclasses

import pytest
import torch
from conftest import blob_images, tiny_config

from lmppm_cli.core.config import DiffusionConfig, FlowOverride
from lmppm_cli.core.data import Dataset, Split
from lmppm_cli.core.errors import LmppmError
from lmppm_cli.core.restoration import restore, single_pass
from lmppm_cli.core.train import TrainConfig
from lmppm_cli.files.weights import load_model
from lmppm_cli.methods import ddpm, ldm, restorer
from lmppm_cli.methods.ldm import LdmOptions
from lmppm_cli.training import train


def _tcfg(**kw):
    return TrainConfig(**{"epochs": 3, "batch_size": 16, "lr": 3e-3, "seed": 0, **kw})


@pytest.fixture(scope="module")
def dae_file(tmp_path_factory):
    run = tmp_path_factory.mktemp("dae")
    ds = Dataset("blobs", Split(blob_images(48, seed=1)), Split(blob_images(16, seed=2)))
    train(dataclasses.replace(tiny_config(), method="dae"), ds, _tcfg(epochs=8), run, torch.device("cpu"))
    return run / "model.safetensors"


def test_schedule_matches_alg2():
    s = ddpm.schedule(DiffusionConfig())
    assert s.steps == 2000
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)
    assert s.alpha_bar[0].item() == pytest.approx(1 - 1e-4)
    expected_last = torch.prod(1 - torch.linspace(1e-4, 0.02, 2000, dtype=torch.float64)).item()
    assert s.alpha_bar[-1].item() == pytest.approx(expected_last, rel=1e-4) and expected_last < 1e-8
    assert torch.all(s.alpha_bar[1:] < s.alpha_bar[:-1])


def test_last_reverse_step_with_the_true_noise_recovers_z0(rng):
    """Alg. 3 at t = 0 inverts Alg. 2's q_sample exactly when eps_theta returns the true noise."""

    class Oracle(torch.nn.Module):
        def __init__(self, eps):
            super().__init__()
            self.eps = eps

        def forward(self, z, t):
            return self.eps

    z0, eps = torch.randn(5, 4, generator=rng), torch.randn(5, 4, generator=rng)
    cfg = dataclasses.replace(tiny_config(), method="ldm")
    model = ldm.LatentDiffusion(cfg)
    model.denoiser = Oracle(eps)
    z_t = ddpm.q_sample(z0, torch.zeros(5, dtype=torch.long), eps, ddpm.schedule(cfg.diffusion))
    torch.testing.assert_close(
        ddpm.reverse(model.denoiser, ddpm.schedule(cfg.diffusion), z_t, 0, rng), z0, atol=1e-5, rtol=1e-5
    )


def test_dae_trains_and_restores_with_its_methods(dae_file, rng):
    model = load_model(dae_file)
    assert model.config.method == "dae" and model.distance is None and model.bank.shape == (48, 4)
    assert model.config.flow.alpha == 0.0  # its calibrated flow is the kernel-only Ablation_dae
    x = blob_images(6, seed=9)
    torch.testing.assert_close(restorer(model, "dae")(x, False).images, single_pass(model, x))
    ablation = restorer(model, "ablation-dae", FlowOverride(beta=0.3, steps=2))(x, False).images
    torch.testing.assert_close(
        ablation, restore(model, x, dataclasses.replace(model.config.flow, alpha=0.0, beta=0.3, steps=2)).images
    )
    with pytest.raises(LmppmError, match="needs a lmppm model"):
        restorer(model, "lmppm")


def test_ldm_trains_on_a_dae_restores_and_generates(dae_file, tmp_path):
    ds = Dataset("blobs", Split(blob_images(48, seed=1)), Split(blob_images(16, seed=2)))
    cfg = dataclasses.replace(tiny_config(), method="ldm", diffusion=DiffusionConfig(hidden=(32, 32)))
    summary = train(cfg, ds, _tcfg(epochs=2), tmp_path, torch.device("cpu"), base=load_model(dae_file))
    model = load_model(tmp_path / "model.safetensors")
    assert 0 <= summary["start_step"] < 2000 and model.config.diffusion.start_step == summary["start_step"]
    dae = load_model(dae_file)
    torch.testing.assert_close(model.autoencoder.to_latent.weight, dae.autoencoder.to_latent.weight)  # frozen copy
    x = blob_images(4, seed=3)
    a = restorer(model, options=LdmOptions(seed=1))(x, False).images
    b = restorer(model, options=LdmOptions(seed=1))(x, False).images
    assert a.shape == x.shape and torch.equal(a, b)
    pair = ldm.generate(model, [1, 2])
    assert pair.shape == (2, 1, 12, 12) and not torch.allclose(pair[0], pair[1])
    torch.testing.assert_close(
        ldm.generate(model, [2])[0], pair[1], atol=1e-5, rtol=0
    )  # a sample is its seed's, in any batch
    with pytest.raises(LmppmError, match="pass --base"):
        train(cfg, ds, _tcfg(epochs=1), tmp_path / "nobase", torch.device("cpu"))


def test_classifier_learns_labels_and_refuses_unlabelled_data(tmp_path):
    x = blob_images(120, seed=4)
    y = (x.flatten(1).argmax(1) % 12 >= 6).long()  # which half of the image holds the blob
    ds = Dataset("halves", Split(x[:80], y[:80]), Split(x[80:100], y[80:100]), Split(x[100:], y[100:]))
    cfg = dataclasses.replace(tiny_config(), method="classifier")
    summary = train(cfg, ds, _tcfg(epochs=25, patience=25, lr=3e-3), tmp_path, torch.device("cpu"))
    assert summary["test_accuracy"] >= 0.8 and summary["test_images"] == 20
    assert load_model(tmp_path / "model.safetensors").config.method == "classifier"
    unlabelled = Dataset("blobs", Split(x[:80]), Split(x[80:]))
    with pytest.raises(LmppmError, match="labelled data"):
        train(cfg, unlabelled, _tcfg(), tmp_path / "u", torch.device("cpu"))
    with pytest.raises(LmppmError, match="cannot restore"):
        restorer(load_model(tmp_path / "model.safetensors"))


def test_psnr_best_start_step_is_the_best_validation_row(dae_file, tmp_path):
    """The bench's tuned LDM start: one of START_STEPS, the one whose worst PSNR gain is highest, and the
    same for the same seed."""
    ds = Dataset("blobs", Split(blob_images(48, seed=1)), Split(blob_images(16, seed=2)))
    cfg = dataclasses.replace(tiny_config(), method="ldm", diffusion=DiffusionConfig(hidden=(32, 32)))
    summary = train(cfg, ds, _tcfg(epochs=2), tmp_path, torch.device("cpu"), base=load_model(dae_file))
    model, val = load_model(tmp_path / "model.safetensors"), blob_images(8, seed=4)
    best = ldm.psnr_best_start_step(model, val, 0.3, seed=5)
    assert best in ldm.START_STEPS and best == ldm.psnr_best_start_step(model, val, 0.3, seed=5)
    gen = torch.Generator().manual_seed(5)
    from lmppm_cli.core.calibrate import noisy_cases

    rows = ldm.start_step_rows(model, val, noisy_cases(model, val, 0.3, gen), gen, ldm.START_STEPS)
    assert [r["start_step"] for r in rows] == sorted(ldm.START_STEPS)
    assert max(rows, key=lambda r: r["worst"])["start_step"] == best
    assert {r["start_step"] for r in summary["start_step_psnr"]} == {*ldm.START_STEPS, summary["start_step"]}
