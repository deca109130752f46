"""The training loop shared by every method (objectives.py): shuffled batches, a validation loss each
epoch with fixed randomness, early stopping, an atomic checkpoint per epoch, exact `--resume`.

Under torchrun (`torchrun --nproc-per-node N -m lmppm_cli train ...`) each rank trains on its share of
every global batch (a DistributedSampler) through DistributedDataParallel, which averages gradients
(NCCL on GPUs, gloo on CPUs); every rank holds the whole data, so x* and the bank search all of it; all
ranks validate alike, so they stop alike; only rank 0 writes checkpoints, the model and the summary."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

from lmppm_cli.core.config import ModelConfig
from lmppm_cli.core.data import Dataset
from lmppm_cli.core.errors import Interrupted, LmppmError, TrainingError
from lmppm_cli.core.losses import LossWeights
from lmppm_cli.core.pixels import as_floats, place, rows
from lmppm_cli.core.restoration import autocast
from lmppm_cli.core.world import World

NEIGHBOURS = ("exact", "approximate", "faiss", "auto")
CALIBRATION_IMAGES = 2000
TRAIN_PRECISIONS = ("fp32", "bf16")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Table 11 (MNIST): Adam, lr 1e-3 (F and G; the LDM's denoiser; the classifier), batch 128,
    200 epochs, patience 10. D's lr is 1e-3, not Table 11's 1e-5 for MNIST: with 1e-5 D stayed
    nearly constant on mnist-5k and its flow step changed nothing (docs/reproduction.md, "Choices")."""

    epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    lr_distance: float = 1e-3
    sigma_d: float = 0.4  # training noise (clamped to [0, 1]); 0.4 digits, 0.2 faces
    sigma_range: tuple[float, float] | None = None  # per-sample noise level ~ U(low, high) instead of sigma_d
    sigma_power: float = 1.0  # with sigma_range: level = low + (high - low) u^power, u ~ U(0, 1); >1 favours low noise
    init: str = ""  # model file whose F and G start this run (objectives.warm_start); "" = random init
    freeze_init: bool = False  # keep F and G at `init`: Eq. 20 then trains D alone (objectives.LmppmObjective)
    workers: int = 2  # DataLoader processes reading a streamed folder's batches (files/stream.py)
    precision: str = "fp32"  # or bf16: F and G under CUDA autocast (D stays float32, models/distance.py)
    patience: int = 10
    lr_schedule: str = "constant"  # or cosine: every group's lr * (0.01 + 0.99 (1 + cos(pi epoch / epochs)) / 2)
    seed: int = 0
    neighbours: str = "exact"  # x* search: NEIGHBOURS (objectives.NearestClean)
    calibrate: bool = True  # choose the flow defaults on the validation split (calibrate.py)
    calibration_grid: str = "full"  # or small (calibrate.GRIDS): for networks whose flow step is costly
    weights: LossWeights = field(default_factory=LossWeights)
    camera: float = 0.0  # share of training samples with camera-like Poisson-Gaussian noise (core/noise.py)
    loss: str = "l2"  # the DAE's pixel loss: losses.PIXEL_LOSSES
    ema: float = 0.0  # decay of an exponential moving average of the weights, validated and kept (0: off)

    @property
    def training_noise(self):
        """What `noise.noisy` draws the training samples from: sigma_d, or (low, high, power, camera)
        when a range or a camera share is set."""
        if not self.sigma_range and not self.camera:
            return self.sigma_d
        low, high = self.sigma_range or (self.sigma_d, self.sigma_d)
        return (low, high, self.sigma_power, self.camera)

    @property
    def reference_sigma(self) -> float:
        """The one level that stands for the training noise where a single level is needed (the flow's
        calibration at 1x and 1.75x of it, the LDM's start step, the recall check of an approximate x*
        search): sigma_d, which --sigma-range does not replace."""
        return self.sigma_d

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> TrainConfig:
        sigma_range = tuple(raw["sigma_range"]) if raw.get("sigma_range") else None
        return cls(**{**raw, "weights": LossWeights(**raw["weights"]), "sigma_range": sigma_range})


@dataclass
class Progress:
    """Callbacks the caller may set; the core never prints."""

    on_start: Callable[[int, int], None] = lambda epochs, batches: None
    on_batch: Callable[[int, dict], None] = lambda epoch, terms: None
    on_epoch: Callable[[dict], None] = lambda record: None
    on_note: Callable[[str], None] = lambda text: None  # what the run found before its first epoch


def fit(
    make_objective: Callable[[], object],
    data: Dataset,
    tcfg: TrainConfig,
    store,
    device: torch.device,
    resume: bool = False,
    progress: Progress | None = None,
    world: World = World(),
) -> dict | None:
    """Train the objective `make_objective()` builds (after seeding) on `data`, writing through `store`
    (files/run.RunFolder: a checkpoint each epoch, the model and the summary at the end). `world`: this
    process's rank among torchrun's (the process group already started). Returns the summary (None on
    ranks other than 0)."""
    progress = progress or Progress()
    ckpt = store.checkpoint
    if resume and not store.has_checkpoint():
        raise LmppmError(f"nothing to resume: {ckpt} does not exist.")
    if not resume and store.has_checkpoint():
        raise LmppmError(f"{ckpt.parent} already holds a run; pass --resume to continue it or pick a new folder.")
    torch.manual_seed(tcfg.seed)
    loop = _Loop(make_objective(), data, tcfg, device, world)
    if resume:
        loop.restore(store, tcfg.epochs)
    for note in getattr(loop.objective, "notes", []):
        progress.on_note(note)
    progress.on_start(loop.tcfg.epochs, loop.batches_per_epoch)
    while not loop.finished():
        try:
            record = loop.epoch(progress)
        except NonFiniteLoss as exc:
            kept = (
                f"its last good checkpoint ({ckpt}, epoch {loop.epoch_no}) is kept"
                if store.has_checkpoint()
                else "no epoch finished"
            )
            raise NonFiniteLoss(f"{exc}; {kept} and no model was written.") from None
        except KeyboardInterrupt:
            if not store.has_checkpoint():
                raise Interrupted(
                    f"interrupted in epoch {loop.epoch_no + 1}, before any epoch finished; nothing was kept."
                ) from None
            raise Interrupted(
                f"interrupted in epoch {loop.epoch_no + 1}; {ckpt} holds epoch {loop.epoch_no}: "
                "run the same command with --resume to go on from there."
            ) from None
        if world.main:
            loop.save(store)
        progress.on_epoch(record)
    return _finish(loop, store) if world.main else None


class NonFiniteLoss(TrainingError):
    """Training diverged: the run keeps its last good checkpoint and writes no model."""


def _check_finite(total: torch.Tensor, terms: dict, epoch: int, world: World = World()) -> None:
    """Stop on a non-finite loss, naming the term; under torchrun every rank stops when any rank must."""
    finite = bool(torch.isfinite(total))
    if world.size > 1:
        flag = torch.tensor([float(not finite)], device=total.device)
        dist.all_reduce(flag)
        if finite and flag.item():
            raise NonFiniteLoss(f"training stopped in epoch {epoch}: another process's loss became NaN or infinite")
    if finite:
        return
    term = next((k for k, v in terms.items() if not torch.isfinite(v)), "total")
    raise NonFiniteLoss(
        f"training stopped in epoch {epoch}: the {term} term of the loss became {float(terms.get(term, total).detach())} "
        "(try a lower --lr or other --lambdas)"
    )


class _LossModule(torch.nn.Module):
    """The objective's loss as a module's forward, for DistributedDataParallel to average its gradients."""

    def __init__(self, objective):
        super().__init__()
        self.model, self.objective = objective.model, objective

    def forward(self, *args, **kwargs):
        return self.objective.loss(*args, **kwargs)


class _Loop:
    """The training state and one epoch of it."""

    def __init__(self, objective, data: Dataset, tcfg: TrainConfig, device: torch.device, world: World = World()):
        self.objective, self.model, self.data = objective, objective.model, data
        self.tcfg, self.device, self.world = tcfg, device, world
        self.config_json = self.model.config.to_json()
        self.train_x, self.val_x = place(data.train.images, device), place(data.val.images, device)
        self.train_y = None if data.train.labels is None else data.train.labels.to(device)
        self.val_y = None if data.val.labels is None else data.val.labels.to(device)
        self.optimizer = torch.optim.Adam(objective.param_groups())
        for group in self.optimizer.param_groups:
            group["initial_lr"] = group["lr"]
        self.sampler = DistributedSampler(
            range(len(self.train_x)), world.size, world.rank, shuffle=True, seed=tcfg.seed
        )
        self.batches = _batches(self.train_x, self.train_y, self.sampler, tcfg, device)
        autocast(device, tcfg.precision)  # refused here, before the first epoch, where it cannot run
        self.batch_loss = objective.loss
        if world.size > 1:
            self.batch_loss = DistributedDataParallel(
                _LossModule(objective), device_ids=[device] if device.type == "cuda" else None
            )
        self.noise_gen = torch.Generator(device).manual_seed(tcfg.seed + 1)
        self.ema = (
            AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(tcfg.ema), use_buffers=True)
            if tcfg.ema
            else None
        )
        self.epoch_no, self.best_loss, self.best_epoch, self.bad_epochs = 0, math.inf, 0, 0
        self.history: list[dict] = []
        self.best_state = _copy_state(self.model)
        self.started, self.elapsed_before = time.perf_counter(), 0.0

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.sampler) / self.tcfg.batch_size)

    def finished(self) -> bool:
        return self.epoch_no >= self.tcfg.epochs or self.bad_epochs >= self.tcfg.patience

    def draw(self) -> None:
        """A dataset that draws its training images per epoch (photo-crops) gives this epoch's; the
        objective's searches over them (x* of Eq. 20) follow."""
        if self.data.draw is None:
            return
        self.train_x = place(self.data.draw(self.epoch_no), self.device)
        self.batches = _batches(self.train_x, self.train_y, self.sampler, self.tcfg, self.device)
        if hasattr(self.objective, "new_training_images"):
            self.objective.new_training_images(self.train_x)

    def set_learning_rate(self) -> None:
        """The schedule's factor for this epoch applied to every group's starting rate."""
        factor = 1.0
        if self.tcfg.lr_schedule == "cosine":
            factor = 0.01 + 0.99 * (1 + math.cos(math.pi * self.epoch_no / self.tcfg.epochs)) / 2
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor

    def epoch(self, progress: Progress) -> dict:
        getattr(self.objective, "train_mode", self.model.train)()
        if self.epoch_no > 0:
            self.draw()
        self.set_learning_rate()
        sums: dict[str, float] = {}
        self.sampler.set_epoch(self.epoch_no)  # this rank's share of the epoch, in batches
        share = (self.world.rank, self.world.size)
        for x, labels in self.batches:
            x, labels = as_floats(x, self.device), None if labels is None else labels.to(self.device)
            with autocast(self.device, self.tcfg.precision):
                total, terms = self.batch_loss(x, labels, self.noise_gen, validation=False, share=share)
            _check_finite(total, terms, self.epoch_no + 1, self.world)
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            values = {"total": total.item(), **{k: v.item() for k, v in terms.items()}}
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v / self.batches_per_epoch
            progress.on_batch(self.epoch_no + 1, values)
        return self._end_epoch(self._mean_over_ranks(sums))

    def _mean_over_ranks(self, sums: dict[str, float]) -> dict[str, float]:
        """The epoch's training terms averaged over torchrun's ranks (each saw its share)."""
        if self.world.size == 1:
            return sums
        values = torch.tensor(list(sums.values()), dtype=torch.float64, device=self.device)
        dist.all_reduce(values)
        return dict(zip(sums, (values / self.world.size).tolist()))

    def _end_epoch(self, train_terms: dict) -> dict:
        self.epoch_no += 1
        with self.averaged_weights():
            val = self.validate()
            improved = val["total"] < self.best_loss
            if improved:
                self.best_loss, self.best_epoch, self.bad_epochs = val["total"], self.epoch_no, 0
                self.best_state = _copy_state(self.model)
            else:
                self.bad_epochs += 1
        record = {
            "epoch": self.epoch_no,
            "train": train_terms,
            "val": val,
            "improved": improved,
            "seconds": round(self.elapsed(), 1),
        }
        self.history.append(record)
        return record

    @contextlib.contextmanager
    def averaged_weights(self):
        """The model holds the EMA of its weights inside (validation and the best state see them), its
        trained weights again after; nothing changes without an EMA."""
        if self.ema is None:
            yield
            return
        trained = _copy_state(self.model)
        self.model.load_state_dict(self.ema.module.state_dict())
        try:
            yield
        finally:
            self.model.load_state_dict(trained)

    @torch.no_grad()
    def validate(self) -> dict:
        """The objective's loss on the validation images, eval mode, the same random draws every epoch."""
        self.model.eval()
        gen = torch.Generator(self.device).manual_seed(self.tcfg.seed + 2)
        sums: dict[str, float] = {}
        n = len(self.val_x)
        for start in range(0, n, 256):
            labels = None if self.val_y is None else self.val_y[start : start + 256]
            x = as_floats(self.val_x[start : start + 256], self.device)
            with autocast(self.device, self.tcfg.precision):
                total, terms = self.objective.loss(x, labels, gen, validation=True)
            _check_finite(total, terms, self.epoch_no)
            for k, v in {"total": total, **terms}.items():
                sums[k] = sums.get(k, 0.0) + v.item() * len(x) / n
        return sums

    def calibration_images(self) -> torch.Tensor:
        """The validation images that choose the flow defaults, as floats on the device: all of them up
        to CALIBRATION_IMAGES, else that many evenly spaced (a streamed folder's split may be large)."""
        n = len(self.val_x)
        pick = torch.linspace(0, n - 1, min(n, CALIBRATION_IMAGES)).round().long()
        return as_floats(self.val_x, self.device) if n <= CALIBRATION_IMAGES else rows(self.val_x, pick, self.device)

    def fingerprint(self) -> str:
        """What the data were: image counts and a SHA-256 of both splits' pixels (a file added, removed
        or changed shows)."""
        if self.data.digest is not None:  # a stream cache knows its hash without reading every image
            return f"{len(self.train_x)} + {len(self.val_x)} images, sha256 {self.data.digest[:16]}"
        digest = hashlib.sha256()
        for x in (self.train_x, self.val_x):
            digest.update(x.detach().cpu().contiguous().numpy().tobytes())
        return f"{len(self.train_x)} + {len(self.val_x)} images, sha256 {digest.hexdigest()[:16]}"

    def rng_state(self) -> dict[str, torch.Tensor]:
        rng = {"noise": self.noise_gen.get_state(), "torch": torch.get_rng_state()}  # the epoch's order is seed + epoch
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return rng

    def save(self, store) -> None:
        state = {
            "epoch": self.epoch_no,
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "history": self.history,
            "model_config": self.config_json,
            "train_config": self.tcfg.to_dict(),
            "elapsed": self.elapsed(),
            "dataset": self.data.name,
            "data": self.fingerprint(),
        }
        ema = None if self.ema is None else self.ema.state_dict()
        store.save_checkpoint(self.model.state_dict(), self.best_state, self.optimizer, self.rng_state(), state, ema)

    def restore(self, store, epochs: int) -> None:
        """Continue a saved run exactly; only the epoch budget may differ from the saved run."""
        model_state, best_state, optim_state, rng, state, ema_state = store.load_checkpoint()
        path = store.checkpoint
        fingerprint = self.fingerprint()
        same_pixels = state.get("data") == fingerprint  # the same folder by another spelling of its path
        if state.get("dataset") != self.data.name and not same_pixels:
            raise LmppmError(
                f"{path} was trained on {state.get('dataset')!r}, not {self.data.name!r}; resume with the same data."
            )
        if state.get("data", fingerprint) != fingerprint:  # checkpoints from before it have none
            raise LmppmError(
                f"the images of {self.data.name} changed since {path} was written ({state['data']} then, "
                f"{self.fingerprint()} now); resume with the same data or start a new run."
            )
        if (
            ModelConfig.from_json(state["model_config"]).to_json() != self.config_json
        ):  # older files lack newer defaulted fields
            raise LmppmError(f"{path} was trained with another model configuration; resume with the same options.")
        saved = TrainConfig.from_dict(state["train_config"])
        loose = {
            "epochs": epochs,
            "calibrate": self.tcfg.calibrate,
            "workers": self.tcfg.workers,
            "calibration_grid": self.tcfg.calibration_grid,
        }
        if dataclasses.replace(saved, **loose) != self.tcfg:
            raise LmppmError(
                f"{path} was trained with other training options; only --epochs, --calibrate, --calibration-grid and --workers may change on resume."
            )
        self.model.load_state_dict(model_state)
        if self.ema is not None:
            self.ema.load_state_dict(ema_state)
        self.best_state = best_state
        self.optimizer.load_state_dict(optim_state)
        self.noise_gen.set_state(rng["noise"])
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        self.epoch_no, self.best_loss = state["epoch"], state["best_loss"]
        self.best_epoch, self.bad_epochs = state["best_epoch"], state["bad_epochs"]
        self.history, self.elapsed_before = state["history"], state["elapsed"]

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started


class _Rows(torch.utils.data.Dataset):
    """Batches of stored images (and labels) fetched by a list of indices at once."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, idx: list[int]):
        i = torch.tensor(idx, device=self.images.device)
        return self.images[i], None if self.labels is None else self.labels[i]


def _batches(images, labels, sampler, tcfg: TrainConfig, device: torch.device) -> DataLoader:
    """The epoch's batches in the sampler's order. Images in memory are indexed in this process; a
    streamed folder's memory map is read by `tcfg.workers` DataLoader processes, a batch per step,
    into pinned memory when training on CUDA."""
    streamed = images.dtype == torch.uint8
    workers = tcfg.workers if streamed else 0
    own = torch.Generator().manual_seed(tcfg.seed)  # the loader's seed draws leave the global RNG (dropout) alone
    return DataLoader(
        _Rows(images, labels),
        sampler=BatchSampler(sampler, tcfg.batch_size, drop_last=False),
        batch_size=None,
        num_workers=workers,
        pin_memory=streamed and device.type == "cuda",
        persistent_workers=workers > 0,
        generator=own,
    )


def _copy_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _finish(loop: _Loop, store) -> dict:
    """Best weights, then the objective's additions (bank, calibration, accuracy); write model and summary."""
    model = loop.model
    model.load_state_dict(loop.best_state)
    model.eval()
    train_seconds = loop.elapsed()
    extras = loop.objective.finish(loop)
    model.config = dataclasses.replace(model.config, dataset=loop.data.name)
    summary = {
        "method": model.config.method,
        "dataset": loop.data.name,
        "train_images": len(loop.train_x),
        "val_images": len(loop.val_x),
        "skipped_files": list(loop.data.skipped),
        "epochs_run": loop.epoch_no,
        "best_epoch": loop.best_epoch,
        "best_val_loss": loop.best_loss,
        "stopped_early": loop.epoch_no < loop.tcfg.epochs,
        "seconds": round(loop.elapsed(), 1),
        "seconds_per_epoch": round(train_seconds / max(loop.epoch_no, 1), 2),
        **_peak_memory(loop.device),
        "device": str(loop.device),
        "train_config": loop.tcfg.to_dict(),
        "notes": getattr(loop.objective, "notes", []),
        "model_config": json.loads(model.config.to_json()),
        "final": loop.history[-1] if loop.history else None,
        **extras,
    }
    store.save_model(model, {"lmppm.training": json.dumps(summary)})
    store.write_text("summary.json", json.dumps(summary | {"history": loop.history}, indent=2))
    store.write_text("summary.md", _summary_markdown(summary))
    return summary


def _peak_memory(device: torch.device) -> dict:
    """Peak GPU memory the process allocated (CUDA only), for the README's time-and-memory figures."""
    if device.type != "cuda":
        return {}
    return {"peak_gpu_memory_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)}


def _summary_markdown(s: dict) -> str:
    final = s["final"] or {"train": {}, "val": {}}
    rows = "\n".join(f"| {k} | {v:.4f} | {final['val'].get(k, float('nan')):.4f} |" for k, v in final["train"].items())
    lines = [
        f"# lmppm training run ({s['method']})",
        "",
        f"- data: `{s['dataset']}` ({s['train_images']} train / {s['val_images']} val images)",
        f"- epochs: {s['epochs_run']} (best {s['best_epoch']}, early stop: {s['stopped_early']}), {s['seconds']} s on {s['device']}",
        f"- {s['seconds_per_epoch']} s per training epoch"
        + (f", peak GPU memory {s['peak_gpu_memory_mib']} MiB" if "peak_gpu_memory_mib" in s else ""),
    ]
    if "flow" in s:
        lines.append(
            "- flow defaults: " + ", ".join(f"{k} {s['flow'][k]:.4g}" for k in ("alpha", "beta", "steps", "sigma_ker"))
        )
        t = s["top_k_kernel_mean"]
        lines.append(
            f"- top-{t['k']} kernel mean ({t['search']}): {100 * t['relative_error']:.2f}% of the kernel step from the exact one, on {t['queries']} validation latents"
        )
    if "start_step" in s:
        lines.append(f"- restoration start step: {s['start_step']} of {s['model_config']['diffusion']['steps']}")
    if "test_accuracy" in s:
        lines.append(f"- accuracy on {s['test_images']} held-out images: {100 * s['test_accuracy']:.2f}%")
    return "\n".join(lines) + f"\n\nLoss terms in the last epoch:\n\n| term | train | val |\n|---|---|---|\n{rows}\n"
