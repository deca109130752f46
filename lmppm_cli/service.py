"""The restore service behind `lmppm restore` and the Python API: a typed request goes in, a report comes
out. Planning the outputs, the per-image pick of a bundled model (or classical method), the restorer of
each group, batching and tiling, reports, the output manifest and torchrun's shares live here once; the
CLI only parses options into a RestoreRequest and shows what `Hooks` tell it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from lmppm_cli import methods
from lmppm_cli.core.config import FlowOverride
from lmppm_cli.core.errors import LmppmError
from lmppm_cli.files import domain, shards
from lmppm_cli.files.devices import pick_device
from lmppm_cli.files.images import large_images, read_image
from lmppm_cli.files.plan import Job, OutputRules, existing_results, plan_outputs, record_outputs, written_paths
from lmppm_cli.files.report_page import PAGE_SUFFIX, write_page
from lmppm_cli.files.reports import REPORT_SUFFIXES, Report, flagged, write_rows
from lmppm_cli.files.restore_files import Progress, restore_files
from lmppm_cli.files.strips import streamable
from lmppm_cli.files.tiling import Restorer
from lmppm_cli.files.weights import load_model, model_metadata, resolve_model
from lmppm_cli.methods.ldm import LdmOptions
from lmppm_cli.names import AUTO


@dataclass(frozen=True)
class Tiling:
    """tile: side of the tiles (None: the model's input for U-Nets, 0: resize whole images); overlap:
    pixels shared by neighbouring tiles (None: a quarter of the tile); batch_size: tiles or images per pass."""

    tile: int | None = None
    overlap: int | None = None
    batch_size: int = 64


@dataclass(frozen=True)
class RestoreSettings:
    """How each image is restored, whoever asks: the options of `lmppm restore` and the keywords of
    `Model.restore` that change pixels."""

    method: str | None = None  # None: the model's own method
    flow: FlowOverride = field(default_factory=FlowOverride)
    ldm: LdmOptions = field(default_factory=LdmOptions)
    precision: str = AUTO  # fp32, or the picked model's bf16 (domain.fast_precision)
    tiling: Tiling = field(default_factory=Tiling)


def restorer(net: Any, settings: RestoreSettings) -> Restorer:
    """The one restore chain of the CLI, the API and the benches: the method's batch restorer
    (methods.restorer), no model for a method that needs none (BM3D), and tile-or-resize (tiling.resolve)."""
    method, t = settings.method, settings.tiling
    precision = "fp32" if settings.precision == AUTO else settings.precision  # a picked model's: _groups
    fn = methods.restorer(net, method, (settings.flow, settings.ldm), precision)
    model = None if method is not None and methods.get(method).model is None else net
    return Restorer.of(model, fn, t.tile, t.overlap, t.batch_size)


@dataclass(frozen=True)
class RestoreRequest:
    """What to restore, with what, and where the results go (the options of `lmppm restore`)."""

    inputs: tuple[str, ...]
    output: str
    model: str | None = None  # None: the method's bundled model, or for the flow the pick per image
    settings: RestoreSettings = field(default_factory=RestoreSettings)
    revision: str | None = None
    offline: bool = False
    device: str = "auto"
    report: tuple[str, ...] = ()  # .csv or .json files for per-image rows, .html for the before/after page
    outputs: OutputRules = field(default_factory=OutputRules)  # trajectory, skip-existing, overwrite, suffix
    strict: bool = False  # with the pick: stop, writing nothing, when an image is in doubt


@dataclass
class Hooks:
    """What the service tells its caller; the CLI shows it, the API ignores it."""

    on_start: Callable[[list[Job]], None] = lambda jobs: None  # this process's files, planned
    on_file: Callable[[Job], None] = lambda job: None  # one of them done: written or failed
    on_pixels: Callable[[float], None] = lambda n: None  # n more pixels restored (tiles of a large image)
    on_choices: Callable[[list[tuple[str, int, list[str]]], list[str]], None] = lambda counts, warnings: None
    on_note: Callable[[str], None] = lambda text: None


@dataclass
class Group:
    """Files restored alike: a model (None for a classical method) and the method to run."""

    net: Any  # LMPPM, LatentDiffusion, or None
    method: str | None
    jobs: list[Job] = field(default_factory=list)
    precision: str | None = None  # the pick's (bf16 where measured close enough), else the request's


def restore(request: RestoreRequest, hooks: Hooks | None = None) -> Report:
    """Restore every input of `request` and write the results; -> the run's report (on every rank,
    the report of all ranks). Under torchrun each rank restores its share of the files."""
    hooks, started = hooks or Hooks(), time.perf_counter()
    for path in request.report:
        if Path(path).suffix.lower() not in REPORT_SUFFIXES:
            raise LmppmError(f"--report {path} must end in .csv, .json or .html.")
    world = shards.world_from_env()
    device = shards.rank_device(pick_device(request.device), world)
    planned = plan_outputs(list(request.inputs), request.output, request.outputs)
    if not planned:
        if world.main:
            hooks.on_note("every result already exists; nothing to do.")
        return Report()
    replaced = existing_results(planned, request.outputs.trajectory)
    if replaced and world.main:
        hooks.on_note(
            f"note: {replaced} existing result(s) will be replaced (--no-overwrite refuses, --skip-existing keeps them)."
        )
    jobs = shards.share(planned, world)
    targets = {job.source: job.target for job in jobs}
    for sentence in large_images(list(targets), lambda src: streamable(src, targets[src])) if world.main else []:
        hooks.on_note(f"note: {sentence}.")
    shards.start(world, device)
    try:
        groups, result = _groups(jobs, request, device)
        restorers = {name: restorer(g.net, _settings(request.settings, g)) for name, g in groups.items()}
        summaries = shards.gather(_choice_summary(groups, result.choices), world)
        if world.main:
            hooks.on_choices(*_merged(summaries))
        hooks.on_start(jobs)
        unread = {src for src, _ in result.report.failed}
        for job in (j for j in jobs if j.source in unread):  # failed already, at the pick
            hooks.on_file(job)
        for name, group in groups.items():
            result.report.extend(_restore_group(name, group, restorers[name], request, hooks, result.choices))
        merged = Report()
        for part in shards.gather(result.report, world):
            merged.extend(part)
        if world.main:
            _write_reports(request.report, merged, time.perf_counter() - started)
        return merged
    finally:
        if world.main:  # also when stopped: every result there now is whole and this tool's
            written = [p for job in planned for p in written_paths(job, request.outputs.trajectory)]
            record_outputs(list(request.inputs), request.output, written)
        shards.stop()


def _settings(settings: RestoreSettings, group: Group) -> RestoreSettings:
    """The request's settings for one group: its method, and under `auto` its pick's precision."""
    precision = group.precision if settings.precision == AUTO and group.precision else settings.precision
    return replace(settings, method=group.method, precision=precision)


def _write_reports(paths: tuple[str, ...], report: Report, seconds: float) -> None:
    """Each --report: the rows as CSV or JSON, or the before/after page (files/report_page.py)."""
    for path in paths:
        if Path(path).suffix.lower() == PAGE_SUFFIX:
            write_page(path, report.rows, [(str(s), why) for s, why in report.failed], report.thumbs, seconds)
        else:
            failed = [{"input": str(src), "output": "", "error": why} for src, why in report.failed]
            write_rows(report.rows + failed, path)
    if paths and (n := flagged(report.rows)):
        report.note(
            f"{n} result(s) may show something else than their input: a clear digit became another, or D grew ({paths[0]}, column flag)."
        )


def _restore_group(
    name: str, group: Group, restoring: Restorer, request: RestoreRequest, hooks: Hooks, choices: dict
) -> Report:
    """One group's files; with a report, each row says which model and method restored it, and why."""
    label = None
    if request.report:
        method = group.method or ("" if group.net is None else group.net.config.method)
        label = {"model": name if group.net is not None else "", "method": method}
    progress = Progress(hooks.on_file, hooks.on_pixels)
    thumbnails = any(Path(p).suffix.lower() == PAGE_SUFFIX for p in request.report)
    report = restore_files(restoring, group.jobs, request.outputs.trajectory, progress, label, thumbnails)
    given = f"--model {request.model}" if request.model else f"--method {group.method}" if group.method else ""
    for line in report.rows:
        picked = choices.get(Path(line["input"]))
        line["why"] = picked.reason if picked is not None else given
    return report


@dataclass
class _Picked:
    report: Report  # the files that could not be read to pick a model for them
    choices: dict[Path, domain.Choice] = field(default_factory=dict)


def _groups(jobs: list[Job], request: RestoreRequest, device: torch.device) -> tuple[dict[str, Group], _Picked]:
    """{name: Group}: the model the request names (or the method's bundled one) for every file, or
    with no --model and a method that picks, each file's bundled domain model (`pick`)."""
    method = request.settings.method
    if request.model is None and methods.get(method or methods.DEFAULT).picks:
        return _picked_groups(jobs, request, device)
    reference = request.model or methods.default_model(method or methods.DEFAULT)
    net = _load(reference, request, device) if reference else None
    return {reference or "": Group(net, method, list(jobs))}, _Picked(Report())


def _picked_groups(jobs: list[Job], request: RestoreRequest, device) -> tuple[dict[str, Group], _Picked]:
    """Each file's bundled domain model (domain.choose), grouped; with --strict, an error if any image is in doubt."""
    bundle = DomainModels.load(device, request.revision, request.offline)
    picked, groups = _Picked(Report()), dict[str, Group]()
    for job in jobs:
        try:
            image, info = read_image(job.source)
            choice = bundle.choose(image, jpeg=info.format == "JPEG")
        except LmppmError as exc:
            picked.report.failed.append((job.source, str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - one file's failure, named; the others go on
            picked.report.failed.append((job.source, f"could not be given a model ({type(exc).__name__}: {exc})"))
            continue
        picked.choices[job.source] = choice
        net = bundle.nets.get(choice.name)
        method = request.settings.method if choice.method is None else choice.method
        groups.setdefault(choice.name, Group(net, method, precision=choice.precision)).jobs.append(job)
    doubts = [f"{src}: {w}" for src, c in picked.choices.items() for w in c.warnings]
    if request.strict and doubts:
        raise LmppmError(f"{doubts[0]} (--strict: nothing written; pass --model to restore it anyway).")
    return groups, picked


@dataclass
class DomainModels:
    """The bundled domain models, their training summaries and the photo pick table: what `choose` needs."""

    nets: dict
    training: dict
    photo_table: dict | None
    camera_table: dict | None = None

    @classmethod
    def load(cls, device, revision=None, offline=False) -> DomainModels:
        paths = {n: resolve_model(n, revision=revision, offline=offline) for n in domain.DOMAIN_MODELS}
        nets = {n: load_model(p, device) for n, p in paths.items()}
        training = {n: domain.training_summary(model_metadata(p)) for n, p in paths.items()}
        camera = domain.pick_table(paths[domain.CAMERA], domain.CAMERA_TABLE) if domain.CAMERA in paths else None
        return cls(nets, training, domain.pick_table(paths[domain.GENERAL]), camera)

    def choose(self, x: torch.Tensor, jpeg: bool = False) -> domain.Choice:
        """The one pick of the CLI and the API: domain.choose over the bundled models; `jpeg`: the image
        came from a JPEG file (as cameras write photos)."""
        return domain.choose(x, self.nets, self.training, self.photo_table, domain.CameraPick(jpeg, self.camera_table))


def _load(reference: str, request: RestoreRequest, device):
    return load_model(resolve_model(reference, revision=request.revision, offline=request.offline), device)


def _choice_summary(groups: dict[str, Group], choices: dict) -> tuple[dict, list[str]]:
    """({name: (files, reasons)}, warnings) of one rank's share."""
    counts = {
        name: (len(g.jobs), sorted({choices[j.source].reason for j in g.jobs if j.source in choices}))
        for name, g in groups.items()
    }
    return counts, [f"{src}: {w}" for src, c in choices.items() for w in c.warnings]


def _merged(summaries) -> tuple[list[tuple[str, int, list[str]]], list[str]]:
    """The choices of every rank: [(name, files, reasons)] and every warning."""
    counts: dict[str, tuple[int, set]] = {}
    for part, _ in summaries:
        for name, (n, reasons) in part.items():
            total, seen = counts.get(name, (0, set()))
            counts[name] = (total + n, seen | set(reasons))
    return [(n, c, sorted(r)) for n, (c, r) in counts.items()], [w for _, ws in summaries for w in ws]
