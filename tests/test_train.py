import dataclasses
import json
import math

import pytest
import torch
from conftest import tiny_config

from lmppm_cli.core.config import AutoencoderConfig, comma_numbers
from lmppm_cli.core.errors import LmppmError
from lmppm_cli.core.losses import LossWeights
from lmppm_cli.core.train import TrainConfig
from lmppm_cli.files.weights import load_model
from lmppm_cli.training import model_config, train


def _tcfg(**kw):
    base = dict(epochs=2, batch_size=16, lr=3e-3, lr_distance=1e-3, patience=5, seed=3)
    return TrainConfig(**{**base, **kw})


def test_training_writes_model_checkpoint_and_summary(blob_dataset, tmp_path, device):
    summary = train(tiny_config(), blob_dataset, _tcfg(), tmp_path, device)
    model = load_model(tmp_path / "model.safetensors")
    assert model.bank.shape == (48, 4)  # S = F(train images)
    assert (
        model.config.flow.sigma_ker == pytest.approx(summary["flow"]["sigma_ker"]) and summary["flow"]["sigma_ker"] > 0
    )
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["epochs_run"] == 2 and len(saved["history"]) == 2
    assert "| recon |" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "checkpoint.safetensors").is_file()


def test_training_lowers_the_loss(blob_dataset, tmp_path, device):
    summary = train(tiny_config(), blob_dataset, _tcfg(epochs=20, patience=20), tmp_path, device)
    hist = json.loads((tmp_path / "summary.json").read_text())["history"]
    assert hist[-1]["val"]["total"] < 0.8 * hist[0]["val"]["total"]
    assert summary["best_val_loss"] == min(h["val"]["total"] for h in hist)


def test_resume_continues_exactly(blob_dataset, tmp_path, device):
    train(tiny_config(), blob_dataset, _tcfg(epochs=3), tmp_path / "straight", device)
    train(tiny_config(), blob_dataset, _tcfg(epochs=1), tmp_path / "split", device)
    train(tiny_config(), blob_dataset, _tcfg(epochs=3), tmp_path / "split", device, resume=True)
    a = load_model(tmp_path / "straight" / "model.safetensors").state_dict()
    b = load_model(tmp_path / "split" / "model.safetensors").state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_same_seed_same_model_other_seed_other_model(blob_dataset, tmp_path, device):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        train(tiny_config(), blob_dataset, _tcfg(epochs=1, seed=seed), tmp_path / name, device)
    a, b, c = (load_model(tmp_path / n / "model.safetensors").bank for n in "abc")
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_early_stopping_stops_when_validation_stalls(blob_dataset, tmp_path, device):
    summary = train(
        tiny_config(), blob_dataset, _tcfg(epochs=50, patience=1, lr=0.0, lr_distance=0.0), tmp_path, device
    )
    assert summary["stopped_early"] and summary["epochs_run"] == 2 and summary["best_epoch"] == 1


def test_approximate_neighbour_searches_train_and_report_their_recall(blob_dataset, tmp_path, device):
    from lmppm_cli.core.train import Progress

    for mode in ("approximate", "faiss", "auto"):
        said = []
        summary = train(
            tiny_config(),
            blob_dataset,
            _tcfg(epochs=1, neighbours=mode),
            tmp_path / mode,
            device,
            progress=Progress(on_note=said.append),
        )
        assert summary["train_config"]["neighbours"] == mode and said == summary["notes"] and len(said) == 1
        if mode == "auto":  # 48 images: searched exactly, and it says why
            assert "exact: 48 clean images" in said[0] and "recall" not in said[0]
        else:
            recall = float(said[0].split("recall of the exact x* on 256 noisy training images: ")[1].rstrip("%")) / 100
            assert 0.5 <= recall <= 1.0, said[0]


def test_run_folder_rules(blob_dataset, tmp_path, device):
    with pytest.raises(LmppmError, match="nothing to resume"):
        train(tiny_config(), blob_dataset, _tcfg(), tmp_path / "new", device, resume=True)
    train(tiny_config(), blob_dataset, _tcfg(epochs=1), tmp_path / "run", device)
    with pytest.raises(LmppmError, match="already holds a run"):
        train(tiny_config(), blob_dataset, _tcfg(epochs=1), tmp_path / "run", device)
    with pytest.raises(
        LmppmError,
        match="only --epochs, --calibrate, --calibration-grid, --calibration-noise, --min-flow-gain may change",
    ):
        train(tiny_config(), blob_dataset, _tcfg(epochs=2, seed=9), tmp_path / "run", device, resume=True)
    flipped = type(blob_dataset.train)(blob_dataset.train.images.flip(-1))
    other = type(blob_dataset)("other", flipped, blob_dataset.val)  # another name, other pixels: refused
    with pytest.raises(LmppmError, match="resume with the same data"):
        train(tiny_config(), other, _tcfg(epochs=2), tmp_path / "run", device, resume=True)
    renamed = type(blob_dataset)("another/spelling", blob_dataset.train, blob_dataset.val)  # the same pixels
    assert train(tiny_config(), renamed, _tcfg(epochs=2), tmp_path / "run", device, resume=True)["epochs_run"] == 2


def test_the_configs_check_themselves_naming_the_option():
    assert LossWeights(1, 2, 3, 4, 5, 6).shift_recon == 6.0
    for bad in ((1, 1, 1, 1, 1, -1), (1, 1, float("nan"), 1, 1, 1), (1, float("inf"), 1, 1, 1, 1)):
        with pytest.raises(LmppmError, match="lambdas"):
            LossWeights(*bad)
    with pytest.raises(LmppmError, match="lambda-denoise"):
        LossWeights(denoise=-1.0)
    for key, value in {"lr": float("inf"), "lr_distance": -1.0, "sigma_d": float("nan")}.items():
        with pytest.raises(LmppmError, match=key.replace("_", "-")):
            TrainConfig(**{key: value})
    for key, value in {"latent_dim": 0, "height": 10**7, "channels": 2}.items():  # the model's fields, by name
        with pytest.raises(LmppmError, match=f"the options give autoencoder.{key}|channels = 2"):
            model_config("lmppm", AutoencoderConfig(**{key: value}))
    with pytest.raises(LmppmError, match="--lambdas needs 6 finite numbers"):
        comma_numbers("1,2", float, "--lambdas", 6)


def test_noise_drawn_over_a_range_gives_each_sample_its_own_level(rng):
    from lmppm_cli.core.noise import GaussianNoise, noisy

    x = torch.full((400, 1, 16, 16), 0.5)  # mid-grey: no clamping at these levels

    def levels(kind: GaussianNoise) -> torch.Tensor:
        noisy_x, target = kind.sample((x, x), rng)
        assert target is x
        return (noisy_x - x).flatten(1).std(1)

    fixed = noisy(x, 0.1, rng) - x
    assert fixed.flatten(1).std(1).sub(0.1).abs().max() < 0.03
    spread = levels(GaussianNoise(0.02, 0.12))
    assert 0.015 < spread.min() < 0.03 and 0.11 < spread.max() < 0.135
    assert spread.std() > 0.02  # spread over the range, not one level
    skewed = levels(GaussianNoise(0.0, 0.2, power=3.0))  # u^3: median level 0.2 * 0.5^3 = 0.025
    assert 0.015 < skewed.median() < 0.035 and skewed.max() > 0.15
    assert 0.08 < levels(GaussianNoise(0.0, 0.2, power=1.0)).median() < 0.12  # power 1: uniform


def test_train_config_takes_the_noise_range_and_the_denoising_weight():
    from lmppm_cli.core.camera import Camera
    from lmppm_cli.core.noise import GaussianNoise, JpegStorage, PoissonGaussianNoise

    tcfg = TrainConfig(sigma_range=(0, 0.9), weights=LossWeights(denoise=2.0))
    assert tcfg.noise == (GaussianNoise(0.0, 0.9, 1.0),) and tcfg.weights.denoise == 2.0
    assert TrainConfig(sigma_range=(0, 0.3), sigma_power=2.0).noise == (GaussianNoise(0.0, 0.3, 2.0),)
    jpeg = TrainConfig(sigma_d=0.1, jpeg=0.5).noise
    assert jpeg == (GaussianNoise(0.1, 0.1, 1.0), JpegStorage(0.5))  # JPEG'd at sigma_d
    every = TrainConfig(sigma_range=(0, 0.3), camera=0.25, jpeg=0.5, camera_pipeline=0.75).noise
    assert [type(k) for k in every] == [GaussianNoise, PoissonGaussianNoise, JpegStorage, Camera]
    assert [k.share for k in every] == [1.0, 0.25, 0.5, 0.75]
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(LmppmError, match="sigma-power"):
            TrainConfig(sigma_range=(0, 0.3), sigma_power=bad)
    assert TrainConfig().noise == (GaussianNoise(0.4),)
    assert TrainConfig.from_dict(tcfg.to_dict()) == tcfg  # survives the JSON of a checkpoint
    for bad in ((0.9, 0.1), (-1, 1)):
        with pytest.raises(LmppmError, match="sigma-range"):
            TrainConfig(sigma_range=bad)
    parse = next(f for f in dataclasses.fields(TrainConfig) if f.name == "sigma_range").metadata["parse"]
    assert parse("0,0.9") == (0.0, 0.9)
    for bad in ("0.5", "a,b", "0,inf"):  # the command line's own parsing
        with pytest.raises(LmppmError, match="sigma-range"):
            parse(bad)


def test_a_learning_rate_warm_up_rises_linearly_then_hands_over_to_the_schedule(blob_dataset, tmp_path, device):
    """--lr-warmup 2: the rate's share of --lr at the last step of each epoch is 1/2, then 1, then the
    schedule's own; without it, the schedule's from the first epoch."""

    def factors(name: str, **kw) -> list[float]:
        train(tiny_config(), blob_dataset, _tcfg(epochs=3, calibrate=False, **kw), tmp_path / name, device)
        return [h["lr_factor"] for h in json.loads((tmp_path / name / "summary.json").read_text())["history"]]

    assert factors("warm", lr_warmup=2) == pytest.approx([0.5, 1.0, 1.0])
    assert factors("cold") == [1.0, 1.0, 1.0]
    cosine = factors("cosine", lr_warmup=2, lr_schedule="cosine")
    assert cosine[0] == pytest.approx(0.5) and cosine[2] == pytest.approx(
        0.01 + 0.99 * (1 + math.cos(2 * math.pi / 3)) / 2
    )


def test_training_with_a_noise_range_and_the_denoising_term(blob_dataset, tmp_path, device):
    tcfg = _tcfg(epochs=2, sigma_range=(0.0, 0.5), weights=LossWeights(denoise=1.0))
    summary = train(tiny_config(), blob_dataset, tcfg, tmp_path, device)
    assert list(summary["train_config"]["sigma_range"]) == [0.0, 0.5]
    assert "denoise" in summary["final"]["train"] and summary["final"]["train"]["denoise"] > 0
    assert isinstance(summary["flow"]["adaptive"], bool)


def test_resume_may_switch_calibration_on(blob_dataset, tmp_path, device):
    train(tiny_config(), blob_dataset, _tcfg(epochs=1, calibrate=False), tmp_path, device)
    summary = train(tiny_config(), blob_dataset, _tcfg(epochs=2, calibrate=True), tmp_path, device, resume=True)
    assert summary["epochs_run"] == 2 and summary["calibration_top"]


def test_a_checkpoint_from_before_a_new_defaulted_field_still_resumes(blob_dataset, tmp_path, device):
    """Runs written before a config field existed (e.g. the flow's `adaptive`) resume with its default."""
    from safetensors.torch import load_file, save_file

    from lmppm_cli.files.checkpoint import STATE_KEY
    from lmppm_cli.files.weights import read_tensors

    train(tiny_config(), blob_dataset, _tcfg(epochs=1, calibrate=False), tmp_path, device)
    ckpt = tmp_path / "checkpoint.safetensors"
    _, meta = read_tensors(ckpt)
    state = json.loads(meta[STATE_KEY])
    config = json.loads(state["model_config"])
    del config["flow"]["adaptive"]
    state["model_config"] = json.dumps(config, sort_keys=True)
    save_file(load_file(ckpt), ckpt, metadata={STATE_KEY: json.dumps(state)})
    summary = train(tiny_config(), blob_dataset, _tcfg(epochs=2, calibrate=False), tmp_path, device, resume=True)
    assert summary["epochs_run"] == 2


def test_warm_start_copies_the_autoencoder_and_refuses_another_architecture(blob_dataset, tmp_path, device):
    import dataclasses

    from lmppm_cli.core.objectives import LmppmObjective

    train(dataclasses.replace(tiny_config(), method="dae"), blob_dataset, _tcfg(epochs=1), tmp_path / "dae", device)
    dae = load_model(tmp_path / "dae" / "model.safetensors")
    objective = LmppmObjective(tiny_config(), blob_dataset, _tcfg(), device, base=dae)
    for key, value in dae.autoencoder.state_dict().items():
        torch.testing.assert_close(objective.model.autoencoder.state_dict()[key], value)
    summary = train(
        tiny_config(),
        blob_dataset,
        _tcfg(epochs=1, init=str(tmp_path / "dae" / "model.safetensors")),
        tmp_path / "warm",
        device,
    )
    assert summary["train_config"]["init"].endswith("model.safetensors")
    with pytest.raises(LmppmError, match="autoencoder differs"):
        LmppmObjective(tiny_config(latent_dim=6), blob_dataset, _tcfg(), device, base=dae)
    from lmppm_cli import methods

    with pytest.raises(LmppmError, match="lmppm or dae"):
        methods.check_training("ldm", True, False)
    with pytest.raises(LmppmError, match="--method lmppm only"):
        methods.check_training("dae", True, True)


def test_a_dae_continues_from_another_dae(blob_dataset, tmp_path, device):
    """--method dae --init: the DAE objective starts from the given F and G exactly (so a DAE can continue
    on a new schedule or noise draw), and a run from it trains and records the init."""
    import dataclasses

    from lmppm_cli.core.objectives import DaeObjective

    dae = dataclasses.replace(tiny_config(), method="dae")
    train(dae, blob_dataset, _tcfg(epochs=2, calibrate=False), tmp_path / "a", device)
    init = str(tmp_path / "a" / "model.safetensors")
    objective = DaeObjective(dae, blob_dataset, _tcfg(), device, base=load_model(init))
    for key, value in load_model(init).autoencoder.state_dict().items():
        assert torch.equal(objective.model.autoencoder.state_dict()[key], value), key
    summary = train(
        dae,
        blob_dataset,
        _tcfg(epochs=1, calibrate=False, init=init, sigma_range=(0.0, 0.4), sigma_power=2.0),
        tmp_path / "b",
        device,
    )
    assert summary["train_config"]["init"] == init and summary["train_config"]["sigma_power"] == 2.0


def test_freeze_init_trains_d_alone_and_keeps_the_autoencoder_bit_for_bit(blob_dataset, tmp_path, device):
    """--freeze-init: F and G (a U-Net with batch norm and skip dropout) end exactly as the --init model
    left them, running statistics included, while D learns; without --init it is refused."""
    import dataclasses

    unet = dataclasses.replace(tiny_config().autoencoder, arch="unet", projections=True, skip_dropout=0.5)
    config = dataclasses.replace(tiny_config(), autoencoder=unet)
    train(
        dataclasses.replace(config, method="dae"),
        blob_dataset,
        _tcfg(epochs=1, calibrate=False),
        tmp_path / "dae",
        device,
    )
    init = str(tmp_path / "dae" / "model.safetensors")
    train(config, blob_dataset, _tcfg(epochs=3, calibrate=False, init=init, freeze_init=True), tmp_path / "run", device)
    history = json.loads((tmp_path / "run" / "summary.json").read_text())["history"]
    frozen, dae = load_model(tmp_path / "run" / "model.safetensors"), load_model(init)
    for key, value in dae.autoencoder.state_dict().items():
        assert torch.equal(frozen.autoencoder.state_dict()[key], value), key
    assert history[-1]["train"]["distance"] < history[0]["train"]["distance"]  # D learns
    with pytest.raises(LmppmError, match="give --init"):
        TrainConfig(freeze_init=True)


def test_a_diverging_run_stops_names_the_term_keeps_its_checkpoint_and_writes_no_model(
    blob_dataset, tmp_path, device, monkeypatch
):
    """The recon term turns NaN in epoch 2 (as after a blow-up): the run stops naming it, the checkpoint
    of epoch 1 stays as it was, and no model file is written. A run that diverges at once is refused too."""
    from safetensors import safe_open

    from lmppm_cli.core import train as train_module

    diverged = {"now": False}
    from lmppm_cli import methods

    real = methods.objective

    def wrapped(*args, **kwargs):
        objective = real(*args, **kwargs)
        loss = objective.loss

        def poisoned(*a, **k):
            total, terms = loss(*a, **k)
            if diverged["now"]:
                terms = {**terms, "recon": terms["recon"] * float("nan")}
                total = total + terms["recon"]
            return total, terms

        objective.loss = poisoned
        return objective

    monkeypatch.setattr(methods, "objective", wrapped)
    snapshot = {}

    def after_epoch(record):
        with safe_open(str(tmp_path / "run" / "checkpoint.safetensors"), "pt") as f:
            snapshot.update({k: f.get_tensor(k) for k in f.keys()})
        diverged["now"] = True

    with pytest.raises(
        LmppmError,
        match="the recon term of the loss became nan.*last good checkpoint .* epoch 1.* no model was written",
    ):
        train(
            tiny_config(),
            blob_dataset,
            _tcfg(epochs=3),
            tmp_path / "run",
            device,
            progress=train_module.Progress(on_epoch=after_epoch),
        )
    assert not (tmp_path / "run" / "model.safetensors").exists()
    with safe_open(str(tmp_path / "run" / "checkpoint.safetensors"), "pt") as f:
        assert all(torch.equal(f.get_tensor(k), v) for k, v in snapshot.items())
    with pytest.raises(LmppmError, match="term of the loss became .*no epoch finished"):
        train(tiny_config(), blob_dataset, _tcfg(epochs=3), tmp_path / "fresh", device)


def test_resume_refuses_changed_data_a_model_file_and_a_file_as_run_folder(blob_dataset, tmp_path, device):
    import shutil

    from lmppm_cli.core.data import Dataset, Split

    train(tiny_config(), blob_dataset, _tcfg(epochs=1), tmp_path / "run", device)
    changed = Dataset(blob_dataset.name, Split(blob_dataset.train.images.flip(-1)), blob_dataset.val)
    with pytest.raises(LmppmError, match="changed since"):
        train(tiny_config(), changed, _tcfg(epochs=2), tmp_path / "run", device, resume=True)
    (tmp_path / "model").mkdir()
    shutil.copy(tmp_path / "run" / "model.safetensors", tmp_path / "model" / "checkpoint.safetensors")
    with pytest.raises(LmppmError, match="not a training checkpoint"):
        train(tiny_config(), blob_dataset, _tcfg(epochs=2), tmp_path / "model", device, resume=True)
    (tmp_path / "file").write_text("mine")
    with pytest.raises(LmppmError, match="is a file"):
        train(tiny_config(), blob_dataset, _tcfg(epochs=1), tmp_path / "file", device)
    assert (tmp_path / "file").read_text() == "mine"


def test_ctrl_c_keeps_the_last_epoch_and_says_how_to_resume(blob_dataset, tmp_path, device):
    from lmppm_cli.core.errors import Interrupted
    from lmppm_cli.core.train import Progress

    def stop(epoch, terms):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="interrupted in epoch 2; .*checkpoint.safetensors holds epoch 1: .*--resume"):
        train(tiny_config(), blob_dataset, _tcfg(epochs=3), tmp_path / "run", device, progress=Progress(on_batch=stop))
    assert not (tmp_path / "run" / "model.safetensors").exists()
    summary = train(tiny_config(), blob_dataset, _tcfg(epochs=3), tmp_path / "run", device, resume=True)
    assert summary["epochs_run"] == 3


def test_bf16_training_is_refused_on_cpu_and_fp16_for_training_in_one_sentence(
    blob_dataset, tmp_path, device, monkeypatch
):
    import lmppm_cli.core.precision as precision

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)  # a CPU without native bf16
    with pytest.raises(LmppmError, match="fp16 would need loss scaling"):
        TrainConfig(precision="fp16")
    if device.type == "cpu":
        with pytest.raises(LmppmError, match="needs a GPU"):
            train(tiny_config(), blob_dataset, _tcfg(precision="bf16"), tmp_path / "run", device)
        assert not (tmp_path / "run").exists()


def test_under_bf16_autocast_d_and_the_second_order_shift_terms_stay_float32(blob_dataset, tmp_path, monkeypatch):
    """The product runs bf16 on GPUs only; CPU autocast follows the same code path. D's output and the
    gradients that reach D's parameters through the shift terms (create_graph) stay float32 and agree with
    full precision; F and G's gradients agree to bf16 rounding; a training run under it lowers its loss."""
    from lmppm_cli.core import train as train_module
    from lmppm_cli.core.losses import lmppm_loss
    from lmppm_cli.core.models import LMPPM

    torch.manual_seed(0)
    model = LMPPM(tiny_config())
    x = blob_dataset.train.images[:16]
    noisy = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    grads = {}
    for name, ctx in (
        ("fp32", torch.autocast("cpu", enabled=False)),
        ("bf16", torch.autocast("cpu", dtype=torch.bfloat16)),
    ):
        model.zero_grad()
        with ctx:
            total, terms = lmppm_loss(model.autoencoder, model.distance, x, noisy, x.flip(0), LossWeights())
            assert model.distance(model.autoencoder.encode(x)[0]).dtype == torch.float32
        total.backward()
        grads[name] = torch.cat([p.grad.flatten() for p in model.parameters()])
        assert torch.isfinite(total) and total.dtype == torch.float32
    cosine = torch.nn.functional.cosine_similarity(grads["fp32"], grads["bf16"], dim=0)
    assert cosine > 0.99, cosine
    monkeypatch.setattr(train_module, "autocast", lambda device, precision: torch.autocast("cpu", dtype=torch.bfloat16))
    train(tiny_config(), blob_dataset, _tcfg(epochs=3, calibrate=False), tmp_path / "run", torch.device("cpu"))
    history = json.loads((tmp_path / "run" / "summary.json").read_text())["history"]
    assert history[-1]["train"]["total"] < history[0]["train"]["total"]
