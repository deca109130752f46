"""The configuration of a training run: TrainConfig (every field but `init` and `weights` an option of
`lmppm train` of the same name) and the loss weights of Eq. 20, frozen dataclasses that check themselves,
saved in every checkpoint and model file; and the TrainRequest that holds a whole run."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lmppm_cli.core.config import AutoencoderConfig, DiffusionConfig, comma_numbers, option
from lmppm_cli.core.errors import LmppmError

if TYPE_CHECKING:  # torch loads with core/noise.py, after the options are checked
    from lmppm_cli.core.noise import TrainingNoise

# Training (TrainConfig): the choices of its options
NEIGHBOURS = ("exact", "approximate", "faiss", "auto")
TRAIN_PRECISIONS = ("fp32", "bf16")
LR_SCHEDULES = ("constant", "cosine")
CALIBRATION_GRIDS = ("full", "small")  # calibrate.GRIDS
PIXEL_LOSSES = ("l2", "l1", "charbonnier", "relative", "psnr")
TERM_NAMES = ("distance", "recon", "boundary", "positivity", "shift", "shift_recon")  # Eq. 20


@dataclass(frozen=True)
class LossWeights:
    """lambda_1..lambda_6 of Eq. 20 (the paper gives no values; the authors' code uses 1 for all), and
    lambda_7 of our denoising term (not in the paper; 0 gives Eq. 20 exactly, see `lmppm_loss`)."""

    distance: float = 1.0
    recon: float = 1.0
    boundary: float = 1.0
    positivity: float = 1.0
    shift: float = 1.0
    shift_recon: float = 1.0
    denoise: float = 0.0

    def __post_init__(self):
        six = [getattr(self, n) for n in TERM_NAMES]
        if not all(math.isfinite(v) and v >= 0 for v in six):
            raise LmppmError(f"--lambdas needs six non-negative finite numbers, not {', '.join(map(str, six))}.")
        if not (math.isfinite(self.denoise) and self.denoise >= 0):
            raise LmppmError(f"--lambda-denoise must be a finite number of at least 0, not {self.denoise}.")


def _choice(values: tuple[str, ...], help: str, default: str):
    return option(default, f"{help} ({', '.join(values)}).", choices=values)


@dataclass(frozen=True)
class TrainConfig:
    """Table 11 (MNIST): Adam, lr 1e-3 (F and G; the LDM's denoiser; the classifier), batch 128,
    200 epochs, patience 10. D's lr is 1e-3, not Table 11's 1e-5 for MNIST: with 1e-5 D stayed
    nearly constant on mnist-5k and its flow step changed nothing (docs/reproduction.md, "Choices").
    Every field but `init` and `weights` is an option of `lmppm train` of the same name; the config
    checks itself, so a bad value is refused in one sentence wherever it comes from."""

    epochs: int = option(200, "Epoch budget (Table 11: 200).", min=1)
    batch_size: int = option(128, "Batch size (Table 11: 128).", min=1)
    lr: float = option(1e-3, "Adam learning rate of F and G (of the LDM's denoiser, of the classifier).")
    lr_distance: float = option(1e-3, "Adam learning rate of D_S.")
    sigma_d: float = option(0.4, "Training noise (0.4 digits, 0.2 faces); also the calibration's noise level.")
    sigma_range: tuple[float, float] | None = option(
        None,
        "LOW,HIGH: each training sample draws its noise level from this range (blind to strength) instead of --sigma-d.",
        parse=lambda text: comma_numbers(text, float, "--sigma-range", 2),
    )
    sigma_power: float = option(
        1.0,
        "--sigma-range: the level is LOW + (HIGH - LOW) u^POWER, u uniform; above 1 favours low noise (not in the paper).",
    )
    init: str = ""  # model file whose F and G start this run (objectives.warm_start); "" = random init
    freeze_init: bool = option(
        False, "lmppm: keep F and G at the --init model and train D alone with Eq. 20 (not in the paper)."
    )
    precision: str = _choice(TRAIN_PRECISIONS, "F and G under autocast where the device computes bf16", "fp32")
    patience: int = option(10, "Early stopping: epochs without a better validation loss.", min=1)
    lr_schedule: str = _choice(LR_SCHEDULES, "The learning rates: constant, or falling to 1% on a cosine", "constant")
    lr_warmup: int = option(
        0,
        "Epochs over which the learning rates rise linearly, step by step, to the schedule's: a warm start's fresh "
        "Adam state then moves its weights gently (not in the paper).",
        min=0,
    )
    seed: int = option(0, "Seed of initialisation, shuffling and noise.")
    neighbours: str = _choice(
        NEIGHBOURS, "x* search: exact (chunked), approximate, faiss (HNSW), auto (exact up to 20,000 images)", "exact"
    )
    calibrate: bool = option(True, "Choose the flow defaults on the validation split after training.")
    min_flow_gain: float = option(
        0.0,
        "Calibration: keep the single pass (0 flow steps) unless the flow gains this many dB (not in the paper).",
        min=0.0,
    )
    calibration_grid: str = _choice(
        CALIBRATION_GRIDS, "The calibration's grid: full (1,200 settings) or small (36)", "full"
    )
    calibration_noise: tuple[float, ...] | None = option(
        None,
        "LEVELS: the calibration's noise levels, e.g. 0,0.02,0.1 (default: --sigma-d and 1.75 times it).",
        parse=lambda text: comma_numbers(text, float, "--calibration-noise"),
    )
    weights: LossWeights = field(default_factory=LossWeights)
    camera: float = option(
        0.0, "Share of training samples with camera-like Poisson-Gaussian noise (not in the paper).", min=0.0, max=1.0
    )
    jpeg: float = option(
        0.0, "Share of noisy training samples stored as a JPEG of quality 75-95 (not in the paper).", min=0.0, max=1.0
    )
    camera_pipeline: float = option(
        0.0,
        "Share of training samples made by a camera drawn per sample (core/camera.py: raw noise, demosaic, colour, tone, JPEG); their target is that camera without noise and JPEG (not in the paper).",
        min=0.0,
        max=1.0,
    )
    loss: str = _choice(PIXEL_LOSSES, "The DAE's pixel loss", "l2")
    ema: float = option(0.0, "Decay of an average of the weights that is validated and kept (0: off).", min=0.0)

    def __post_init__(self):
        for name in ("lr", "lr_distance"):  # 0 keeps those weights fixed
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise LmppmError(f"{_flag(name)} must be a finite number of at least 0, not {getattr(self, name)}.")
        if not (math.isfinite(self.sigma_d) and self.sigma_d >= 0):
            raise LmppmError(f"--sigma-d must be a finite number of at least 0, not {self.sigma_d}.")
        low, high = self.sigma_range or (0.0, 0.0)
        if not 0.0 <= low <= high < math.inf:
            raise LmppmError(f"--sigma-range needs two numbers LOW,HIGH with 0 <= LOW <= HIGH, not {low},{high}.")
        if not (math.isfinite(self.sigma_power) and self.sigma_power > 0):
            raise LmppmError(f"--sigma-power must be a finite number above 0, not {self.sigma_power}.")
        if self.precision not in TRAIN_PRECISIONS:
            raise LmppmError(
                f"training runs at {' or '.join(TRAIN_PRECISIONS)}, not {self.precision!r} (fp16 would need loss scaling; bf16 does not)."
            )
        for f in dataclasses.fields(self):
            choices, value = f.metadata.get("choices"), getattr(self, f.name)
            if choices and value not in choices and f.name != "precision":
                raise LmppmError(f"{_flag(f.name)} must be {', '.join(choices[:-1])} or {choices[-1]}, not {value!r}.")
        if self.freeze_init and not self.init:
            raise LmppmError("--freeze-init keeps F and G of the --init model fixed; give --init MODEL too.")
        if self.calibration_noise is not None and min(self.calibration_noise, default=-1.0) < 0:
            raise LmppmError(f"--calibration-noise needs noise levels of at least 0, not {self.calibration_noise}.")
        if not 0.0 <= self.ema < 1.0:
            raise LmppmError(f"--ema must be at least 0 and below 1, not {self.ema}.")

    @property
    def noise(self) -> tuple[TrainingNoise, ...]:
        """The kinds of training noise these options ask for, in the order they are drawn (core/noise.py):
        Gaussian at sigma_d, or over --sigma-range (also at sigma_d when another kind is set, as before
        they were typed); then the Poisson-Gaussian (--camera), JPEG (--jpeg) and camera (--camera-pipeline)
        shares that are set."""
        from lmppm_cli.core.camera import Camera
        from lmppm_cli.core.noise import GaussianNoise, JpegStorage, PoissonGaussianNoise

        kinds: list[TrainingNoise] = [GaussianNoise(self.sigma_d)]
        if self.sigma_range or self.camera or self.jpeg:
            low, high = self.sigma_range or (self.sigma_d, self.sigma_d)
            kinds = [GaussianNoise(low, high, self.sigma_power)]
        if self.camera:
            kinds.append(PoissonGaussianNoise(self.camera))
        if self.jpeg:
            kinds.append(JpegStorage(self.jpeg))
        if self.camera_pipeline:
            kinds.append(Camera(self.camera_pipeline))
        return tuple(kinds)

    @property
    def reference_sigma(self) -> float:
        """The one level that stands for the training noise where a single level is needed (the flow's
        calibration at 1x and 1.75x of it unless --calibration-noise is given, the LDM's start step, the recall check of an approximate x*
        search): sigma_d, which --sigma-range does not replace."""
        return self.sigma_d

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> TrainConfig:
        """Back from to_dict (a checkpoint's JSON); fields added since take their defaults."""
        tuples = {k: tuple(raw[k]) if raw.get(k) is not None else None for k in ("sigma_range", "calibration_noise")}
        kept = {k: v for k, v in raw.items() if k != "workers"}  # a data option since, not the run's
        return cls(**{**kept, "weights": LossWeights(**raw["weights"]), **tuples})


@dataclass(frozen=True)
class DataSource:
    """Where the training images come from: a folder of images or a built-in dataset (`name`)."""

    name: str
    data_dir: str | None = None  # download folder of torchvision datasets
    stream: bool = False  # a folder decoded once into a memory-mapped cache and trained from it
    cache: str | None = None  # --stream: the cache folder (default: RUN/cache)
    workers: int = 2  # --stream: DataLoader processes that decode the files and read the batches
    extra_photos: str | None = None  # photo-crops: a folder of whole photos added to its training photos
    crop_sides: tuple[int, ...] | None = None  # photo-crops: the longer sides its photos are cropped at


@dataclass(frozen=True)
class RunOptions:
    """Where a run goes and on what: its folder, the device, --resume, and (ldm) the trained DAE it models."""

    output: str
    device: str = "auto"
    resume: bool = False
    base: str | None = None


@dataclass(frozen=True)
class TrainRequest:
    """One training run, whole: `lmppm train` builds it from its options and `lmppm_cli.train` runs it.
    The autoencoder's channels and size are the model's input (the CLI reads them off the data); the
    training noise is `train.noise`."""

    data: DataSource
    run: RunOptions
    method: str = "lmppm"
    autoencoder: AutoencoderConfig = AutoencoderConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    train: TrainConfig = TrainConfig()


def _flag(name: str) -> str:
    """The CLI option of a config field: the same name."""
    return "--" + name.replace("_", "-")
