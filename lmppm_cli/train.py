"""LMPPM training (Alg. 4, Train): Gaussian-noise samples, exact nearest clean image x*, loss of Eq. 20."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from lmppm_cli.atomic import write_text
from lmppm_cli.bank import default_sigma_ker
from lmppm_cli.calibrate import calibrate_flow
from lmppm_cli.checkpoint import load_checkpoint, save_checkpoint
from lmppm_cli.config import AutoencoderConfig, ModelConfig
from lmppm_cli.data import Dataset
from lmppm_cli.errors import LmppmError
from lmppm_cli.losses import TERM_NAMES, LossWeights, lmppm_loss
from lmppm_cli.models import LMPPM
from lmppm_cli.neighbours import nearest, nearest_approximate
from lmppm_cli.weights import save_model

CHECKPOINT = "checkpoint.safetensors"
MODEL = "model.safetensors"


@dataclass(frozen=True)
class TrainConfig:
    """Table 11 (MNIST): Adam, AE lr 1e-3, batch 128, 200 epochs, patience 10. D's lr is 1e-3, not
    Table 11's 1e-5 for MNIST: with 1e-5 D stayed a constant (~0.025) on mnist-5k and its flow step
    changed nothing (README, "Choices")."""

    epochs: int = 200
    batch_size: int = 128
    lr_autoencoder: float = 1e-3
    lr_distance: float = 1e-3
    sigma_d: float = 0.4  # training noise (clamped to [0, 1]); 0.4 digits, 0.2 faces
    patience: int = 10
    seed: int = 0
    neighbours: str = "exact"  # or "approximate" (random projection + exact re-rank; see neighbours.py)
    calibrate: bool = True  # choose the flow defaults on the validation split (calibrate.py)
    weights: LossWeights = field(default_factory=LossWeights)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> TrainConfig:
        return cls(**{**raw, "weights": LossWeights(**raw["weights"])})


def build_configs(
    *, channels, height, width, latent_dim, lambdas: str, epochs, batch_size, lr_autoencoder, lr_distance,
    sigma_d, patience, neighbours, seed, calibrate=True,
) -> tuple[ModelConfig, TrainConfig]:
    """Model and training configuration from flat option values (what the CLI collects)."""
    try:
        values = [float(v) for v in lambdas.split(",")]
    except ValueError:
        values = []
    if len(values) != 6 or min(values) < 0:
        raise LmppmError(f"--lambdas needs six non-negative numbers separated by commas, not {lambdas!r}.")
    if neighbours not in ("exact", "approximate"):
        raise LmppmError(f"--neighbours must be exact or approximate, not {neighbours!r}.")
    ae = AutoencoderConfig(channels=channels, height=height, width=width, latent_dim=latent_dim)
    tcfg = TrainConfig(
        epochs=epochs, batch_size=batch_size, lr_autoencoder=lr_autoencoder, lr_distance=lr_distance,
        sigma_d=sigma_d, patience=patience, seed=seed, neighbours=neighbours, calibrate=calibrate,
        weights=LossWeights(*values),
    )  # fmt: skip
    return ModelConfig(autoencoder=ae), tcfg


@dataclass
class Progress:
    """Callbacks the caller may set; the core never prints."""

    on_start: Callable[[int, int], None] = lambda epochs, batches: None
    on_batch: Callable[[int, dict], None] = lambda epoch, terms: None
    on_epoch: Callable[[dict], None] = lambda record: None


class NearestClean:
    """x_i* of Eq. 20: the clean image nearest to each noisy sample, over a whole clean pool."""

    def __init__(self, pool: torch.Tensor, mode: str, generator: torch.Generator):
        self.pool = pool
        self.flat = pool.flatten(1)
        self.mode = mode
        dim = self.flat.shape[1]
        k = min(64, dim)
        self.projection = torch.randn(dim, k, generator=generator, device=pool.device) / math.sqrt(k)

    def __call__(self, x_noisy: torch.Tensor) -> torch.Tensor:
        if self.mode == "exact":
            idx, _ = nearest(x_noisy, self.flat)
        else:
            idx, _ = nearest_approximate(x_noisy, self.flat, self.projection)
        return self.pool[idx]


def train(
    config: ModelConfig,
    data: Dataset,
    tcfg: TrainConfig,
    run_dir: str | Path,
    device: torch.device,
    resume: bool = False,
    progress: Progress | None = None,
) -> dict:
    """Train a model into `run_dir` (checkpoint each epoch, model file and summary at the end).
    Returns the summary dictionary."""
    run_dir = Path(run_dir)
    progress = progress or Progress()
    ckpt = run_dir / CHECKPOINT
    if resume and not ckpt.is_file():
        raise LmppmError(f"nothing to resume: {ckpt} does not exist.")
    if not resume and ckpt.is_file():
        raise LmppmError(f"{run_dir} already holds a run; pass --resume to continue it or pick a new folder.")
    torch.manual_seed(tcfg.seed)
    loop = _Loop(config, data, tcfg, device)
    if resume:
        loop.restore(ckpt, tcfg.epochs, data.name)
    progress.on_start(loop.tcfg.epochs, loop.batches_per_epoch)
    while not loop.finished():
        record = loop.epoch(progress)
        loop.save(ckpt)
        progress.on_epoch(record)
    return _finish(loop, data, run_dir)


class _Loop:
    """The training state and one epoch of it."""

    def __init__(self, config: ModelConfig, data: Dataset, tcfg: TrainConfig, device: torch.device):
        self.config, self.tcfg, self.device, self.dataset = config, tcfg, device, data.name
        self.model = LMPPM(config).to(device)
        self.train_x = data.train.images.to(device)
        self.val_x = data.val.images.to(device)
        self.optimizer = torch.optim.Adam(
            [
                {"params": self.model.autoencoder.parameters(), "lr": tcfg.lr_autoencoder},
                {"params": self.model.distance.parameters(), "lr": tcfg.lr_distance},
            ]
        )
        self.shuffle_gen = torch.Generator().manual_seed(tcfg.seed)
        self.noise_gen = torch.Generator(device).manual_seed(tcfg.seed + 1)
        val_gen = torch.Generator(device).manual_seed(tcfg.seed + 2)
        self.nearest_train = NearestClean(self.train_x, tcfg.neighbours, val_gen)
        self.nearest_all = NearestClean(torch.cat([self.train_x, self.val_x]), tcfg.neighbours, val_gen)
        noise = torch.randn(self.val_x.shape, generator=val_gen, device=device) * tcfg.sigma_d
        self.val_noisy = (self.val_x + noise).clamp(0.0, 1.0)  # fixed, so epochs compare fairly
        self.epoch_no, self.best_loss, self.best_epoch, self.bad_epochs = 0, math.inf, 0, 0
        self.history: list[dict] = []
        self.best_state = _copy_state(self.model)
        self.started = time.perf_counter()
        self.elapsed_before = 0.0

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.train_x) / self.tcfg.batch_size)

    def finished(self) -> bool:
        return self.epoch_no >= self.tcfg.epochs or self.bad_epochs >= self.tcfg.patience

    def epoch(self, progress: Progress) -> dict:
        self.model.train()
        sums = dict.fromkeys(("total", *TERM_NAMES), 0.0)
        order = torch.randperm(len(self.train_x), generator=self.shuffle_gen).to(self.device)
        for b, start in enumerate(range(0, len(order), self.tcfg.batch_size)):
            x = self.train_x[order[start : start + self.tcfg.batch_size]]  # (B, C, H, W)
            noise = torch.randn(x.shape, generator=self.noise_gen, device=self.device) * self.tcfg.sigma_d
            x_noisy = (x + noise).clamp(0.0, 1.0)
            total, terms = lmppm_loss(
                self.model.autoencoder, self.model.distance, x, x_noisy, self.nearest_train(x_noisy), self.tcfg.weights
            )
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer.step()
            values = {"total": total.item(), **{k: v.item() for k, v in terms.items()}}
            for k, v in values.items():
                sums[k] += v / self.batches_per_epoch
            progress.on_batch(self.epoch_no + 1, values)
        return self._end_epoch(sums)

    def _end_epoch(self, train_terms: dict) -> dict:
        self.epoch_no += 1
        val = self.validate()
        improved = val["total"] < self.best_loss
        if improved:
            self.best_loss, self.best_epoch, self.bad_epochs = val["total"], self.epoch_no, 0
            self.best_state = _copy_state(self.model)
        else:
            self.bad_epochs += 1
        record = {"epoch": self.epoch_no, "train": train_terms, "val": val, "improved": improved}
        self.history.append(record)
        return record

    @torch.no_grad()
    def validate(self) -> dict:
        """The loss of Eq. 20 on the validation images (eval mode, fixed noise, x* over train + val)."""
        self.model.eval()
        sums = dict.fromkeys(("total", *TERM_NAMES), 0.0)
        n = len(self.val_x)
        for start in range(0, n, 256):
            x, x_noisy = self.val_x[start : start + 256], self.val_noisy[start : start + 256]
            total, terms = lmppm_loss(
                self.model.autoencoder, self.model.distance, x, x_noisy, self.nearest_all(x_noisy), self.tcfg.weights
            )
            for k, v in {"total": total, **terms}.items():
                sums[k] += v.item() * len(x) / n
        return sums

    def rng_state(self) -> dict[str, torch.Tensor]:
        rng = {"shuffle": self.shuffle_gen.get_state(), "noise": self.noise_gen.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return rng

    def save(self, path: Path) -> None:
        state = {
            "epoch": self.epoch_no, "best_loss": self.best_loss, "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs, "history": self.history, "model_config": self.config.to_json(),
            "train_config": self.tcfg.to_dict(), "elapsed": self.elapsed(), "dataset": self.dataset,
        }  # fmt: skip
        save_checkpoint(path, self.model.state_dict(), self.best_state, self.optimizer, self.rng_state(), state)

    def restore(self, path: Path, epochs: int, dataset: str) -> None:
        """Continue a saved run exactly; only the epoch budget may differ from the saved run."""
        model_state, best_state, optim_state, rng, state = load_checkpoint(path)
        if state.get("dataset") != dataset:
            raise LmppmError(f"{path} was trained on {state.get('dataset')!r}, not {dataset!r}; resume with the same data.")
        if state["model_config"] != self.config.to_json():
            raise LmppmError(f"{path} was trained with another model configuration; resume with the same options.")
        saved = TrainConfig.from_dict(state["train_config"])
        if dataclasses.replace(saved, epochs=epochs) != self.tcfg:
            raise LmppmError(f"{path} was trained with other training options; only --epochs may change on resume.")
        self.model.load_state_dict(model_state)
        self.best_state = best_state
        self.optimizer.load_state_dict(optim_state)
        self.shuffle_gen.set_state(rng["shuffle"])
        self.noise_gen.set_state(rng["noise"])
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        self.epoch_no, self.best_loss = state["epoch"], state["best_loss"]
        self.best_epoch, self.bad_epochs = state["best_epoch"], state["bad_epochs"]
        self.history, self.elapsed_before = state["history"], state["elapsed"]

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started


def _copy_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _finish(loop: _Loop, data: Dataset, run_dir: Path) -> dict:
    """Best weights, the bank S = F(train images), the default sigma_ker; write model and summary."""
    model = loop.model
    model.load_state_dict(loop.best_state)
    model.build_bank(loop.train_x)
    flow = dataclasses.replace(model.config.flow, sigma_ker=default_sigma_ker(model.bank))
    model.config = dataclasses.replace(model.config, flow=flow, dataset=data.name)
    calibration = []
    if loop.tcfg.calibrate:
        gen = torch.Generator(loop.device).manual_seed(loop.tcfg.seed + 3)
        flow, calibration = calibrate_flow(model, loop.val_x, loop.tcfg.sigma_d, gen)
        model.config = dataclasses.replace(model.config, flow=flow)
    summary = {
        "dataset": data.name, "train_images": len(loop.train_x), "val_images": len(loop.val_x),
        "skipped_files": list(data.skipped), "epochs_run": loop.epoch_no, "best_epoch": loop.best_epoch,
        "best_val_loss": loop.best_loss, "stopped_early": loop.epoch_no < loop.tcfg.epochs,
        "seconds": round(loop.elapsed(), 1), "device": str(loop.device), "sigma_ker": flow.sigma_ker,
        "train_config": loop.tcfg.to_dict(), "model_config": json.loads(model.config.to_json()),
        "final": loop.history[-1] if loop.history else None, "flow": dataclasses.asdict(flow),
        "calibration_top": sorted(calibration, key=lambda r: -r["worst"])[:10],
    }  # fmt: skip
    save_model(model, run_dir / MODEL, {"lmppm.training": json.dumps(summary)})
    write_text(run_dir / "summary.json", json.dumps(summary | {"history": loop.history}, indent=2))
    write_text(run_dir / "summary.md", _summary_markdown(summary))
    return summary


def _flow_line(flow: dict) -> str:
    return ", ".join(f"{k} {flow[k]:.4g}" for k in ("alpha", "beta", "steps", "sigma_ker"))


def _summary_markdown(s: dict) -> str:
    final = s["final"] or {"train": {}, "val": {}}
    rows = "\n".join(
        f"| {k} | {final['train'].get(k, float('nan')):.4f} | {final['val'].get(k, float('nan')):.4f} |"
        for k in ("total", *TERM_NAMES)
    )
    return (
        f"# lmppm training run\n\n- data: `{s['dataset']}` ({s['train_images']} train / {s['val_images']} val images)\n"
        f"- epochs: {s['epochs_run']} (best {s['best_epoch']}, early stop: {s['stopped_early']}), "
        f"{s['seconds']} s on {s['device']}\n- flow defaults: {_flow_line(s['flow'])}\n\n"
        f"Loss terms of Eq. 20 in the last epoch:\n\n| term | train | val |\n|---|---|---|\n{rows}\n"
    )
