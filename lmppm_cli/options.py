"""Options of the CLI's commands, declared once each as a typer annotation; an option that sets a config
field (a flow setting, a training or model option) takes its help and bounds from that field
(config.option), and tests/test_cli_options.py checks that every such field has its option."""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Any

import typer

from lmppm_cli import names
from lmppm_cli.core.config import AutoencoderConfig, DiffusionConfig, FlowConfig, FlowOverride, comma_numbers
from lmppm_cli.core.train_config import DataSource, LossWeights, RunOptions, TrainConfig, TrainRequest

FLOW_PANEL = "Flow (Alg. 4) [default: the model's]"


def _opt(*decls, **kw):
    return typer.Option(*decls, **kw)


def _one_of(choices: tuple[str, ...], optional: bool = False, *decls, **kw):
    """An option whose value must be one of `choices`, checked as it is parsed, before any of our modules
    loads (a plain sentence: typer's own Literal check prefixes its message with "Value error,")."""

    def parse(value: str) -> str:
        if value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(map(repr, choices))}.")
        return value

    kw.setdefault("metavar", "[" + "|".join(choices) + "]")
    return Annotated[str | None if optional else str, typer.Option(*decls, parser=parse, **kw)]


def _device(spec: str) -> str:
    """--device auto|cpu|mps|cuda|cuda:N, its spelling checked before torch loads (files/devices.py
    checks that it exists)."""
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", spec.strip().lower()):
        raise typer.BadParameter(f"{spec!r} is not a device; use auto, cpu, mps, cuda or cuda:N.")
    return spec


Files = Annotated[
    list[str], typer.Argument(help="Image files, folders (recursive) or glob patterns.", show_default=False)
]
Output = Annotated[str, _opt("--output", "-o", help="Output file (one input) or folder.", show_default=False)]
OutputFolder = Annotated[str, _opt("--output", "-o", help="Folder to write.", show_default=False)]
ModelOpt = Annotated[str, _opt("--model", "-m", help="Model file, bundled model name, or Hugging Face Hub repo id.")]
PickedModelOpt = Annotated[
    str | None,
    _opt(
        "--model",
        "-m",
        help="Model file, bundled name or Hub repo id [default: the method's bundled model; for the flow, each image's domain model].",
    ),
]
MethodOpt = _one_of(
    names.RESTORING,
    True,
    metavar="METHOD",
    help=f"{', '.join(names.RESTORING)}: see `lmppm methods` [default: the model's own].",
)
RevisionOpt = Annotated[str | None, _opt(help="Hub revision (branch, tag or commit) for a Hub model.")]
OfflineOpt = Annotated[bool, _opt("--offline", help="Use only the local Hub cache, never the network.")]
DeviceOpt = Annotated[str, _opt(callback=_device, help="auto (cuda, then mps, then cpu), cpu, mps, cuda or cuda:N.")]
BatchOpt = Annotated[int, _opt(min=1, help="Images (or tiles) per forward pass.")]
PrecisionOpt = _one_of(
    names.PRECISIONS,
    False,
    help="Network precision: fp32, or bf16 / fp16 on a GPU (bf16 also on CPUs with native bf16); the flow's latents stay fp32.",
)
RestorePrecisionOpt = _one_of(
    (names.AUTO, *names.PRECISIONS),
    False,
    help="Network precision: auto (fp32, or bf16 where the model picked for an image was measured within 0.05 dB "
    "of fp32 and the device computes bf16 natively), fp32, or bf16 / fp16 on a GPU (bf16 also on CPUs with native "
    "bf16); the flow's latents stay fp32.",
)
SeedOpt = Annotated[int, _opt(help="Seed; the same seed gives the same output.")]
StartStepOpt = Annotated[int | None, _opt(min=0, max=1999, help="ldm only: the step its reverse chain starts from.")]
LdmSeedOpt = Annotated[int, _opt(help="ldm only: seed of its sampling noise.")]
TrajectoryOpt = Annotated[
    bool, _opt("--save-trajectory", help="Also write NAME.trajectory.png: the image after each step.")
]
TileOpt = Annotated[
    int | None,
    _opt(
        min=0,
        help="Tiles of N pixels for images larger than the model (0: resize whole images) [default: a U-Net's input size, 0 for conv models].",
    ),
]
OverlapOpt = Annotated[
    int | None, _opt(min=0, help="Pixels shared by neighbouring tiles [default: a quarter of the tile].")
]
ReportOpt = Annotated[
    list[str] | None,
    _opt(
        help="Also write per-image scores (D, residual and noise before and after, steps, time) to this .csv or .json "
        "file, or a before/after page to this .html file (self-contained: open it in any browser); repeatable."
    ),
]
StrictOpt = Annotated[
    bool,
    _opt("--strict", help="With no --model: stop, writing nothing, when an image is far from the picked model's data."),
]
SkipExistingOpt = Annotated[
    bool,
    _opt("--skip-existing", help="Leave out the files whose result already exists (to finish an interrupted run)."),
]
OverwriteOpt = Annotated[
    bool,
    _opt(
        "--overwrite/--no-overwrite",
        help="Replace results that exist (the run says how many), or refuse the run before writing anything.",
    ),
]
SuffixOpt = Annotated[
    str, _opt(help="Added to each result's name in an output folder, e.g. _clean: a.png -> a_clean.png.")
]
QuietOpt = Annotated[bool, _opt("--quiet", "-q", help="Say nothing but errors and failed files.")]
KindOpt = _one_of(names.DEGRADATIONS, False, help="Which degradation (Table 6).", show_default=False)
SeverityOpt = Annotated[str, _opt(help="mild, severe (Table 6) or an explicit strength.")]
DomainOpt = _one_of(names.DOMAINS, False, help="Which Table 6 presets (they differ for noise).")
CountOpt = Annotated[int, _opt("--n", min=1, help="Number of images.")]
ProgressionOpt = Annotated[bool, _opt(help="Also write progression.png: the first 8 samples after each step.")]
StartOpt = _one_of(names.STARTS, False, help="latent: Gaussian noise in latent space; pixel: F(noise image).")
# train
DataArg = Annotated[
    str,
    typer.Argument(
        help="Folder of images (recursive) or a built-in dataset: mnist-5k, mnist, lfw-faces, photo-patches, photo-crops.",
        show_default=False,
    ),
]
RunOpt = Annotated[
    str, _opt("--output", "-o", help="Run folder: checkpoint, model.safetensors, summary.", show_default=False)
]
TrainMethodOpt = _one_of(names.TRAINED, False, help="What to train: LMPPM, or a baseline.")
BaseOpt = Annotated[str | None, _opt(help="ldm only: the trained DAE whose latent space it models.")]
InitOpt = Annotated[
    str | None,
    _opt(
        help="lmppm or dae: start F and G from this model's autoencoder; a narrower or shallower U-Net is grown "
        "to --widths and --depth, computing the same at the start (not in the paper)."
    ),
]
LambdasOpt = Annotated[str, _opt(help="lambda_1..lambda_6 of Eq. 20, comma separated.")]
LambdaDenoiseOpt = Annotated[
    float, _opt(min=0.0, help="Weight of ||x - G(F(x_noisy))||^2 added to Eq. 20 (not in the paper).")
]
ImageSizeOpt = Annotated[
    str | None,
    _opt(help="Model input size, N or HxW [default: 32 photo-patches, 64 photo-crops, 25 lfw-faces, else 28]."),
]
ChannelsOpt = Annotated[int | None, _opt(min=1, max=4, help="1 (gray) or 3 (RGB) [default: from the data].")]
ExtraPhotosOpt = Annotated[
    str | None,
    _opt(help="photo-crops: a folder of whole photos (Debian's wallpapers; bash examples/wallpapers.sh DIR)."),
]
CropSidesOpt = Annotated[
    str | None,
    _opt(help="photo-crops: the longer sides its training photos are cropped at, e.g. 768,1280 [default: 768]."),
]
DataDirOpt = Annotated[str | None, _opt(help="Download folder for torchvision datasets.")]
StreamOpt = Annotated[
    bool, _opt(help="Folder only: decode the images once into a memory-mapped cache and train from it.")
]
CacheOpt = Annotated[str | None, _opt(help="--stream: folder for the decoded cache [default: RUN/cache].")]
ResumeOpt = Annotated[bool, _opt(help="Continue the run in -o exactly where it stopped.")]
# bench
SuiteOpt = _one_of(
    names.SUITES,
    False,
    metavar="SUITE",
    help="mnist (Table 1), faces (Table 2), circle (Figs. 4-7), generation (Fig. 9), photos, photo-pick, camera, mnist-noise, photo-noise or speed.",
    show_default=False,
)
BenchOutputOpt = Annotated[str, _opt("--output", "-o", help="Folder for results.json, results.md and grids.")]
LimitOpt = Annotated[
    int | None, _opt(min=2, help="Use only N test images, spread over the classes; speed: batch sizes up to N.")
]
DrawsOpt = Annotated[int, _opt(min=1, max=20, help="Seeded draws of every degradation (the same for every method).")]
DegradationsOpt = Annotated[str | None, _opt(help="Comma-separated kinds to run [default: all of the suite].")]
SuiteModelOpt = Annotated[str | None, _opt("--model", "-m", help="The LMPPM model [default: the suite's bundled one].")]
AblationOpt = Annotated[str | None, _opt(help="The LMPPM model without latent-to-skip projections.")]
DaeOpt = Annotated[str | None, _opt(help="The DAE baseline (and Ablation_dae).")]
LdmOpt = Annotated[str | None, _opt(help="The LDM baseline.")]
ClassifierOpt = Annotated[str | None, _opt(help="The domain classifier for FID and accuracy.")]
ClassicalOpt = Annotated[bool, _opt(help="Add rows for the classical blind denoisers (BM3D, NL-means, wavelet).")]
QuickOpt = Annotated[
    bool,
    _opt(
        "--quick",
        help="A short run: 50 images (2 photo scenes), one draw, no classical rows; figures indicative only.",
    ),
]
SplitOpt = _one_of(names.SPLITS, False, help="mnist: the test digits (every reported figure) or the validation digits.")


def _field(owner: type, name: str, decls: tuple[str, ...], panel: str, show_default: bool = True) -> Any:
    """The typer option of the config field `name` of `owner` (config.option): its help and bounds."""
    meta = next(f for f in dataclasses.fields(owner) if f.name == name).metadata
    return typer.Option(
        *decls,
        help=meta["help"],
        min=meta.get("min"),
        max=meta.get("max"),
        rich_help_panel=panel,
        show_default=show_default,
    )


def _flow(name: str, *decls: str) -> Any:
    """A flow setting (FlowConfig): None, its default, keeps the model's own."""
    return _field(FlowConfig, name, decls, FLOW_PANEL, show_default=False)


AlphaOpt = Annotated[float | None, _flow("alpha")]
BetaOpt = Annotated[float | None, _flow("beta")]
StepsOpt = Annotated[int | None, _flow("steps")]
TolOpt = Annotated[float | None, _flow("tol")]
SigmaKerOpt = Annotated[float | None, _flow("sigma_ker")]
ScheduleOpt = Annotated[str | None, _flow("schedule")]
AdaptiveOpt = Annotated[bool | None, _flow("adaptive", "--adaptive/--no-adaptive")]
TopKOpt = Annotated[int | None, _flow("top_k")]


def _train(owner: type, name: str, *decls: str) -> Any:
    return _field(owner, name, decls, TRAIN_PANEL)


def _flag(owner: type, name: str) -> Any:
    return _train(owner, name, f"--{name.replace('_', '-')}/--no-{name.replace('_', '-')}")


TRAIN_PANEL = "Training and model"
EpochsOpt = Annotated[int, _train(TrainConfig, "epochs")]
BatchSizeOpt = Annotated[int, _train(TrainConfig, "batch_size")]
LrOpt = Annotated[float, _train(TrainConfig, "lr")]
LrDistanceOpt = Annotated[float, _train(TrainConfig, "lr_distance")]
SigmaDOpt = Annotated[float, _train(TrainConfig, "sigma_d")]
SigmaRangeOpt = Annotated[str | None, _train(TrainConfig, "sigma_range")]
SigmaPowerOpt = Annotated[float, _train(TrainConfig, "sigma_power")]
FreezeInitOpt = Annotated[bool, _flag(TrainConfig, "freeze_init")]
TrainPrecisionOpt = Annotated[str, _train(TrainConfig, "precision")]
PatienceOpt = Annotated[int, _train(TrainConfig, "patience")]
LrScheduleOpt = Annotated[str, _train(TrainConfig, "lr_schedule")]
LrWarmupOpt = Annotated[int, _train(TrainConfig, "lr_warmup")]
TrainSeedOpt = Annotated[int, _train(TrainConfig, "seed")]
NeighboursOpt = Annotated[str, _train(TrainConfig, "neighbours")]
CalibrateOpt = Annotated[bool, _flag(TrainConfig, "calibrate")]
MinFlowGainOpt = Annotated[float, _train(TrainConfig, "min_flow_gain")]
CalibrationGridOpt = Annotated[str, _train(TrainConfig, "calibration_grid")]
CalibrationNoiseOpt = Annotated[str | None, _train(TrainConfig, "calibration_noise")]
CameraOpt = Annotated[float, _train(TrainConfig, "camera")]
JpegOpt = Annotated[float, _train(TrainConfig, "jpeg")]
CameraPipelineOpt = Annotated[float, _train(TrainConfig, "camera_pipeline")]
LossOpt = Annotated[str, _train(TrainConfig, "loss")]
EmaOpt = Annotated[float, _train(TrainConfig, "ema")]
ArchOpt = Annotated[str, _train(AutoencoderConfig, "arch")]
LatentDimOpt = Annotated[int, _train(AutoencoderConfig, "latent_dim")]
WidthsOpt = Annotated[str | None, _train(AutoencoderConfig, "widths")]
ProjectionsOpt = Annotated[bool, _flag(AutoencoderConfig, "projections")]
SkipDropoutOpt = Annotated[float, _train(AutoencoderConfig, "skip_dropout")]
UnshuffleOpt = Annotated[int, _train(AutoencoderConfig, "unshuffle")]
ResidualOpt = Annotated[bool, _flag(AutoencoderConfig, "residual")]
DepthOpt = Annotated[int, _train(AutoencoderConfig, "depth")]
NoiseMapOpt = Annotated[bool, _flag(AutoencoderConfig, "noise_map")]
LdmHiddenOpt = Annotated[str, _train(DiffusionConfig, "hidden", "--ldm-hidden")]
WorkersOpt = Annotated[
    int, _opt(min=0, help="--stream: DataLoader processes that decode the files and read the batches.")
]


def image_size_of(data: str, text: str | None, channels: int | None) -> tuple[int, int, int]:
    """(height, width, channels) of `lmppm train`: --image-size N or HxW (default: the dataset's native
    size), --channels (default: sniffed from the data)."""
    from lmppm_cli.core.errors import LmppmError

    try:
        parts = [int(p) for p in text.lower().split("x")] if text is not None else []
    except ValueError:
        parts = [0]
    if len(parts) > 2 or (parts and min(parts) < 1):
        raise LmppmError(f"--image-size must be N or HxW with positive integers, not {text!r}.")
    from lmppm_cli.files.data import NATIVE_SIZE, sniff_channels  # torch loads here, once the options are checked

    parts = parts or [NATIVE_SIZE.get(data, 28)]
    return parts[0], parts[-1], channels or sniff_channels(data)


def flow_override(values: dict[str, Any]) -> FlowOverride:
    """The flow settings among a command's option values (its `locals()`), by their FlowConfig names."""
    return FlowOverride(**{f.name: values[f.name] for f in dataclasses.fields(FlowOverride)})


def _fields(owner: type, values: dict[str, Any]) -> dict[str, Any]:
    """The values of `owner`'s options (its fields with a help text, by name), text parsed where the
    field says how."""
    out = {}
    for f in dataclasses.fields(owner):
        if "help" in f.metadata and f.name in values:
            value = values[f.name]
            out[f.name] = f.metadata["parse"](value) if "parse" in f.metadata and isinstance(value, str) else value
    return out


def train_request(values: dict[str, Any]) -> TrainRequest:
    """The TrainRequest of `lmppm train`'s option values (its `locals()`): TrainConfig is built (and so
    checked) before the data's size is read, which loads torch."""
    weights = LossWeights(*comma_numbers(values["lambdas"], float, "--lambdas", 6))
    weights = dataclasses.replace(weights, denoise=values["lambda_denoise"])
    tcfg = TrainConfig(**_fields(TrainConfig, values), init=values["init"] or "", weights=weights)
    height, width, channels = image_size_of(values["data"], values["image_size"], values["channels"])
    ae = AutoencoderConfig(channels=channels, height=height, width=width, **_fields(AutoencoderConfig, values))
    data = DataSource(
        name=values["data"],
        data_dir=values["data_dir"],
        stream=values["stream"],
        cache=values["cache"],
        workers=values["workers"],
        extra_photos=values["extra_photos"],
        crop_sides=None if values["crop_sides"] is None else comma_numbers(values["crop_sides"], int, "--crop-sides"),
    )
    run = RunOptions(values["output"], values["device"], values["resume"], values["base"])
    diffusion = DiffusionConfig(hidden=comma_numbers(values["ldm_hidden"], int, "--ldm-hidden"))
    return TrainRequest(data, run, values["method"], ae, diffusion, tcfg)
