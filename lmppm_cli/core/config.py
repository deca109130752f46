"""Frozen configuration of every component; the whole `ModelConfig` is saved inside each model file."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from lmppm_cli.core.errors import LmppmError, ModelError

FORMAT_VERSION = 1


def option(default, help: str, **meta):
    """A configuration field a user may set: an option of the CLI (lmppm_cli/options.py builds it from
    the field: its name, type, default and `help`), and for FlowConfig a keyword of the API. `meta`:
    min, max (bounds the CLI checks); parse (text -> value, for tuples given as comma lists); shown
    (the CLI's default where the field's is not the user's); everywhere (FlowConfig: given, it applies
    to every regime of a blind rule instead of turning the rule off, restoration.flow_settings)."""
    return field(default=default, metadata={"help": help, **meta})


def comma_numbers(text: str, kind, flag: str, count: int | None = None) -> tuple:
    """Numbers separated by commas (COUNT of them, if given), each positive for whole numbers."""
    try:
        values = tuple(kind(v) for v in text.split(","))
    except ValueError:
        values = ()
    ok = values and (count is None or len(values) == count) and all(math.isfinite(v) for v in values)
    if not ok or (kind is int and min(values) < 1):
        what = "positive whole numbers" if kind is int else f"{count} finite numbers" if count else "finite numbers"
        raise LmppmError(f"{flag} needs {what} separated by commas, not {text!r}.")
    return values


@dataclass(frozen=True)
class AutoencoderConfig:
    """Encoder F / decoder G. `conv` is the paper's MNIST network (Table 8), `unet` the faces U-Net
    with latent-to-skip projections (Table 9; `projections=False` is its ablation), both generalised
    in size; `widths` are the channels per level. `skip_dropout` makes the U-Net's decoder work from z alone
    for a share of the training samples, so that z (and the flow) still matters when skips are present."""

    arch: str = option("conv", "conv (Table 8) or unet (Table 9, with latent-to-skip projections).")
    channels: int = 1
    height: int = 28
    width: int = 28
    latent_dim: int = option(18, "Latent dimension d (MNIST: 18).", min=1)
    widths: tuple[int, ...] = option(
        (32, 64),
        "Channels per level, comma separated [default: the architecture's; conv 32,64, unet 32,64,128,256].",
        parse=lambda text: comma_numbers(text, int, "--widths"),
        shown=None,
    )
    projections: bool = option(True, "unet: add the latent-to-skip projections (off: the ablation).")
    skip_dropout: float = option(
        0.0, "unet: chance a training sample's skips are zeroed, so z must carry the image.", min=0.0, max=1.0
    )
    unshuffle: int = option(
        1, "unet: pixel-unshuffle factor r; convolutions run at 1/r^2 of the pixels (not in the paper).", min=1, max=8
    )
    residual: bool = option(
        False, "unet: G corrects the encoded image instead of ending in a sigmoid (not in the paper)."
    )
    depth: int = option(
        2,
        "unet: convolutions per encoder and decoder block, those beyond 2 residual (Table 9: 2; not in the paper).",
        min=2,
        max=16,
    )
    noise_map: bool = option(
        False, "unet: F reads the image's estimated noise level as an input channel (FFDNet; not in the paper)."
    )


@dataclass(frozen=True)
class DistanceConfig:
    """Distance network D_S: latent -> R, an MLP of decreasing widths (Table 8: 18->100->50->20->1)."""

    hidden: tuple[int, ...] = (100, 50, 20)
    dropout: float = 0.2


@dataclass(frozen=True)
class FlowConfig:
    """Defaults of the restoration flow (Alg. 4). The fields made by `option` are the user's settings:
    a new one is one field here plus its use in flow.flow_step, and it reaches the CLI and the API.

    far, far_residual (ours): an image whose reconstruction residual RMS(x - G(F(x))) is above
    far_residual lies far from the data and gets the `far` flow instead, which may have a far flow of its
    own; before that, an image whose estimated noise is above noisy_above takes `noisy`
    (restoration.blind_rule; 0 or none: one flow for all).
    """

    alpha: float = option(
        0.15, "Distance-gradient step of Alg. 4 (0 with --no-adaptive: D unused, Ablation_lmppm).", min=0.0, max=1.0
    )
    beta: float = option(0.1, "Weight of the kernel mean z_bar of Eq. 21.", min=0.0, max=1.0)
    steps: int = option(8, "Flow step budget.", min=0)
    tol: float = option(0.005, "Stop a sample once its relative latent update is below this.", everywhere=True, min=0.0)
    sigma_ker: float = option(1.0, "Kernel width of Eq. 21 (set from the bank in training).", min=1e-6)
    schedule: str = option("constant", "Step sizes: constant (the paper) or growing (a linear ramp up).")
    adaptive: bool = option(
        False,
        "Cap the kernel step at the learned distance D, so images on the manifold move little (not in the paper).",
    )
    top_k: int = option(
        0,
        "Kernel mean over the k nearest bank points only, for large banks (0: all, as Eq. 21).",
        everywhere=True,
        min=0,
    )
    far_residual: float = 0.0
    far: FlowConfig | None = None
    noisy_above: float = 0.0
    noisy: FlowConfig | None = None


GENERATION = FlowConfig(alpha=0.15, beta=0.1, steps=16, tol=0.0)  # Fig. 9: the paper's alpha and beta, 16 steps
FLOW_OPTIONS = tuple(f for f in dataclasses.fields(FlowConfig) if "help" in f.metadata)


@dataclass(frozen=True)
class FlowOverride:
    """The flow settings a user asked for, one per FlowConfig option (None: the model's own); a test
    checks that its fields are FLOW_OPTIONS."""

    alpha: float | None = None
    beta: float | None = None
    steps: int | None = None
    tol: float | None = None
    sigma_ker: float | None = None
    schedule: str | None = None
    adaptive: bool | None = None
    top_k: int | None = None

    def given(self) -> dict[str, Any]:
        """{setting: value} of the settings given."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class DiffusionConfig:
    """The LDM baseline: a DDPM on the DAE's latents (Alg. 2/3, linear betas 1e-4..0.02, T = 2000).
    start_step: restoration noises F(x) to this step and denoises from there (chosen on validation)."""

    steps: int = 2000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    hidden: tuple[int, ...] = option(
        (256, 256, 256),
        "ldm: widths of the noise predictor's hidden layers, comma separated.",
        parse=lambda text: comma_numbers(text, int, "--ldm-hidden"),
        flag="ldm-hidden",
    )
    start_step: int = 200


@dataclass(frozen=True)
class ClassifierConfig:
    """The small domain classifier whose penultimate features give the paper's MNIST FID."""

    features: int = 64
    classes: int = 10


@dataclass(frozen=True)
class ModelConfig:
    """method: the kind of model (lmppm_cli/methods: lmppm, dae, ldm, classifier). `flow` restores;
    `generation` generates from noise (Fig. 9: 16 steps at the paper's alpha 0.15 and beta 0.1; the
    calibrated restoration values are tuned for fidelity to an input, which generation does not have)."""

    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    distance: DistanceConfig = field(default_factory=DistanceConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    generation: FlowConfig = GENERATION
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    method: str = "lmppm"
    dataset: str = ""
    version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict):
                raise TypeError("it is not a JSON object")
            autoencoder = _build(AutoencoderConfig, raw["autoencoder"])
            distance = _build(DistanceConfig, raw["distance"])
            flow, generation = _flows(raw["flow"], raw.get("generation"))
            config = cls(
                autoencoder=autoencoder,
                distance=distance,
                flow=flow,
                generation=generation,
                diffusion=_build(DiffusionConfig, raw.get("diffusion", {})),
                classifier=_build(ClassifierConfig, raw.get("classifier", {})),
                method=raw.get("method", "lmppm"),
                dataset=raw.get("dataset", ""),
                version=raw.get("version", FORMAT_VERSION),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"the model's configuration is unreadable ({exc}).") from exc
        check_config(config)
        return config


OLD_GENERATION = {"generate_alpha": "alpha", "generate_beta": "beta", "generate_steps": "steps"}


def _flows(raw: dict, generation: dict | None) -> tuple[FlowConfig, FlowConfig]:
    """The restoration and generation flows. Files written before `generation` existed kept its alpha,
    beta and steps as generate_* fields of `flow` and shared the rest of it (tol 0): rebuilt as such."""
    if not isinstance(raw, dict):
        raise TypeError("its FlowConfig is not a JSON object")
    old = {new: raw[key] for key, new in OLD_GENERATION.items() if key in raw}
    flow = _build_flow(raw)
    if generation is not None:
        return flow, _build_flow(generation)
    shared = {k: getattr(flow, k) for k in ("sigma_ker", "schedule", "adaptive", "top_k")}
    return flow, dataclasses.replace(GENERATION, **shared, **old)


def _build_flow(raw: dict) -> FlowConfig:
    """A FlowConfig from JSON, its nested `far` and `noisy` flows (if any) rebuilt as ones too."""
    if not isinstance(raw, dict):
        raise TypeError("its FlowConfig is not a JSON object")
    nested = {k: None if raw.get(k) is None else _build_flow(raw[k]) for k in ("far", "noisy")}
    return _build(FlowConfig, {**{k: v for k, v in raw.items() if k not in OLD_GENERATION}, **nested})


def _build(kind, raw: dict):
    """Rebuild a frozen dataclass from JSON, turning lists back into tuples."""
    if not isinstance(raw, dict):
        raise TypeError(f"its {kind.__name__} is not a JSON object")
    return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


SIZE_LIMIT = 4096  # pixels per side, latent dimensions, network widths: far above any model we train
LIMITS = {
    "channels": (1, 3),
    "height": (2, SIZE_LIMIT),
    "width": (2, SIZE_LIMIT),
    "latent_dim": (1, SIZE_LIMIT),
    "features": (1, SIZE_LIMIT),
    "steps": (0, 100_000),
    "unshuffle": (1, 8),
    "depth": (2, 16),
}
ARCHITECTURE_NAMES = ("conv", "unet")  # models/architectures.py builds them (a test checks the two agree)
CHOICES = {"schedule": ("constant", "growing"), "arch": ARCHITECTURE_NAMES}


def check_config(config: ModelConfig) -> None:
    """Every field of the right type and within sane bounds, or one sentence that names the field (a
    model file from elsewhere must not fail later with a shape error or allocate absurd sizes)."""
    sections: dict[str, Any] = {
        "autoencoder": config.autoencoder,
        "distance": config.distance,
        "flow": config.flow,
        "generation": config.generation,
        "diffusion": config.diffusion,
        "classifier": config.classifier,
    }
    sections.update(_nested_flows(config.flow, "flow"))
    for name, section in sections.items():
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            expected = _expectation(f.name, f.default, value)
            if expected:
                raise ModelError(f"the model's configuration has {name}.{f.name} = {value!r}, which is not {expected}.")
    if config.autoencoder.channels == 2:
        raise ModelError(
            "the model's configuration has autoencoder.channels = 2; lmppm models are gray (1) or RGB (3)."
        )


def _nested_flows(flow: FlowConfig, name: str) -> dict:
    """{"flow.far": ..., "flow.far.noisy": ...}: every flow nested in `flow`, by its path."""
    out: dict[str, FlowConfig] = {}
    for key in ("far", "noisy"):
        if (inner := getattr(flow, key)) is not None:
            out |= {f"{name}.{key}": inner, **_nested_flows(inner, f"{name}.{key}")}
    return out


def _expectation(name: str, default, value) -> str:
    """What `value` should have been ('' if it is fine), judged by the field's default's type."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, bool):
        return "" if isinstance(value, bool) else "true or false"
    if isinstance(default, (int, float)):
        number = is_int or (isinstance(default, float) and isinstance(value, float) and math.isfinite(value))
        low, high = LIMITS.get(name, (0, math.inf))
        return (
            ""
            if number and low <= value <= high
            else f"a {'number' if isinstance(default, float) else 'whole number'} from {low} to {high}"
        )
    if isinstance(default, str):
        return (
            ""
            if value in CHOICES.get(name, (value,)) and isinstance(value, str)
            else f"one of {', '.join(CHOICES.get(name, ('a string',)))}"
        )
    if isinstance(default, tuple):
        ok = isinstance(value, tuple) and all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= SIZE_LIMIT for v in value
        )
        return "" if ok else f"a list of whole numbers from 1 to {SIZE_LIMIT}"
    return ""
