"""The `lmppm` command line: each command parses its options into the library's typed objects and calls
one library function; display.py shows what comes back. Errors are formatted once, in `friendly`."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Annotated

# Before torch loads: OpenMP threads that spin while they wait collapse on cores other work shares
# (docs/speed.md). A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer  # noqa: E402

from lmppm_cli import __version__  # noqa: E402
from lmppm_cli import options as o  # noqa: E402
from lmppm_cli.core.config import AutoencoderConfig, DiffusionConfig, FlowOverride  # noqa: E402
from lmppm_cli.core.errors import EXIT_CODES, LmppmError  # noqa: E402
from lmppm_cli.core.train_config import TrainConfig  # noqa: E402
from lmppm_cli.display import err, out  # noqa: E402
from lmppm_cli.options import config_options, flow_options  # noqa: E402

app = typer.Typer(
    rich_markup_mode=None,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Learned, manifold-aware image restoration and generation (LMPPM).\n\nExit codes: "
    + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items())
    + ".",
)
_state = {"debug": bool(os.environ.get("LMPPM_DEBUG"))}


def _usage_error(self, file=None) -> None:
    """A mistyped command, option or value: one sentence, as every other error (click's own would add
    the usage line and a hint around it)."""
    err.print(f"[red]error:[/red] {self.format_message()}", highlight=False, soft_wrap=True)


# typer's click (vendored since typer 0.22) raises these; reached through a public class of typer's
UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
UsageError.show = _usage_error  # errors are formatted once, here and in `friendly`


def _version(value: bool) -> None:
    if value:
        out.print(f"lmppm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads torch may use [default: one per core].")
    ] = None,
) -> None:
    _state["debug"] = _state["debug"] or debug
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def friendly(command):
    """Turn known errors into one sentence and a non-zero exit code; a traceback only with --debug."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except LmppmError as exc:
            if _state["debug"]:
                raise
            err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            then = " (rerun with --skip-existing to finish a folder)" if command.__name__ == "restore" else ""
            err.print(f"interrupted; every file written so far is whole{then}.")
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - the edge of the program
            if _state["debug"]:
                raise
            err.print(
                f"[red]internal error:[/red] {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                soft_wrap=True,
            )
            raise typer.Exit(70) from None

    return wrapper


@app.command(short_help="Restore degraded images blindly by the latent flow (Alg. 4).")
@friendly
@flow_options
def restore(
    inputs: o.Files,
    output: o.Output,
    model: o.PickedModelOpt = None,
    method: o.MethodOpt = None,
    revision: o.RevisionOpt = None,
    offline: o.OfflineOpt = False,
    precision: o.PrecisionOpt = "fp32",
    start_step: o.StartStepOpt = None,
    seed: o.LdmSeedOpt = 0,
    device: o.DeviceOpt = "auto",
    batch_size: o.BatchOpt = 64,
    save_trajectory: o.TrajectoryOpt = False,
    tile: o.TileOpt = None,
    tile_overlap: o.OverlapOpt = None,
    report: o.ReportOpt = None,
    strict: o.StrictOpt = False,
    skip_existing: o.SkipExistingOpt = False,
    overwrite: o.OverwriteOpt = True,
    suffix: o.SuffixOpt = "",
    quiet: o.QuietOpt = False,
    flow: FlowOverride = None,
) -> None:
    """Restore degraded images blindly with the latent flow of Alg. 4 (or a baseline with --method).
    With no --model, each image goes to the bundled model of its domain (digits, faces, photos)."""
    from lmppm_cli.files.plan import OutputRules, plan_outputs
    from lmppm_cli.files.references import check_reference

    rules = OutputRules(save_trajectory, skip_existing, overwrite, suffix)
    plan_outputs(list(inputs), output, rules)  # inputs, -o and the model refused here, before torch loads
    if model is not None:
        check_reference(model)
    from lmppm_cli import display, service
    from lmppm_cli.methods.ldm import LdmOptions

    request = service.RestoreRequest(
        inputs=tuple(inputs),
        output=output,
        model=model,
        method=method,
        flow=flow,
        ldm=LdmOptions(seed, start_step),
        revision=revision,
        offline=offline,
        device=device,
        precision=precision,
        tiling=service.Tiling(tile, tile_overlap, batch_size),
        report=report,
        outputs=rules,
        strict=strict,
    )
    display.run_restore(service.restore, request, quiet)


@app.command(short_help="Degrade images reproducibly, to build test sets.")
@friendly
def degrade(
    inputs: o.Files,
    output: o.Output,
    kind: o.KindOpt,
    severity: o.SeverityOpt = "severe",
    domain: o.DomainOpt = "digits",
    seed: o.SeedOpt = 0,
    overwrite: o.OverwriteOpt = True,
    suffix: o.SuffixOpt = "",
) -> None:
    """Degrade images reproducibly (Appendix B.2), to build test sets."""
    from lmppm_cli.files.plan import OutputRules, plan_outputs, record_outputs

    jobs = plan_outputs(inputs, output, OutputRules(overwrite=overwrite, suffix=suffix))  # before torch loads
    from lmppm_cli import display
    from lmppm_cli.core.degradations import strength
    from lmppm_cli.files.degrade_files import degrade_files

    value = strength(kind, severity, domain)
    with display.bar() as progress:
        task = progress.add_task(f"{kind} {value:g}", total=len(jobs))
        result = degrade_files(jobs, kind, value, seed, lambda job: progress.advance(task))
    record_outputs(inputs, output, result.written)
    display.report(result, "degraded")


@app.command(short_help="Generate new images from pure noise through the flow.")
@friendly
@flow_options
def generate(
    output: o.OutputFolder,
    n: o.CountOpt = 64,
    model: o.ModelOpt = "mnist",
    revision: o.RevisionOpt = None,
    offline: o.OfflineOpt = False,
    seed: o.SeedOpt = 0,
    device: o.DeviceOpt = "auto",
    batch_size: o.BatchOpt = 256,
    progression: o.ProgressionOpt = False,
    start: o.StartOpt = "latent",
    precision: o.PrecisionOpt = "fp32",
    flow: FlowOverride = None,
) -> None:
    """Generate new images from pure Gaussian noise through the flow (Fig. 9)."""
    from lmppm_cli import display
    from lmppm_cli.core.precision import autocast
    from lmppm_cli.files.devices import pick_device
    from lmppm_cli.files.generate_files import generate_files
    from lmppm_cli.files.weights import load_model, resolve_model

    if Path(output).is_file():
        raise LmppmError(f"-o {output} is a file; generate writes a folder.")
    if start not in ("latent", "pixel"):
        raise LmppmError(f"--start must be latent or pixel, not {start!r}.")
    net = load_model(resolve_model(model, revision=revision, offline=offline), pick_device(device))
    autocast(net.device, precision)  # refused here, before anything is written, if it cannot run
    result = generate_files(net, n, output, seed, flow, batch_size, progression, start, precision)
    display.report(result, "wrote")


@app.command(short_help="Train a model (LMPPM or a baseline) on a set of images.")
@friendly
@config_options(TrainConfig, AutoencoderConfig, DiffusionConfig, panel="Training and model")
def train(
    data: o.DataArg,
    output: o.RunOpt,
    method: o.TrainMethodOpt = "lmppm",
    base: o.BaseOpt = None,
    init: o.InitOpt = None,
    lambdas: o.LambdasOpt = "1,1,1,1,1,1",
    lambda_denoise: o.LambdaDenoiseOpt = 0.0,
    image_size: o.ImageSizeOpt = None,
    channels: o.ChannelsOpt = None,
    extra_photos: o.ExtraPhotosOpt = None,
    crop_sides: o.CropSidesOpt = None,
    data_dir: o.DataDirOpt = None,
    stream: o.StreamOpt = False,
    cache: o.CacheOpt = None,
    device: o.DeviceOpt = "auto",
    resume: o.ResumeOpt = False,
    configs: dict = None,
) -> None:
    """Train an LMPPM model (F, G, D_S and the latent bank) with the loss of Eq. 20, or a baseline.
    Several processes: torchrun --nproc-per-node N -m lmppm_cli train ... (DistributedDataParallel)."""
    from lmppm_cli.core.train_config import LossWeights

    weights = LossWeights(*o.floats(lambdas, "--lambdas", 6), denoise=lambda_denoise)
    tcfg = TrainConfig(**configs[TrainConfig], init=init or "", weights=weights)  # checked before torch loads
    height, width, ch = o.image_size_of(data, image_size, channels)
    from lmppm_cli import display, training

    ae = AutoencoderConfig(channels=ch, height=height, width=width, **configs[AutoencoderConfig])
    crops = o.sides(crop_sides, "--crop-sides")
    source = training.DataSource(data, data_dir, stream, cache, tcfg.workers, extra_photos, crops)
    diffusion = DiffusionConfig(**configs[DiffusionConfig])
    display.run_training(training.run, method, (ae, diffusion), tcfg, source, output, device, resume, base)


@app.command(short_help="Run one of the paper's experiments, or a speed bench.")
@friendly
def bench(
    suite: o.SuiteOpt,
    output: o.BenchOutputOpt = "bench-results",
    seed: o.SeedOpt = 0,
    limit: o.LimitOpt = None,
    draws: o.DrawsOpt = 3,
    degradations: o.DegradationsOpt = None,
    model: o.SuiteModelOpt = None,
    ablation: o.AblationOpt = None,
    dae: o.DaeOpt = None,
    ldm: o.LdmOpt = None,
    classifier: o.ClassifierOpt = None,
    classical: o.ClassicalOpt = True,
    split: o.SplitOpt = "test",
    extra_photos: o.ExtraPhotosOpt = None,
    quick: o.QuickOpt = False,
    revision: o.RevisionOpt = None,
    offline: o.OfflineOpt = False,
    device: o.DeviceOpt = "auto",
) -> None:
    """Run one of the paper's experiments: tables (Markdown, JSON) and comparison grids."""
    from lmppm_cli import display
    from lmppm_cli.experiments.bench import BenchOptions, run_bench

    given = {"lmppm": model, "ablation": ablation, "dae": dae, "ldm": ldm, "classifier": classifier}
    options = BenchOptions(
        seed=seed,
        limit=limit,
        draws=draws,
        degradations=tuple(k.strip() for k in degradations.split(",")) if degradations else None,
        classical=classical,
        split=split,
        device=device,
        models={k: v for k, v in given.items() if v},
        extra_photos=extra_photos,
        revision=revision,
        offline=offline,
        quick=quick,
    )
    display.bench(suite, output, options, run_bench)


@app.command(short_help="List the bundled models and those in the Hub cache.")
@friendly
def models(
    paths: Annotated[
        list[str] | None,
        typer.Argument(help="Also list model files and Hub-style folders here (recursive).", show_default=False),
    ] = None,
    cache_dir: Annotated[
        str | None, typer.Option(help="Hugging Face Hub cache to scan [default: the Hub client's].")
    ] = None,
) -> None:
    """List the bundled models, the lmppm models in the Hub cache and any given local ones."""
    from lmppm_cli import display
    from lmppm_cli.files.catalog import bundled_entries, hub_entries, local_entries

    display.models(bundled_entries() + hub_entries(cache_dir) + local_entries(paths or []))


@app.command("methods", short_help="List every method: what it needs, does and trains.")
@friendly
def list_methods() -> None:
    """List the methods of the registry: what each needs, does and restores with by default."""
    from lmppm_cli import display, methods

    display.methods(methods.REGISTRY.values(), methods.default_model)


@app.command(short_help="Write a Hugging Face Hub model repo for a model.")
@friendly
def export(
    source: Annotated[
        str, typer.Argument(help="A training run folder, a model file or a model name.", show_default=False)
    ],
    output: Annotated[str, typer.Option("--output", "-o", help="Folder to write (new or empty).", show_default=False)],
    name: Annotated[
        str | None, typer.Option(help="Model name in the card [default: the run folder's or file's name].")
    ] = None,
    license: Annotated[str, typer.Option(help="License in the card's metadata.")] = "mit",
    bench: Annotated[
        str | None, typer.Option(help="A `lmppm bench` results.json whose table goes into the card.")
    ] = None,
    half: Annotated[
        bool, typer.Option(help="Store the weights as float16: half the file; they load back as float32.")
    ] = False,
) -> None:
    """Write a Hugging Face Hub model repo: model.safetensors, config.json and a model card."""
    from lmppm_cli.files.hub import export_model

    written = export_model(source, output, name=name, license=license, bench=bench, half=half)
    names = ", ".join(p.name for p in written)
    out.print(f"wrote {names} to {output}; upload with: huggingface-cli upload OWNER/NAME {output}")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
