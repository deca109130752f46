"""Training from option values: the configurations (checked, in the words of the options), the
method's objective from the registry, the run folder, and core/train.py's loop over them."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from lmppm_cli import methods
from lmppm_cli.core.calibrate import GRIDS
from lmppm_cli.core.config import AutoencoderConfig, DistanceConfig, ModelConfig, check_config
from lmppm_cli.core.data import Dataset
from lmppm_cli.core.errors import LmppmError, ModelError
from lmppm_cli.core.losses import LossWeights
from lmppm_cli.core.models import ARCHITECTURES, architecture
from lmppm_cli.core.train import LR_SCHEDULES, NEIGHBOURS, TRAIN_PRECISIONS, Progress, TrainConfig, fit
from lmppm_cli.core.world import World
from lmppm_cli.files.run import RunFolder
from lmppm_cli.files.weights import load_model


def build_configs(
    *,
    channels,
    height,
    width,
    latent_dim,
    lambdas: tuple[float, ...],
    epochs,
    batch_size,
    lr,
    lr_distance,
    sigma_d,
    patience,
    neighbours,
    seed,
    calibrate=True,
    method="lmppm",
    arch="conv",
    widths=None,
    projections=True,
    skip_dropout=0.0,
    lambda_denoise=0.0,
    sigma_range: tuple[float, float] | None = None,
    init: str = "",
    freeze_init: bool = False,
    workers: int = 2,
    precision: str = "fp32",
    unshuffle: int = 1,
    residual: bool = False,
    lr_schedule: str = "constant",
    calibration_grid: str = "full",
    sigma_power: float = 1.0,
) -> tuple[ModelConfig, TrainConfig]:
    """Model and training configuration from the option values `lmppm train` parsed."""
    if len(lambdas) != 6 or not all(math.isfinite(v) and v >= 0 for v in lambdas):
        raise LmppmError(f"--lambdas needs six non-negative finite numbers, not {', '.join(map(str, lambdas))}.")
    rates = {"--lr": lr, "--lr-distance": lr_distance, "--sigma-d": sigma_d, "--lambda-denoise": lambda_denoise}
    for flag, value in rates.items():
        if not (math.isfinite(value) and (value > 0 if flag.startswith("--lr") else value >= 0)):
            raise LmppmError(
                f"{flag} must be a finite number {'above' if flag.startswith('--lr') else 'of at least'} 0, not {value}."
            )
    if sigma_range is not None and not 0.0 <= sigma_range[0] <= sigma_range[1] < math.inf:
        raise LmppmError(
            f"--sigma-range needs two numbers LOW,HIGH with 0 <= LOW <= HIGH, not {sigma_range[0]},{sigma_range[1]}."
        )
    if neighbours not in NEIGHBOURS:
        raise LmppmError(f"--neighbours must be {', '.join(NEIGHBOURS[:-1])} or {NEIGHBOURS[-1]}, not {neighbours!r}.")
    methods.check_training(method, bool(init), freeze_init)
    if not (math.isfinite(sigma_power) and sigma_power > 0):
        raise LmppmError(f"--sigma-power must be a finite number above 0, not {sigma_power}.")
    if precision not in TRAIN_PRECISIONS:
        raise LmppmError(
            f"training runs at {' or '.join(TRAIN_PRECISIONS)}, not {precision!r} (fp16 would need loss scaling; bf16 does not)."
        )
    if calibration_grid not in GRIDS:
        raise LmppmError(f"--calibration-grid must be {' or '.join(GRIDS)}, not {calibration_grid!r}.")
    if lr_schedule not in LR_SCHEDULES:
        raise LmppmError(f"--lr-schedule must be {' or '.join(LR_SCHEDULES)}, not {lr_schedule!r}.")
    found = architecture(arch)
    if "unshuffle" not in found.options and (unshuffle != 1 or residual):
        raise LmppmError(
            f"--unshuffle and --residual are options of the {' and '.join(a.name for a in ARCHITECTURES.values() if 'unshuffle' in a.options)} architecture."
        )
    if freeze_init and not init:
        raise LmppmError("--freeze-init keeps F and G of the --init model fixed; give --init MODEL too.")
    ae = AutoencoderConfig(
        arch=arch,
        channels=channels,
        height=height,
        width=width,
        latent_dim=latent_dim,
        widths=tuple(widths or found.widths),
        projections=projections,
        skip_dropout=skip_dropout,
        unshuffle=unshuffle,
        residual=residual,
    )
    tcfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        lr_distance=lr_distance,
        sigma_d=sigma_d,
        patience=patience,
        seed=seed,
        neighbours=neighbours,
        calibrate=calibrate,
        weights=LossWeights(*lambdas, denoise=lambda_denoise),
        sigma_range=sigma_range,
        init=init,
        freeze_init=freeze_init,
        workers=workers,
        precision=precision,
        lr_schedule=lr_schedule,
        calibration_grid=calibration_grid,
        sigma_power=sigma_power,
    )
    config = ModelConfig(autoencoder=ae, distance=DistanceConfig(hidden=found.distance_hidden), method=method)
    try:
        check_config(config)
    except ModelError as exc:  # here the fields come from the user's options
        raise LmppmError(str(exc).replace("the model's configuration has", "the options give")) from None
    return config, tcfg


def train(
    config: ModelConfig,
    data: Dataset,
    tcfg: TrainConfig,
    run_dir: str | Path,
    device: torch.device,
    resume: bool = False,
    progress: Progress | None = None,
    base=None,
    world: World = World(),
) -> dict | None:
    """Train a model of `config.method` into the folder `run_dir` (core/train.fit). `base`: the trained
    DAE an ldm is built on; the --init model (tcfg.init) is loaded here. Returns the summary (None on
    ranks other than 0 under torchrun)."""
    store = RunFolder(run_dir)
    methods.check_training(config.method, bool(tcfg.init), tcfg.freeze_init, world.size)
    start = base if methods.get(config.method).base else load_model(tcfg.init, device) if tcfg.init else None
    return fit(
        lambda: methods.objective(config, data, tcfg, device, start), data, tcfg, store, device, resume, progress, world
    )
