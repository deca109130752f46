"""Options the CLI's commands share, declared once: the model reference, the device, and the flow
settings, which come from FlowConfig's own fields (config.FLOW_OPTIONS) so that a new flow setting
becomes an option of `restore` and `generate` with no change here."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import typing
from typing import Annotated

import typer

from lmppm_cli import names
from lmppm_cli.core.config import FLOW_OPTIONS, FlowConfig, FlowOverride

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
    str | None,
    _opt(help="Also write per-image scores (D and residual before and after, steps, time) to this .csv or .json file."),
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


def _parameter(f, owner, panel: str | None, flow: bool = False) -> inspect.Parameter:
    """The typer option of one config field (config.option): its name, type, default, help and bounds.
    A flow setting defaults to None (the model's own); a field with `parse` is read as text."""
    kind = typing.get_type_hints(owner)[f.name]
    meta = f.metadata
    limits = {k: meta[k] for k in ("min", "max") if k in meta}
    flag = meta.get("flag", f.name.replace("_", "-"))
    decls = (f"--{flag}/--no-{flag}",) if kind is bool else ()
    default = None if flow else meta.get("shown", f.default)
    if "parse" in meta:
        kind, default = str, None if default is None else ",".join(map(str, default))
    option = typer.Option(*decls, help=meta["help"], rich_help_panel=panel, show_default=not flow, **limits)
    annotation = Annotated[kind | None, option] if default is None else Annotated[kind, option]
    return inspect.Parameter(_name(f), inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _name(f) -> str:
    """The command's parameter for a config field: its option's name (`flag` where a field sets one)."""
    return f.metadata.get("flag", f.name).replace("-", "_")


def _extend(command, name: str, added: list[inspect.Parameter], collect):
    """`command` with `added` options in its signature; their values reach it as `name` = collect(values)."""
    signature = inspect.signature(command, eval_str=True)
    names = [p.name for p in added]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        given = {n: kwargs.pop(n, None) for n in names}
        return command(*args, **kwargs, **{name: collect(given)})

    own = [p for p in signature.parameters.values() if p.name != name]
    parameters = [*own, *added]
    wrapper.__signature__ = signature.replace(parameters=parameters)
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}  # evaluated: typer reads them here
    del wrapper.__wrapped__  # typer reads the new signature, not the command's
    return wrapper


def flow_options(command):
    """Give a command one option per user setting of FlowConfig (config.FLOW_OPTIONS), passed on whole
    as `flow` (a FlowOverride)."""
    added = [_parameter(f, FlowConfig, FLOW_PANEL, flow=True) for f in FLOW_OPTIONS]
    return _extend(command, "flow", added, lambda given: FlowOverride(**given))


def config_options(*classes, panel: str | None = None):
    """Give a command one option per field of these config classes that has a help text (config.option),
    passed on as `configs`: {class: {field: value}} (text parsed where the field says how)."""

    def fields_of(cls):
        return [f for f in dataclasses.fields(cls) if "help" in f.metadata]

    def collect(given: dict) -> dict:
        out = {}
        for cls in classes:
            values = {f.name: given[_name(f)] for f in fields_of(cls)}
            for f in fields_of(cls):
                if "parse" in f.metadata and isinstance(values[f.name], str):
                    values[f.name] = f.metadata["parse"](values[f.name])
            out[cls] = values
        return out

    def decorate(command):
        added = [_parameter(f, cls, panel) for cls in classes for f in fields_of(cls)]
        return _extend(command, "configs", added, collect)

    return decorate


def floats(text: str, option: str, count: int) -> tuple[float, ...]:
    """COUNT finite numbers separated by commas."""
    import math

    from lmppm_cli.core.errors import LmppmError

    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise LmppmError(f"{option} needs {count} finite numbers separated by commas, not {text!r}.")
    return values


def sides(text: str | None, option: str) -> tuple[int, ...] | None:
    """Positive whole numbers separated by commas (None stays None)."""
    from lmppm_cli.core.errors import LmppmError

    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise LmppmError(f"{option} needs positive whole numbers separated by commas, not {text!r}.")
    return values


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
