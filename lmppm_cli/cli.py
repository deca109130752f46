"""The `lmppm` command line: each command parses its options into the library's typed objects and calls
one library function; display.py shows what comes back. Errors are formatted once, in `friendly`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

# Before torch loads: OpenMP threads that spin while they wait collapse on cores other work shares
# (docs/speed.md). A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer  # noqa: E402

from lmppm_cli import __version__  # noqa: E402
from lmppm_cli import options as o  # noqa: E402
from lmppm_cli.cli_errors import DEBUG, OneSentenceErrors, friendly  # noqa: E402
from lmppm_cli.core.errors import EXIT_CODES, LmppmError  # noqa: E402
from lmppm_cli.display import out  # noqa: E402

app = typer.Typer(
    cls=OneSentenceErrors,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    help="Learned, manifold-aware image restoration and generation (LMPPM).\n\nExit codes: "
    + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items())
    + ".",
)


def _version(value: bool) -> None:
    if value:
        out.print(f"lmppm {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads torch may use [default: one per core].")
    ] = None,
) -> None:
    if ctx.invoked_subcommand is None:  # `lmppm` alone: the help, as a usage error
        typer.echo(ctx.get_help())
        raise typer.Exit(2)
    DEBUG["on"] = DEBUG["on"] or debug
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


@app.command(short_help="Restore degraded images blindly by the latent flow (Alg. 4).")
@friendly
def restore(
    inputs: o.Files,
    output: o.Output,
    model: o.PickedModelOpt = None,
    method: o.MethodOpt = None,
    revision: o.RevisionOpt = None,
    offline: o.OfflineOpt = False,
    precision: o.RestorePrecisionOpt = "auto",
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
    alpha: o.AlphaOpt = None,
    beta: o.BetaOpt = None,
    steps: o.StepsOpt = None,
    tol: o.TolOpt = None,
    sigma_ker: o.SigmaKerOpt = None,
    schedule: o.ScheduleOpt = None,
    adaptive: o.AdaptiveOpt = None,
    top_k: o.TopKOpt = None,
) -> None:
    """Restore degraded images blindly with the latent flow of Alg. 4 (or a baseline with --method).
    With no --model, each image goes to the bundled model of its domain (digits, faces, photos)."""
    from lmppm_cli.files.plan import OutputRules, plan_outputs
    from lmppm_cli.files.references import check_reference

    flow = o.flow_override(locals())
    rules = OutputRules(save_trajectory, skip_existing, overwrite, suffix)
    plan_outputs(list(inputs), output, rules)  # inputs, -o and the model refused here, before torch loads
    if model is not None:
        check_reference(model)
    from lmppm_cli import display, service
    from lmppm_cli.methods.ldm import LdmOptions

    settings = service.RestoreSettings(
        method, flow, LdmOptions(seed, start_step), precision, service.Tiling(tile, tile_overlap, batch_size)
    )
    request = service.RestoreRequest(
        tuple(inputs), output, model, settings, revision, offline, device, tuple(report or ()), rules, strict
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
    alpha: o.AlphaOpt = None,
    beta: o.BetaOpt = None,
    steps: o.StepsOpt = None,
    tol: o.TolOpt = None,
    sigma_ker: o.SigmaKerOpt = None,
    schedule: o.ScheduleOpt = None,
    adaptive: o.AdaptiveOpt = None,
    top_k: o.TopKOpt = None,
) -> None:
    """Generate new images from pure Gaussian noise through the flow (Fig. 9)."""
    from lmppm_cli import display
    from lmppm_cli.core.precision import autocast
    from lmppm_cli.files.devices import pick_device
    from lmppm_cli.files.generate_files import generate_files
    from lmppm_cli.files.weights import load_model, resolve_model

    flow = o.flow_override(locals())
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
    workers: o.WorkersOpt = 2,
    device: o.DeviceOpt = "auto",
    resume: o.ResumeOpt = False,
    epochs: o.EpochsOpt = 200,
    batch_size: o.BatchSizeOpt = 128,
    lr: o.LrOpt = 1e-3,
    lr_distance: o.LrDistanceOpt = 1e-3,
    sigma_d: o.SigmaDOpt = 0.4,
    sigma_range: o.SigmaRangeOpt = None,
    sigma_power: o.SigmaPowerOpt = 1.0,
    freeze_init: o.FreezeInitOpt = False,
    precision: o.TrainPrecisionOpt = "fp32",
    patience: o.PatienceOpt = 10,
    lr_schedule: o.LrScheduleOpt = "constant",
    lr_warmup: o.LrWarmupOpt = 0,
    seed: o.TrainSeedOpt = 0,
    neighbours: o.NeighboursOpt = "exact",
    calibrate: o.CalibrateOpt = True,
    min_flow_gain: o.MinFlowGainOpt = 0.0,
    calibration_grid: o.CalibrationGridOpt = "full",
    calibration_noise: o.CalibrationNoiseOpt = None,
    camera: o.CameraOpt = 0.0,
    jpeg: o.JpegOpt = 0.0,
    camera_pipeline: o.CameraPipelineOpt = 0.0,
    loss: o.LossOpt = "l2",
    ema: o.EmaOpt = 0.0,
    arch: o.ArchOpt = "conv",
    latent_dim: o.LatentDimOpt = 18,
    widths: o.WidthsOpt = None,
    projections: o.ProjectionsOpt = True,
    skip_dropout: o.SkipDropoutOpt = 0.0,
    unshuffle: o.UnshuffleOpt = 1,
    residual: o.ResidualOpt = False,
    depth: o.DepthOpt = 2,
    noise_map: o.NoiseMapOpt = False,
    ldm_hidden: o.LdmHiddenOpt = "256,256,256",
) -> None:
    """Train an LMPPM model (F, G, D_S and the latent bank) with the loss of Eq. 20, or a baseline.
    Several processes: torchrun --nproc-per-node N -m lmppm_cli train ... (DistributedDataParallel)."""
    request = o.train_request(locals())  # the options by name; TrainConfig checks itself before torch loads
    from lmppm_cli import api, display

    display.run_training(api.train, request)


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
    main()
