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
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

from lmppm_cli.core.config import ModelConfig
from lmppm_cli.core.data import Dataset
from lmppm_cli.core.errors import Interrupted, LmppmError, TrainingError
from lmppm_cli.core.pixels import as_floats, place, rows
from lmppm_cli.core.precision import autocast
from lmppm_cli.core.summary import finish
from lmppm_cli.core.train_config import LR_SCHEDULES, NEIGHBOURS, TRAIN_PRECISIONS, TrainConfig
from lmppm_cli.core.world import World

CALIBRATION_IMAGES = 2000
__all__ = ["LR_SCHEDULES", "NEIGHBOURS", "TRAIN_PRECISIONS", "TrainConfig", "fit"]


@dataclass
class Progress:
    """Callbacks the caller may set; the core never prints."""

    on_start: Callable[[int, int], None] = lambda epochs, batches: None
    on_batch: Callable[[int, dict], None] = lambda epoch, terms: None
    on_epoch: Callable[[dict], None] = lambda record: None
    on_note: Callable[[str], None] = lambda text: None  # what the run found before its first epoch
    on_calibration: Callable[[int, int], None] = lambda done, total: None  # flow settings tried of all


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
    for note in loop.objective.notes:
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
    loop.progress = progress
    return finish(loop, store) if world.main else None


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
        rows: Any = range(len(self.train_x))  # the sampler needs only a length
        self.sampler: DistributedSampler = DistributedSampler(
            rows, world.size, world.rank, shuffle=True, seed=tcfg.seed
        )
        self.batches = _batches(self.train_x, self.train_y, self.sampler, tcfg, device, data.workers)
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
        self.progress = Progress()  # fit's hooks, for what runs after the epochs (the calibration)
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
        self.batches = _batches(self.train_x, self.train_y, self.sampler, self.tcfg, self.device, self.data.workers)
        self.objective.new_training_images(self.train_x)

    def set_learning_rate(self, batch: int = 0) -> None:
        """The schedule's factor for this epoch, times the warm-up's for this batch (--lr-warmup: linear
        over its first epochs, step by step), applied to every group's starting rate."""
        factor = 1.0
        if self.tcfg.lr_schedule == "cosine":
            factor = 0.01 + 0.99 * (1 + math.cos(math.pi * self.epoch_no / self.tcfg.epochs)) / 2
        if self.tcfg.lr_warmup:
            step = self.epoch_no * self.batches_per_epoch + batch + 1
            factor *= min(1.0, step / (self.tcfg.lr_warmup * self.batches_per_epoch))
        self.lr_factor = factor
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor

    def epoch(self, progress: Progress) -> dict:
        self.objective.train_mode()
        if self.epoch_no > 0:
            self.draw()
        self.set_learning_rate()
        sums: dict[str, float] = {}
        self.sampler.set_epoch(self.epoch_no)  # this rank's share of the epoch, in batches
        share = (self.world.rank, self.world.size)
        for batch, (x, labels) in enumerate(self.batches):
            if self.tcfg.lr_warmup and self.epoch_no < self.tcfg.lr_warmup:
                self.set_learning_rate(batch)
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
            "lr_factor": self.lr_factor,  # the learning rate's share of --lr at the epoch's last step
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
        loose: dict[str, Any] = {
            "epochs": epochs,
            "calibrate": self.tcfg.calibrate,
            "calibration_grid": self.tcfg.calibration_grid,
            "calibration_noise": self.tcfg.calibration_noise,
            "min_flow_gain": self.tcfg.min_flow_gain,
        }
        if dataclasses.replace(saved, **loose) != self.tcfg:
            changeable = ", ".join(f"--{k.replace('_', '-')}" for k in loose)
            raise LmppmError(f"{path} was trained with other training options; only {changeable} may change on resume.")
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


def _batches(images, labels, sampler, tcfg: TrainConfig, device: torch.device, workers: int) -> DataLoader:
    """The epoch's batches in the sampler's order. Images in memory are indexed in this process; a
    streamed folder's memory map is read by `workers` DataLoader processes (the data's), a batch per
    step, into pinned memory when training on CUDA."""
    streamed = images.dtype == torch.uint8
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
