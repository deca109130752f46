"""The `lmppm` command line: parse options, resolve the model and device, call the core, show results."""

from __future__ import annotations

import functools
import math
import os
import sys
from pathlib import Path
from typing import Annotated

# Before torch loads: OpenMP threads that spin while they wait collapse on cores other work shares
# (500 digits restored beside two busy processes: 11.7 s spinning, 6.8 s passive). A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from lmppm_cli import __version__  # noqa: E402
from lmppm_cli.core.config import FlowOverride  # noqa: E402
from lmppm_cli.core.errors import EXIT_CODES, LmppmError  # noqa: E402

app = typer.Typer(
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Learned, manifold-aware image restoration and generation (LMPPM).\n\nExit codes: "
    + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items())
    + ".",
)
err = Console(stderr=True)
out = Console()
_state = {"debug": bool(os.environ.get("LMPPM_DEBUG"))}

ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="Model file, bundled model name, or Hugging Face Hub repo id.")
]
RevisionOpt = Annotated[str | None, typer.Option(help="Hub revision (branch, tag or commit) for a Hub model.")]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="Use only the local Hub cache, never the network.")]
DeviceOpt = Annotated[str, typer.Option(help="auto (cuda, then mps, then cpu), cpu, mps, cuda or cuda:N.")]
StepsOpt = Annotated[int | None, typer.Option(min=0, help="Flow step budget (default: the model's).")]
AlphaOpt = Annotated[
    float | None,
    typer.Option(
        min=0.0, max=1.0, help="Distance-gradient step (0 with the adaptive step off: D unused, Ablation_lmppm)."
    ),
]
BetaOpt = Annotated[float | None, typer.Option(min=0.0, max=1.0, help="Kernel-mean weight of Eq. 21.")]
SigmaKerOpt = Annotated[float | None, typer.Option(min=1e-6, help="Kernel width of Eq. 21 (default: the model's).")]
ScheduleOpt = Annotated[str | None, typer.Option(help="Step sizes: constant (paper) or growing.")]
AdaptiveOpt = Annotated[
    bool | None,
    typer.Option(
        "--adaptive/--no-adaptive",
        help="Cap the kernel step at the learned distance D, so images already on the manifold move little (not in the paper) [default: the model's].",
        show_default=False,
    ),
]
BatchOpt = Annotated[int, typer.Option(min=1, help="Images per forward pass.")]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        help="Network precision: fp32, or bf16 / fp16 under autocast on a GPU (the flow's latents and kernel mean stay fp32); bf16 also on CPUs with native bf16 (AMX, AVX-512 BF16)."
    ),
]


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
        int | None, typer.Option(min=1, help="CPU threads torch may use [default: torch's, one per core].")
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
            err.print(
                "interrupted; every file written so far is whole (`lmppm restore --skip-existing` finishes a folder run)."
            )
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


def _load(model: str, revision, offline, device: str, method: str | None = None):
    from lmppm_cli.files.devices import pick_device
    from lmppm_cli.files.weights import load_model, resolve_model

    dev = pick_device(device)
    return load_model(resolve_model(model, revision=revision, offline=offline), dev, method)


def _bar(quiet: bool = False) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
        disable=quiet,
    )


@app.command()
@friendly
def restore(
    inputs: Annotated[
        list[str], typer.Argument(help="Image files, folders (recursive) or glob patterns.", show_default=False)
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Output file (one input) or folder.", show_default=False)
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Model file, bundled model name, or Hugging Face Hub repo id [default: the method's bundled model].",
        ),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            help="A restoring method of `lmppm methods` (the flow, an ablation, a baseline, or a classical denoiser that needs no model) [default: the model's own]."
        ),
    ] = None,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    steps: StepsOpt = None,
    alpha: AlphaOpt = None,
    beta: BetaOpt = None,
    sigma_ker: SigmaKerOpt = None,
    schedule: ScheduleOpt = None,
    adaptive: AdaptiveOpt = None,
    top_k: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Kernel mean over the k nearest bank points only, for large banks (0: all, as Eq. 21) [default: the model's].",
        ),
    ] = None,
    precision: PrecisionOpt = "fp32",
    start_step: Annotated[
        int | None, typer.Option(min=0, max=1999, help="ldm only: the step its reverse chain starts from.")
    ] = None,
    seed: Annotated[int, typer.Option(help="ldm only: seed of its sampling noise.")] = 0,
    device: DeviceOpt = "auto",
    batch_size: BatchOpt = 64,
    save_trajectory: Annotated[
        bool, typer.Option(help="Also write NAME.trajectory.png: the image after each step.")
    ] = False,
    tile: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Restore images larger than the model in tiles of N pixels (0: resize the whole image) [default: the model's input size for U-Net models, 0 for conv models].",
        ),
    ] = None,
    tile_overlap: Annotated[
        int | None,
        typer.Option(
            min=0, help="Pixels shared by neighbouring tiles, blended linearly [default: a quarter of the tile]."
        ),
    ] = None,
    report: Annotated[
        str | None,
        typer.Option(
            help="Also write per-image scores (learned distance D and residual before and after, steps, time) to this .csv or .json file."
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(help="With no --model: stop, writing nothing, when an image is far from the picked model's data."),
    ] = False,
    skip_existing: Annotated[
        bool, typer.Option(help="Leave out the files whose result already exists (to finish an interrupted run).")
    ] = False,
) -> None:
    """Restore degraded images blindly with the latent flow of Alg. 4 (or a baseline with --method).
    With no --model, each image goes to the bundled model of its domain (digits, faces, photos)."""
    from lmppm_cli import methods
    from lmppm_cli.files import shards
    from lmppm_cli.files.bands import streamable
    from lmppm_cli.files.devices import pick_device
    from lmppm_cli.files.images import large_images
    from lmppm_cli.files.jobs import (
        REPORT_SUFFIXES,
        Report,
        plan_outputs,
        record_outputs,
        restore_files,
        write_rows,
        written_paths,
    )

    if report is not None and Path(report).suffix.lower() not in REPORT_SUFFIXES:
        raise LmppmError(f"--report {report} must end in .csv or .json.")
    world = shards.world_from_env()
    dev = shards.rank_device(pick_device(device), world)
    device = str(dev)
    planned = plan_outputs(inputs, output, save_trajectory, skip_existing)
    if not planned:
        out.print("every result already exists; nothing to do.")
        return
    jobs = shards.share(planned, world)
    targets = {job.source: job.target for job in jobs}
    for sentence in large_images(list(targets), lambda src: streamable(src, targets[src])) if world.main else []:
        err.print(f"note: {sentence}.", highlight=False, soft_wrap=True)
    shards.start(world, dev)
    try:
        flow = FlowOverride(
            steps=steps, alpha=alpha, beta=beta, sigma_ker=sigma_ker, schedule=schedule, adaptive=adaptive, top_k=top_k
        )
        if model is None and methods.get(method or methods.DEFAULT).picks:
            groups, choices, result = _auto_groups(jobs, revision, offline, device, strict)
        else:
            reference = model or methods.default_model(method or methods.DEFAULT)
            groups, choices, result = (
                {reference: (_load(reference, revision, offline, device) if reference else None, jobs)},
                {},
                Report(),
            )
        chosen = {
            name: name if method is None and net is None else method for name, (net, _) in groups.items()
        }  # the pick chose bm3d
        fns = {
            name: methods.restorer(net, chosen[name], seed=seed, start_step=start_step, precision=precision, flow=flow)
            for name, (net, _) in groups.items()
        }
        summaries = shards.gather(_choice_summary(groups, choices), world)
        if world.main:
            _say_choices(summaries)
        with _bar(quiet=not world.main) as bar:
            task = bar.add_task(
                "restoring" if world.size == 1 else f"restoring (rank 0 of {world.size})", total=len(jobs)
            )
            for name, (net, group) in groups.items():
                label = (
                    {"model": name if net is not None else "", "method": chosen[name] or net.config.method}
                    if report
                    else None
                )
                result.extend(
                    restore_files(
                        net,
                        group,
                        fns[name],
                        batch_size,
                        save_trajectory,
                        lambda job: bar.advance(task),
                        tile,
                        tile_overlap,
                        label,
                    )
                )
        merged = Report()
        for part in shards.gather(result, world):
            merged.extend(part)
        if report is not None and world.main:
            write_rows(merged.rows, report)
        _report(merged, "restored", quiet=not world.main)
    finally:
        if world.main:  # also when stopped: every result there now is whole and this tool's
            record_outputs(inputs, output, [p for job in planned for p in written_paths(job, save_trajectory)])
        shards.stop()


def _auto_groups(jobs, revision, offline, device, strict: bool):
    """Each job's bundled domain model (domain.choose); with --strict, an error if any image is in
    doubt. -> ({name: (model, jobs)}, {source: choice}, report of unreadable files)."""
    from lmppm_cli.files.domain import DOMAIN_MODELS, GENERAL, pick_table, training_summary
    from lmppm_cli.files.jobs import assign_models
    from lmppm_cli.files.weights import model_metadata, resolve_model

    nets = {n: _load(n, revision, offline, device) for n in DOMAIN_MODELS}
    training = {n: training_summary(model_metadata(resolve_model(n))) for n in DOMAIN_MODELS}
    groups, choices, report = assign_models(jobs, nets, training, pick_table(resolve_model(GENERAL)))
    doubts = [f"{src}: {w}" for src, c in choices.items() for w in c.warnings]
    if strict and doubts:
        raise LmppmError(f"{doubts[0]} (--strict: nothing written; pass --model to restore it anyway).")
    return {n: (nets.get(n), g) for n, g in groups.items()}, choices, report


def _choice_summary(groups: dict, choices: dict) -> tuple[dict, list[str]]:
    """({model name: (files, reasons)}, warnings) of one rank's share, for _say_choices."""
    counts = {
        name: (len(group), sorted({choices[j.source].reason for j in group if j.source in choices}))
        for name, (_, group) in groups.items()
    }
    return counts, [f"{src}: {w}" for src, c in choices.items() for w in c.warnings]


def _say_choices(summaries: list[tuple[dict, list[str]]]) -> None:
    """Which model (or classical method) the files went to and why, and every warning, summed over the ranks."""
    from lmppm_cli.methods.classical import CLASSICAL

    counts: dict[str, tuple[int, set]] = {}
    for part, _ in summaries:
        for name, (n, reasons) in part.items():
            total, seen = counts.get(name, (0, set()))
            counts[name] = (total + n, seen | set(reasons))
    for name, (n, reasons) in counts.items():
        if reasons:
            listed = sorted(reasons)
            kind = "method" if name in CLASSICAL else "model"
            err.print(
                f"{kind}: {name} for {n} file(s) ({'; '.join(listed[:3])}{'; ...' if len(listed) > 3 else ''}).",
                highlight=False,
                soft_wrap=True,
            )
    for _, warnings in summaries:
        for warning in warnings:
            err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)


def _report(report, verb: str, quiet: bool = False) -> None:
    """The run's notes, failures and counts (`quiet`: say nothing, as torchrun's ranks other than 0);
    exit code 1 if any file failed."""
    for note in [] if quiet else report.notes:
        err.print(f"note: {note}", highlight=False, soft_wrap=True)
    for path, reason in [] if quiet else report.failed:
        err.print(f"[red]failed:[/red] {path}: {reason}", highlight=False, soft_wrap=True)
    if not quiet:
        out.print(
            f"{verb} {len(report.written)} file(s)" + (f", {len(report.failed)} failed" if report.failed else "") + "."
        )
    if report.failed:
        raise typer.Exit(1)


@app.command()
@friendly
def degrade(
    inputs: Annotated[
        list[str], typer.Argument(help="Image files, folders (recursive) or glob patterns.", show_default=False)
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Output file (one input) or folder.", show_default=False)
    ],
    kind: Annotated[
        str, typer.Option(help="noise, elastic, downsample, missing-pixels, scribbles or sharpen.", show_default=False)
    ],
    severity: Annotated[str, typer.Option(help="mild, severe (Table 6) or an explicit strength.")] = "severe",
    domain: Annotated[
        str, typer.Option(help="Which Table 6 presets: digits or faces (they differ for noise).")
    ] = "digits",
    seed: Annotated[int, typer.Option(help="Seed; the same seed gives the same files.")] = 0,
) -> None:
    """Degrade images reproducibly (Appendix B.2), to build test sets."""
    from lmppm_cli.core.degradations import strength
    from lmppm_cli.files.jobs import degrade_files, plan_outputs, record_outputs

    value = strength(kind, severity, domain)
    jobs = plan_outputs(inputs, output)
    with _bar() as bar:
        task = bar.add_task(f"{kind} {value:g}", total=len(jobs))
        report = degrade_files(jobs, kind, value, seed, lambda job: bar.advance(task))
    record_outputs(inputs, output, report.written)
    _report(report, "degraded")


@app.command()
@friendly
def generate(
    output: Annotated[str, typer.Option("--output", "-o", help="Folder for the samples.", show_default=False)],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of images.")] = 64,
    model: ModelOpt = "mnist",
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    seed: Annotated[int, typer.Option(help="Seed of the noise; the same seed gives the same images.")] = 0,
    steps: StepsOpt = None,
    alpha: AlphaOpt = None,
    beta: BetaOpt = None,
    sigma_ker: SigmaKerOpt = None,
    schedule: ScheduleOpt = None,
    device: DeviceOpt = "auto",
    batch_size: BatchOpt = 256,
    progression: Annotated[
        bool, typer.Option(help="Also write progression.png: the first 8 samples after each step.")
    ] = False,
    start: Annotated[
        str, typer.Option(help="latent: Gaussian noise in latent space; pixel: F(noise image).")
    ] = "latent",
    precision: PrecisionOpt = "fp32",
) -> None:
    """Generate new images from pure Gaussian noise through the flow (Fig. 9)."""
    from lmppm_cli.core.restoration import autocast
    from lmppm_cli.files.jobs import generate_files

    if Path(output).is_file():
        raise LmppmError(f"-o {output} is a file; generate writes a folder.")
    net = _load(model, revision, offline, device)
    flow = FlowOverride(steps=steps, alpha=alpha, beta=beta, sigma_ker=sigma_ker, schedule=schedule)
    if start not in ("latent", "pixel"):
        raise LmppmError(f"--start must be latent or pixel, not {start!r}.")
    autocast(net.device, precision)  # refused here, before anything is written, if it cannot run
    report = generate_files(net, n, output, seed, flow, batch_size, progression, start, precision)
    _report(report, "wrote")


@app.command()
@friendly
def train(
    data: Annotated[
        str,
        typer.Argument(
            help="Folder of images (recursive) or a built-in dataset: mnist-5k, mnist, lfw-faces, photo-patches, photo-crops.",
            show_default=False,
        ),
    ],
    output: Annotated[
        str,
        typer.Option("--output", "-o", help="Run folder: checkpoint, model.safetensors, summary.", show_default=False),
    ],
    epochs: Annotated[int, typer.Option(min=1, help="Epoch budget (Table 11: 200).")] = 200,
    batch_size: Annotated[int, typer.Option(min=1, help="Batch size (Table 11: 128).")] = 128,
    method: Annotated[
        str, typer.Option(help="What to train: a trained method of `lmppm methods` (lmppm, or a baseline).")
    ] = "lmppm",
    base: Annotated[str | None, typer.Option(help="ldm only: the trained DAE whose latent space it models.")] = None,
    init: Annotated[
        str | None,
        typer.Option(
            help="lmppm or dae: start F and G from this model's autoencoder (e.g. a DAE of the same architecture); not in the paper."
        ),
    ] = None,
    freeze_init: Annotated[
        bool,
        typer.Option(
            help="lmppm only: keep F and G at the --init model and train D alone with Eq. 20, so the single pass G(F(x)) is that model's; not in the paper."
        ),
    ] = False,
    lr: Annotated[
        float, typer.Option(min=0.0, help="Adam learning rate of F and G (of the LDM denoiser, of the classifier).")
    ] = 1e-3,
    lr_distance: Annotated[float, typer.Option(min=0.0, help="Adam learning rate of D_S.")] = 1e-3,
    sigma_d: Annotated[
        float,
        typer.Option(min=0.0, help="Training noise sigma (0.4 digits, 0.2 faces); also the calibration's noise level."),
    ] = 0.4,
    sigma_range: Annotated[
        str | None,
        typer.Option(
            help="LOW,HIGH: each training sample draws its noise level uniformly from this range (blind to strength) instead of --sigma-d."
        ),
    ] = None,
    sigma_power: Annotated[
        float,
        typer.Option(
            help="--sigma-range: draw the level as LOW + (HIGH - LOW) u^POWER, u uniform; above 1 gives low noise and clean inputs more weight (not in the paper)."
        ),
    ] = 1.0,
    patience: Annotated[int, typer.Option(min=1, help="Early stopping: epochs without a better validation loss.")] = 10,
    lambdas: Annotated[str, typer.Option(help="lambda_1..lambda_6 of Eq. 20, comma separated.")] = "1,1,1,1,1,1",
    lambda_denoise: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Weight of the denoising term ||x - G(F(x_noisy))||^2 added to Eq. 20 (not in the paper; 0 = Eq. 20 alone).",
        ),
    ] = 0.0,
    arch: Annotated[
        str, typer.Option(help="conv (Table 8) or unet (Table 9, with latent-to-skip projections).")
    ] = "conv",
    widths: Annotated[
        str | None, typer.Option(help="Channels per level, comma separated (conv: 32,64; unet: 32,64,128,256).")
    ] = None,
    projections: Annotated[
        bool, typer.Option(help="unet: add the latent-to-skip projections (off: the ablation).")
    ] = True,
    skip_dropout: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="unet: chance a training sample's skips are zeroed, so z must carry the image."
        ),
    ] = 0.0,
    unshuffle: Annotated[
        int,
        typer.Option(
            min=1,
            max=8,
            help="unet: pixel-unshuffle factor r; the convolutions run at 1/r^2 of the pixels (not in the paper).",
        ),
    ] = 1,
    residual: Annotated[
        bool,
        typer.Option(
            help="unet: G adds a correction to the encoded image instead of ending in a sigmoid (not in the paper)."
        ),
    ] = False,
    lr_schedule: Annotated[
        str, typer.Option(help="constant, or cosine: the learning rates fall to 1% over the --epochs budget.")
    ] = "constant",
    extra_photos: Annotated[
        str | None,
        typer.Option(
            help="photo-crops only: a folder of whole photos added to its training photos (weights/README.md: Debian's wallpapers)."
        ),
    ] = None,
    latent_dim: Annotated[int, typer.Option(min=1, help="Latent dimension d (MNIST: 18).")] = 18,
    image_size: Annotated[
        str | None, typer.Option(help="Model input size, N or HxW (default: 32 photo-patches, 25 lfw-faces, else 28).")
    ] = None,
    channels: Annotated[
        int | None, typer.Option(min=1, max=4, help="1 (gray) or 3 (RGB); default: from the data.")
    ] = None,
    neighbours: Annotated[
        str,
        typer.Option(
            help="x* search: exact (chunked), approximate (random projection), faiss (HNSW; pip install 'lmppm[scale]'), or auto (exact up to 20,000 images, else faiss); the run prints the recall of an approximate search."
        ),
    ] = "exact",
    calibrate: Annotated[
        bool, typer.Option(help="Choose the flow defaults on the validation split after training.")
    ] = True,
    calibration_grid: Annotated[
        str,
        typer.Option(
            help="full (240 flow settings x 5 step counts) or small (12 x 3), for networks whose flow step is costly."
        ),
    ] = "full",
    seed: Annotated[int, typer.Option(help="Seed of initialisation, shuffling and noise.")] = 0,
    device: DeviceOpt = "auto",
    resume: Annotated[bool, typer.Option(help="Continue the run in -o exactly where it stopped.")] = False,
    data_dir: Annotated[str | None, typer.Option(help="Download folder for torchvision datasets.")] = None,
    stream: Annotated[
        bool,
        typer.Option(
            help="Folder only: decode the images once into a memory-mapped cache and train from it, never holding the folder in memory."
        ),
    ] = False,
    cache: Annotated[
        str | None,
        typer.Option(
            help="--stream: folder for the decoded cache (default: RUN/cache); reused while the files are unchanged."
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=0, help="--stream: DataLoader processes that decode the files and read the batches.")
    ] = 2,
    precision: Annotated[
        str,
        typer.Option(
            help="fp32, or bf16 on a GPU or a CPU with native bf16: F and G under autocast; D and the second-order terms of Eq. 20 stay fp32."
        ),
    ] = "fp32",
) -> None:
    """Train an LMPPM model (F, G, D_S and the latent bank) with the loss of Eq. 20, or a baseline.
    Several processes: torchrun --nproc-per-node N -m lmppm_cli train ... (DistributedDataParallel)."""
    from lmppm_cli.files import shards
    from lmppm_cli.files.data import NATIVE_SIZE, sniff_channels
    from lmppm_cli.files.devices import pick_device
    from lmppm_cli.files.run import RunFolder
    from lmppm_cli.files.weights import resolve_model
    from lmppm_cli.training import build_configs

    world = shards.world_from_env()
    dev = shards.rank_device(pick_device(device), world)
    height, width = _size(image_size, NATIVE_SIZE.get(data, 28))
    ch = channels or sniff_channels(data)
    config, tcfg = build_configs(
        channels=ch,
        height=height,
        width=width,
        latent_dim=latent_dim,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        lr_distance=lr_distance,
        sigma_d=sigma_d,
        patience=patience,
        lambdas=_floats(lambdas, "--lambdas", 6),
        neighbours=neighbours,
        seed=seed,
        calibrate=calibrate,
        method=method,
        arch=arch,
        widths=_ints(widths, "--widths"),
        projections=projections,
        skip_dropout=skip_dropout,
        lambda_denoise=lambda_denoise,
        sigma_range=_sigma_range(sigma_range),
        init=str(resolve_model(init, revision=None, offline=False)) if init else "",
        freeze_init=freeze_init,
        workers=workers,
        precision=precision,
        unshuffle=unshuffle,
        residual=residual,
        lr_schedule=lr_schedule,
        calibration_grid=calibration_grid,
        sigma_power=sigma_power,
    )
    base_model = _load(base, None, False, device) if base else None
    RunFolder(output)  # a folder that cannot be written is refused before the data load and any epoch
    shards.start(world, dev)
    try:
        with err.status(f"decoding {data} into its cache" if stream else f"loading {data}"):
            dataset = _training_data(
                data,
                ch,
                height,
                width,
                data_dir,
                stream,
                Path(cache or Path(output) / "cache"),
                workers,
                world,
                extra_photos,
            )
    except BaseException:
        shards.stop()
        raise
    if world.main:
        ranks = f", {world.size} processes" if world.size > 1 else ""
        err.print(
            f"{dataset.name}: {len(dataset.train.images)} train / {len(dataset.val.images)} val images, "
            f"{ch}x{height}x{width}, device {dev}{ranks}",
            highlight=False,
        )
        if dataset.skipped:
            err.print(
                f"note: skipped {len(dataset.skipped)} unreadable file(s), e.g. {dataset.skipped[0]}", highlight=False
            )
    try:
        summary = _run_training(config, dataset, tcfg, output, dev, resume, base_model, world)
    finally:
        shards.stop()
    if world.main:
        out.print(
            f"model written to {Path(output) / 'model.safetensors'} "
            f"(best epoch {summary['best_epoch']} of {summary['epochs_run']}, {summary['seconds']} s)."
        )


def _training_data(data, channels, height, width, data_dir, stream, cache, workers, world, extra_photos=None):
    """The training set: in memory, or (--stream) memory-mapped from a cache that rank 0 builds first."""
    from lmppm_cli.files.data import load_dataset
    from lmppm_cli.files.stream import open_stream

    if not stream:
        return load_dataset(data, channels, height, width, data_dir, extra_photos)
    if not Path(data).is_dir():
        raise LmppmError(f"--stream trains from a folder of images; {data!r} is not a folder.")
    if world.size > 1:
        if world.main:
            open_stream(Path(data), channels, height, width, cache, workers)
        import torch.distributed

        torch.distributed.barrier()
    return open_stream(Path(data), channels, height, width, cache, workers)


def _floats(text: str, option: str, count: int) -> tuple[float, ...]:
    """COUNT finite numbers separated by commas."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise LmppmError(f"{option} needs {count} finite numbers separated by commas, not {text!r}.")
    return values


def _sigma_range(text: str | None) -> tuple[float, float] | None:
    """LOW,HIGH with 0 <= LOW <= HIGH."""
    if text is None:
        return None
    try:
        low, high = _floats(text, "--sigma-range", 2)
    except LmppmError:
        low, high = 1.0, 0.0
    if not 0.0 <= low <= high:
        raise LmppmError(f"--sigma-range needs two numbers LOW,HIGH with 0 <= LOW <= HIGH, not {text!r}.")
    return low, high


def _ints(text: str | None, option: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise LmppmError(f"{option} needs positive whole numbers separated by commas, not {text!r}.")
    return values


def _size(text: str | None, default: int) -> tuple[int, int]:
    if text is None:
        return default, default
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise LmppmError(f"--image-size must be N or HxW with positive integers, not {text!r}.")
    return (parts[0], parts[-1])


def _run_training(config, dataset, tcfg, output, dev, resume, base_model, world):
    from lmppm_cli.core.train import Progress as Hooks
    from lmppm_cli.training import train as run

    if not world.main:  # rank 0 alone reports
        return run(config, dataset, tcfg, output, dev, resume=resume, base=base_model, world=world)
    with _bar() as bar:
        epochs = bar.add_task("epochs", total=tcfg.epochs)
        batches = bar.add_task("batches", total=1)

        def on_start(total, per_epoch):
            bar.update(epochs, total=total)
            bar.update(batches, total=per_epoch, completed=0)

        def on_epoch(rec):
            bar.update(epochs, completed=rec["epoch"])
            bar.update(batches, completed=0)
            terms = " ".join(f"{k} {v:.4f}" for k, v in rec["train"].items())
            mark = " *" if rec["improved"] else ""
            bar.console.print(
                f"epoch {rec['epoch']:>3} | {terms} | val {rec['val']['total']:.4f}{mark}", highlight=False
            )

        hooks = Hooks(
            on_start=on_start,
            on_batch=lambda e, t: bar.advance(batches),
            on_epoch=on_epoch,
            on_note=lambda text: bar.console.print(text, highlight=False, soft_wrap=True),
        )
        return run(config, dataset, tcfg, output, dev, resume=resume, progress=hooks, base=base_model, world=world)


@app.command()
@friendly
def bench(
    suite: Annotated[
        str,
        typer.Option(
            help="Which experiment: mnist (Table 1), mnist-noise, photo-noise, photos (a whole held-out photo against BM3D), photo-pick (the default pick's table), faces (Table 2), circle (Figs. 4-7), generation (Fig. 9: samples from noise against the LDM's full chain), or speed (images/s of every restorer on --device).",
            show_default=False,
        ),
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Folder for results.json, results.md and grids.")
    ] = "bench-results",
    seed: Annotated[int, typer.Option(help="Seed of every degradation and of the LDM's sampling.")] = 0,
    limit: Annotated[
        int | None,
        typer.Option(
            min=2,
            help="Use only N test images (points), spread over the classes (the circle); speed: batch sizes up to N.",
        ),
    ] = None,
    draws: Annotated[
        int,
        typer.Option(
            min=1,
            max=20,
            help="Seeded draws of every degradation (the same for every method); intervals resample images and draws.",
        ),
    ] = 3,
    degradations: Annotated[
        str | None, typer.Option(help="Comma-separated kinds to run (default: all of the suite).")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="The LMPPM model (default: the suite's bundled one).")
    ] = None,
    ablation: Annotated[
        str | None, typer.Option(help="The LMPPM model without latent-to-skip projections (photo-noise, faces).")
    ] = None,
    dae: Annotated[str | None, typer.Option(help="The DAE baseline (and Ablation_dae).")] = None,
    ldm: Annotated[str | None, typer.Option(help="The LDM baseline.")] = None,
    classifier: Annotated[str | None, typer.Option(help="The domain classifier for FID and accuracy.")] = None,
    classical: Annotated[
        bool,
        typer.Option(
            help="Add rows for the classical blind denoisers (BM3D, NL-means, wavelet); BM3D takes about 1 s per image."
        ),
    ] = True,
    split: Annotated[
        str,
        typer.Option(
            help="mnist: the test digits (every reported figure) or the validation digits (to choose settings on)."
        ),
    ] = "test",
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    device: DeviceOpt = "auto",
) -> None:
    """Run one of the paper's experiments: tables (Markdown, JSON) and comparison grids."""
    from rich.table import Table

    from lmppm_cli.experiments.bench import ALL_SUITES, STANDALONE, SUITES, run_suite
    from lmppm_cli.experiments.bench.runner import KIND_METHOD

    if suite not in ALL_SUITES:
        raise LmppmError(f"unknown bench suite {suite!r}; available: {', '.join(ALL_SUITES)}.")
    if split not in ("test", "validation") or (split != "test" and suite != "mnist"):
        raise LmppmError(
            f"--split {split} is not available for suite {suite}; the mnist suite takes test or validation, the others test only."
        )
    if suite in STANDALONE:
        options = {"device": device, "classical": classical} if suite == "speed" else {}
        if suite in ("photos", "photo-pick"):
            from lmppm_cli.files.devices import pick_device

            options = {
                "model": model,
                "dae": dae,
                "classical": classical,
                "device": str(pick_device(device)),
                "draws": draws,
            }
        if suite == "generation":
            from lmppm_cli.files.devices import pick_device

            options = {"device": str(pick_device(device)), "draws": draws}
        return _bench_standalone(suite, output, seed, limit, options)
    given = {"lmppm": model, "ablation": ablation, "dae": dae, "ldm": ldm, "classifier": classifier}
    models = {
        kind: _load(given.get(kind) or default, revision, offline, device, KIND_METHOD.get(kind, kind))
        for kind, default in SUITES[suite].needs.items()
    }
    kinds = [k.strip() for k in degradations.split(",")] if degradations else None
    table = Table("degradation", "method", "PSNR", "SSIM", "FID", "acc %", "ms / image")
    with _bar() as bar:
        task = bar.add_task(suite, total=None)

        def on_cell(c):
            bar.advance(task)
            fid = "" if c.fid is None else f"{c.fid:.2f}"
            acc = "" if c.accuracy is None else f"{100 * c.accuracy:.1f}"
            table.add_row(
                c.degradation, c.method, f"{c.psnr:.2f}", f"{c.ssim:.3f}", fid, acc, f"{1000 * c.seconds_per_image:.3f}"
            )

        run_suite(
            suite,
            output,
            seed=seed,
            draws=draws,
            models=models,
            limit=limit,
            degradations=kinds,
            on_cell=on_cell,
            classical=classical,
            **({"split": split} if split != "test" else {}),
        )
    out.print(table)
    out.print(f"results written to {Path(output) / 'results.json'} and {Path(output) / 'results.md'}.")


def _bench_standalone(suite: str, output: str, seed: int, limit: int | None, options: dict) -> None:
    """A suite with its own runner (circle, speed): a spinner per stage, then its table."""
    from lmppm_cli.experiments.bench import STANDALONE

    with out.status(f"{suite}: starting") as status:
        rows = STANDALONE[suite](
            output, seed=seed, limit=limit, on_stage=lambda stage: status.update(f"{suite}: {stage}"), **options
        )
    from rich.table import Table

    keys = list(dict.fromkeys(k for row in rows.values() for k in row))
    table = Table("method", *keys)
    for method, row in rows.items():
        table.add_row(
            method, *("" if k not in row else f"{row[k]:.5f}" if abs(row[k]) < 10 else f"{row[k]:,.1f}" for k in keys)
        )
    out.print(table)
    out.print(f"results written to {Path(output) / 'results.json'} and {Path(output) / 'results.md'}.")


@app.command()
@friendly
def models(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Also list model files and Hub-style folders here (searched recursively).", show_default=False
        ),
    ] = None,
    cache_dir: Annotated[
        str | None, typer.Option(help="Hugging Face Hub cache to scan [default: the Hub client's].")
    ] = None,
) -> None:
    """List the bundled models, the lmppm models in the Hub cache and any given local ones."""
    from rich.table import Table

    from lmppm_cli.files.catalog import COLUMNS, bundled_entries, hub_entries, local_entries

    rows = bundled_entries() + hub_entries(cache_dir) + local_entries(paths or [])
    table = Table(*COLUMNS)
    table.columns[0].no_wrap = True
    for row in rows:
        table.add_row(*(str(row[c]) for c in COLUMNS))
    out.print(table)
    out.print("with no --model, `lmppm restore` picks mnist, faces or photos by the image's channels and size.")


@app.command("methods")
@friendly
def list_methods() -> None:
    """List the methods of the registry: what each needs, does and restores with by default."""
    from rich.table import Table

    from lmppm_cli import methods

    table = Table("method", "what it does", "model it needs", "default model", "restores", "trains", "generates")
    table.columns[0].no_wrap = True
    for m in methods.REGISTRY.values():
        yes = lambda part: "yes" if part is not None else ""  # noqa: E731
        table.add_row(
            m.name,
            m.summary,
            m.model or "none",
            methods.default_model(m.name) or "",
            yes(m.restorer),
            yes(m.objective),
            yes(m.generator),
        )
    out.print(table)


@app.command()
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
    out.print(
        f"wrote {', '.join(p.name for p in written)} to {output}; upload with: huggingface-cli upload OWNER/NAME {output}"
    )


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
