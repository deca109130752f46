"""File-level jobs behind the CLI: which files to restore and where each result goes; restoring them in
batches; writing generated samples. Each output is written atomically and never over an input."""

from __future__ import annotations

import csv
import ctypes
import glob
import hashlib
import io
import json
import multiprocessing
import os
import signal
import sys
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lmppm_cli.core.config import FlowOverride
from lmppm_cli.core.errors import LmppmError
from lmppm_cli.core.models import architecture
from lmppm_cli.core.restoration import autocast, sample_seeds
from lmppm_cli.files.atomic import remove_in_flight, write_text
from lmppm_cli.files.bands import restore_png_in_bands, streamable
from lmppm_cli.files.domain import Choice, choose, estimate_noise, scores
from lmppm_cli.files.images import (
    DEEP_SUFFIXES,
    IMAGE_SUFFIXES,
    ImageInfo,
    encode,
    encode_array,
    read_image,
    resize,
    save_image,
    tensor_to_image,
    to_array,
    to_channels,
)
from lmppm_cli.files.tiling import in_tiles, resolve, restore_tiled

PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies
IO_WORKERS = 2  # processes that decode input files and encode results beside the model (_io_pool)


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


@dataclass
class Report:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)  # per written image, with --report

    def extend(self, other: Report) -> None:
        self.written += other.written
        self.failed += other.failed
        self.notes += other.notes
        self.rows += other.rows


def plan_outputs(inputs: list[str], output: str, trajectory: bool = False, skip_existing: bool = False) -> list[Job]:
    """Expand files, folders (recursive) and globs, and map each to its output path (restore, degrade).

    One plain file and an output with an image suffix: file to file. Anything else: `output` is a
    folder and every result keeps its name relative to the folder or glob it came from. A file reached
    by several paths (symlinks) is restored once. Refused, before anything is written: any output
    (with `trajectory`, also NAME.trajectory.png) that is an input, that two inputs would both write,
    or that already exists in an output folder lying inside an input folder (it may be the user's own),
    unless that folder's manifest (OUTPUTS, `record_outputs`) shows the tool wrote it, unchanged since.
    `skip_existing` leaves out the jobs whose result is already there (an interrupted run goes on; results
    are written atomically, so one that exists is whole).
    """
    out = Path(output)
    if out.is_file() and out.suffix.lower() not in IMAGE_SUFFIXES:
        raise LmppmError(f"-o {output} is an existing file that is not an image; give an image name or a folder.")
    if any(Path(item).is_dir() and Path(item).resolve() == out.resolve() for item in inputs):
        raise LmppmError(f"-o {output} is one of the inputs: the results would overwrite the originals.")
    found: list[tuple[Path, Path]] = []  # (source, name relative to its root)
    real: dict[Path, str] = {}  # each source's real path, found once (10,000 files: 1.3 s -> 0.4 s of planning)
    out_dir = os.path.join(os.path.realpath(out), "") if out.is_dir() else None
    seen: set[str] = set()
    for item in inputs:
        for src, rel in _expand(item):
            real[src] = os.path.realpath(src)
            if real[src] in seen:
                continue
            seen.add(real[src])
            if out_dir is None or not real[src].startswith(out_dir):  # earlier outputs are not restored again
                found.append((src, rel))
    if not found:
        raise LmppmError("the inputs hold no images outside the output folder.")
    single = len(inputs) == 1 and Path(inputs[0]).is_file()
    if out.suffix.lower() in IMAGE_SUFFIXES and not out.is_dir():
        if not single:
            raise LmppmError(f"-o {output} names one file but the inputs hold {len(found)} images; give a folder.")
        jobs = [Job(found[0][0], out)]
    else:
        jobs = [Job(src, out / rel) for src, rel in found]
    if skip_existing:
        jobs = [j for j in jobs if not all(p.exists() for p in written_paths(j, trajectory))]
    _check_targets(jobs, real, trajectory, output)
    return jobs


OUTPUTS = ".lmppm-outputs.json"  # in an output folder inside an input folder: the results the tool wrote there


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(folder: Path) -> dict[str, str]:
    """{name relative to the folder: SHA-256} of the results written there by earlier runs."""
    try:
        found = json.loads((folder / OUTPUTS).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def record_outputs(inputs: list[str], output: str, written: list[Path]) -> None:
    """When the output folder lies inside an input folder, add what this run wrote to its manifest, so
    that the same command run again may replace those files (and only those)."""
    out = Path(output).resolve()
    if not out.is_dir() or not any(Path(i).is_dir() and out.is_relative_to(Path(i).resolve()) for i in inputs):
        return
    manifest = _manifest(out)
    for path in written:
        path = Path(path).resolve()
        if path.is_file() and path.is_relative_to(out):
            manifest[path.relative_to(out).as_posix()] = _digest(path)
    write_text(out / OUTPUTS, json.dumps(manifest, indent=1, sort_keys=True))


def _ours(path: Path, out: Path, manifest: dict[str, str]) -> bool:
    """Whether `path`, in the output folder `out`, is a result an earlier run wrote, unchanged since."""
    try:
        name = Path(path).resolve().relative_to(out).as_posix()
    except ValueError:
        return False
    return manifest.get(name) is not None and manifest[name] == _digest(Path(path))


def trajectory_path(target: Path) -> Path:
    """Where --save-trajectory writes the strip of a result."""
    return target.with_name(target.stem + ".trajectory.png")


def written_paths(job: Job, trajectory: bool) -> list[Path]:
    """What a job writes: its result, and its trajectory strip with --save-trajectory."""
    return [job.target, trajectory_path(job.target)] if trajectory else [job.target]


def _expand(item: str) -> list[tuple[Path, Path]]:
    """(file, name relative to its root) for a file, a folder (recursive, symlinked folders not followed)
    or a glob (whose ** follows symlinked folders: shortest paths first, so the loop-free name wins)."""
    path = Path(item)
    if item == "-":
        raise LmppmError("lmppm reads image files, not standard input ('-'): save the image to a file first.")
    if path.is_file():
        return [(path, Path(path.name))]
    if path.exists() and not path.is_dir():
        raise LmppmError(f"{item} is not a regular file (a pipe, device or socket); lmppm reads image files.")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise LmppmError(f"the folder {item} holds no image files.")
        return [(p, p.relative_to(path)) for p in files]
    if glob.has_magic(item):
        base = Path(*_prefix_parts(item))
        files = sorted(
            (Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file()), key=lambda p: (len(p.parts), p)
        )
        if not files:
            raise LmppmError(f"the pattern {item} matches no files.")
        return [(p, p.relative_to(base)) for p in files]
    raise LmppmError(f"{item} does not exist.")


def _prefix_parts(pattern: str) -> list[str]:
    """The folders of a glob pattern before its first wildcard."""
    prefix: list[str] = []
    for part in Path(pattern).parts[:-1]:
        if glob.has_magic(part):
            break
        prefix.append(part)
    return prefix


def _check_targets(jobs: list[Job], real: dict[Path, str], trajectory: bool, output: str) -> None:
    sources = {real[j.source] for j in jobs}
    others = set(real.values()) - sources  # files of the input folders that lie in the output folder
    out = Path(output).resolve()
    manifest = _manifest(out) if others else {}
    seen: dict[str, Path] = {}
    for job in jobs:
        for path in written_paths(job, trajectory):
            target = os.path.realpath(path)
            if target in sources:
                raise LmppmError(f"refusing to write {path}: it is one of the inputs (choose another -o).")
            if target in others and not _ours(path, out, manifest):
                raise LmppmError(
                    f"-o {output} lies inside an input folder and already holds {path}, which may be one of your "
                    "images: choose an output folder outside the inputs, or an empty one."
                )
            if target in seen:
                raise LmppmError(f"{seen[target]} and {job.source} would both be written to {path}.")
            seen[target] = job.source


def degrade_files(jobs: list[Job], kind: str, value: float, seed: int, on_done=lambda job: None) -> Report:
    """Degrade each file at its own size and channels and write it back in its own mode. A file's
    seed comes from `seed` and its output name, so it does not depend on the other files."""
    from lmppm_cli.core.degradations import degrade  # here: it needs torchvision, which restore does not load

    report = Report()
    for job in jobs:
        try:
            x, info = read_image(job.source)
            gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(job.target.name.encode()))
            save_image(encode(degrade(x, kind, value, gen), info), job.target, info)
            report.written.append(job.target)
        except LmppmError as exc:
            report.failed.append((job.source, str(exc)))
        on_done(job)
    return report


def restore_files(
    model,
    jobs: list[Job],
    restorer: Callable,
    batch_size: int = 64,
    trajectory: bool = False,
    on_done: Callable[[Job], None] = lambda job: None,
    tile: int | None = None,
    overlap: int | None = None,
    report_as: dict | None = None,
) -> Report:
    """Restore every job with `restorer` (methods.py); a file that fails to read or write is reported
    and the rest go on. Images larger than the model's input are restored in tiles (tiling.py) when
    tiling is on for this model; otherwise they are resized to the model's input and back. With no
    model (a classical method) each image is restored whole, at its own size and channels.
    With `report_as` (e.g. {"model": ..., "method": ...}), each written image adds those fields and its
    scores (`row`) to `report.rows`."""
    report = Report()
    tiles = resolve(tile, overlap, model) if model is not None else (0, 0)
    if tiles[0] > 0 and not trajectory and report_as is None:
        banded = [job for job in jobs if streamable(job.source, job.target)]
        _restore_in_bands(model, banded, restorer, tiles, batch_size, report, on_done)
        jobs = [job for job in jobs if job not in banded]
    with _io_pool(len(jobs) > batch_size) as pool:
        batch = _Batch(model, restorer, trajectory, report, on_done, tiles, batch_size, report_as, pool)
        for chunk in read_ahead(pool, jobs, batch_size):
            pending = []
            for job, read in chunk:
                if isinstance(read, LmppmError):
                    report.failed.append((job.source, str(read)))
                    on_done(job)
                else:
                    pending.append((job, *read))
            if pending:
                batch.run(pending)
        batch.finish()
    _channel_note(model, report)
    return report


def _restore_in_bands(model, jobs: list[Job], restorer, tiles, batch_size, report: Report, on_done) -> None:
    """Very large PNGs, band by band (files/bands.py): memory bounded by a band of tiles."""
    import png

    ae = model.config.autoencoder
    tile_fn = lambda b: restorer(b.to(model.device), False).images  # noqa: E731
    for job in jobs:
        try:
            planes = restore_png_in_bands(
                job.source, job.target, tile_fn, ae.channels, (ae.height, ae.width), *tiles, batch_size
            )
            report.written.append(job.target)
            if planes != ae.channels:
                report.notes.append(
                    f"{job.source}: {planes}-channel input converted for a {ae.channels}-channel model."
                )
        except (LmppmError, OSError, ValueError, png.Error) as exc:
            report.failed.append((job.source, f"could not be restored in bands ({exc})"))
        on_done(job)


def _io_pool(wanted: bool):
    """Processes that decode input files and encode results beside the model: Python's GIL makes
    threads slower than none here (10,000 digits: 710 images/s with 4 threads, 1,031 without).
    Forked (Linux), so they start in milliseconds and never import anything; none for a run of one
    batch, whose start-up matters more."""
    if wanted and IO_WORKERS > 0 and sys.platform == "linux":
        return ProcessPoolExecutor(
            IO_WORKERS, mp_context=multiprocessing.get_context("fork"), initializer=_worker_start
        )
    return _Inline()


def _worker_start() -> None:
    """An I/O worker ignores Ctrl-C (the main process stops the run; the worker finishes the file it is
    writing) and ends with the main process even when that is killed (Linux's PR_SET_PDEATHSIG). The
    SIGTERM it then gets removes the temporary file of the write in hand (atomic.remove_in_flight)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_term)
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the main process died before prctl took effect
        os._exit(1)


def _exit_on_term(signum, frame) -> None:
    """Stop at once, removing the temporary file of the write in hand (wherever the signal landed)."""
    remove_in_flight()
    os._exit(1)


class _Inline:
    """An executor that runs each call at once, in this process."""

    def submit(self, fn, *args):
        return _Done(fn(*args))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def read_ahead(pool, jobs: list[Job], size: int):
    """Batches of (job, (image, info) or the LmppmError that reading it raised), decoded by the pool:
    batch i + 1 is read while the caller restores batch i; each batch is split across the workers."""
    chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
    submit = lambda chunk: [pool.submit(_read_many, [j.source for j in part]) for part in _split(chunk)]  # noqa: E731
    ahead = submit(chunks[0]) if chunks else []
    for i in range(len(chunks)):
        current, ahead = ahead, submit(chunks[i + 1]) if i + 1 < len(chunks) else []
        yield list(zip(chunks[i], [_tensor(read) for future in current for read in future.result()]))


def _split(items: list) -> list[list]:
    n = max(IO_WORKERS, 1)
    return [part for part in (items[k * len(items) // n : (k + 1) * len(items) // n] for k in range(n)) if part]


def _read_many(paths: list[Path]) -> list:
    """Decoded files as (array, info): arrays cross processes by value, where tensors would each take
    a shared-memory file."""
    return [read if isinstance(read, LmppmError) else (read[0].numpy(), read[1]) for read in map(_try_read, paths)]


def _tensor(read):
    return read if isinstance(read, LmppmError) else (torch.from_numpy(read[0]), read[1])


def _try_read(path: Path):
    try:
        return read_image(path)
    except LmppmError as exc:
        return exc


@dataclass
class _Batch:
    """Restores a batch of read images: whole images of the model's size in one pass, larger ones in tiles."""

    model: object
    restorer: Callable
    trajectory: bool
    report: Report
    on_done: Callable
    tiles: tuple[int, int]
    batch_size: int
    report_as: dict | None
    pool: object = field(default_factory=lambda: _Inline())  # encodes and writes results (_io_pool)
    staged: list = field(default_factory=list)  # (job, result array, info, report row or None) of this batch
    writing: list = field(default_factory=list)  # ([(job, report row)], future of their write errors)

    def run(self, pending) -> None:
        done_before = self.writing
        self._run(pending)
        self.writing = [
            (
                [(job, line) for job, _, _, line in part],
                self.pool.submit(_write_many, [(job.target, arr, info) for job, arr, info, _ in part]),
            )
            for part in _split(self.staged)
        ]
        self.staged = []
        self._settle(done_before)  # at most two batches of results are in flight

    def finish(self) -> None:
        self._settle(self.writing)
        self.writing = []

    def _run(self, pending) -> None:
        if self.model is None:
            for job, x, info in pending:
                started = time.perf_counter()
                out = self.restorer(x.unsqueeze(0), False).images[0]
                self._done(job, x, out, info, None, time.perf_counter() - started)
            return
        ae = self.model.config.autoencoder
        tiled = [in_tiles(x, self.tiles, self.model) for _, x, _ in pending]
        whole = [x for (_, x, _), t in zip(pending, tiled) if not t]
        started = time.perf_counter()
        result = (
            self.restorer(
                torch.stack([resize(to_channels(x, ae.channels), ae.height, ae.width) for x in whole]).to(
                    self.model.device
                ),
                self.trajectory,
            )
            if whole
            else None
        )
        share = (time.perf_counter() - started) / max(len(whole), 1)
        k = 0
        for i, (job, x, info) in enumerate(pending):
            if tiled[i]:
                started, steps = time.perf_counter(), []
                out = restore_tiled(
                    to_channels(x, ae.channels),
                    lambda b: self._tile(b, steps),  # noqa: B023 (called within this iteration)
                    (ae.height, ae.width),
                    *self.tiles,
                    self.batch_size,
                )
                seconds, taken = time.perf_counter() - started, float(torch.cat(steps).float().mean())
            else:
                out, seconds, taken, k = (
                    resize(result.images[k].cpu(), info.height, info.width),
                    share,
                    float(result.steps_taken[k]),
                    k + 1,
                )
            if (
                self._done(job, x, to_channels(out, x.shape[0]), info, taken, seconds)
                and result is not None
                and result.trajectory
                and not tiled[i]
            ):
                self._strip(job, [t[k - 1] for t in result.trajectory])
            if x.shape[0] != ae.channels:
                self.report.notes.append(
                    f"{job.source}: {x.shape[0]}-channel input converted for a {ae.channels}-channel model."
                )
            self.report.notes += [f"{job.source}: {note}." for note in info.notes]
            if info.bits == 16 and job.target.suffix.lower() not in DEEP_SUFFIXES:
                self.report.notes.append(
                    f"{job.source}: 16-bit colour written with 8 bits per channel ({job.target.suffix} holds 8; .png or .tif keep 16)."
                )

    def _tile(self, b: torch.Tensor, steps: list) -> torch.Tensor:
        result = self.restorer(b.to(self.model.device), False)
        steps.append(result.steps_taken.cpu())
        return result.images

    def _done(self, job, x, out, info, steps, seconds) -> bool:
        """Stage one result for the pool's writers (settled later, in order), or write it here when a
        trajectory strip must follow only a successful write. -> written (True while in flight)."""
        line = (
            row(job, self.report_as, self.model, x, out.cpu(), steps, seconds) if self.report_as is not None else None
        )
        if not self.trajectory:
            self.staged.append((job, to_array(out), info, line))
            return True
        return self._settle([([(job, line)], _Done(_write_many([(job.target, to_array(out), info)])))])

    def _settle(self, writing) -> bool:
        ok = True
        for items, future in writing:
            for (job, line), error in zip(items, future.result()):
                if error is None:
                    self.report.written.append(job.target)
                    if line is not None:
                        self.report.rows.append(line)
                else:
                    self.report.failed.append((job.source, error))
                    ok = False
                self.on_done(job)
        return ok

    def _strip(self, job: Job, frames: list[torch.Tensor]) -> None:
        strip = _grid(torch.stack(frames).cpu(), len(frames))
        try:
            save_image(tensor_to_image(strip), trajectory_path(job.target))
        except LmppmError as exc:
            self.report.failed.append((job.source, str(exc)))


def _write_many(items: list[tuple[Path, object, ImageInfo]]) -> list[str | None]:
    """Encode and write results atomically; -> per item None, or why it could not be written."""
    errors = []
    for target, arr, info in items:
        try:
            save_image(encode_array(arr, info), target, info)
            errors.append(None)
        except LmppmError as exc:
            errors.append(str(exc))
    return errors


@dataclass
class _Done:
    """An already computed result, shaped like a finished Future."""

    value: object

    def result(self):
        return self.value


def row(job: Job, label: dict, model, x: torch.Tensor, out: torch.Tensor, steps: float | None, seconds: float) -> dict:
    """One line of `restore --report`: the learned distance D_S(F(.)) and the residual of the input
    and of the result under the model, the flow's steps, the time (domain.scores)."""
    measured = {"before": x, "after": out}
    values = {}
    for when, image in measured.items():
        s = scores(model, image) if model is not None else None
        values |= {
            f"distance_{when}": s and s.distance,
            f"residual_{when}": s and s.residual,
            f"noise_{when}": estimate_noise(image),
        }
    values |= {"steps": steps, "seconds": seconds}
    rounded = {k: v if v is None else round(float(v), 5) for k, v in values.items()}
    return {"input": str(job.source), "output": str(job.target), **label, **rounded}


def _channel_note(model, report: Report) -> None:
    """Fold per-file channel notes into one sentence."""
    converted = [n for n in report.notes if "converted for a" in n]
    if converted:
        ch = model.config.autoencoder.channels
        kind = "grayscale" if ch == 1 else "colour"
        report.notes = [n for n in report.notes if n not in converted]
        report.notes.append(f"{len(converted)} image(s) were converted to {kind} for this {ch}-channel model.")


def generate_files(
    model,
    n: int,
    out_dir: str | Path,
    seed: int,
    flow: FlowOverride | None = None,
    batch_size: int = 256,
    progression: bool = False,
    start: str = "latent",
    precision: str = "fp32",
) -> Report:
    """`n` samples from noise as sample_0000.png..., plus grid.png and, on request, progression.png
    (one row per sample of the first 8, one column per flow step). The model's method generates
    (methods.generator: the flow, or an ldm's full DDPM chain, which has no progression). `flow`
    overrides the model's generation flow; `precision`: restoration.autocast."""
    from lmppm_cli.methods import generator

    make = generator(model)
    out_dir = Path(out_dir)
    report = Report()
    ae = model.config.autoencoder
    if architecture(ae.arch).skips and ae.skip_dropout == 0:
        report.notes.append(
            "this U-Net was trained without --skip-dropout, so its decoder leans on the encoder's "
            "skips, which generation does not have: expect flat samples (train with --skip-dropout 0.5 to generate)."
        )
    images, steps = [], []
    for first in range(0, n, batch_size):
        seeds = sample_seeds(seed, first, min(batch_size, n - first))
        with autocast(model.device, precision):
            result = make(model, seeds, flow, progression and first == 0, start)
        images.append(result.images.cpu())
        steps = steps or [t[:8].cpu() for t in result.trajectory]
    images = torch.cat(images)
    for i, img in enumerate(images):
        path = out_dir / f"sample_{i:04d}.png"
        save_image(tensor_to_image(img), path)
        report.written.append(path)
    save_image(tensor_to_image(_grid(images, max(1, int(n**0.5)))), out_dir / "grid.png")
    report.written.append(out_dir / "grid.png")
    if progression and steps:
        rows = torch.stack(steps, dim=1).flatten(0, 1)  # (8 * steps, C, H, W), row-major per sample
        save_image(tensor_to_image(_grid(rows, len(steps))), out_dir / "progression.png")
        report.written.append(out_dir / "progression.png")
    return report


def _grid(images: torch.Tensor, per_row: int) -> torch.Tensor:
    """torchvision's make_grid, kept single-channel for gray images."""
    from torchvision.utils import make_grid  # here: torchvision costs ~1.5 s of start-up (issue 14)

    grid = make_grid(images, nrow=per_row, padding=2)
    return grid[:1] if images.shape[1] == 1 else grid


def assign_models(
    jobs: list[Job], models: dict, training: dict[str, dict], photo_table: dict | None = None
) -> tuple[dict[str, list[Job]], dict[Path, Choice], Report]:
    """With no --model: the domain model (or classical method) for each job (domain.choose). -> ({name:
    its jobs}, {source: choice}, a report holding the files that could not be read)."""
    groups: dict[str, list[Job]] = {}
    choices: dict[Path, Choice] = {}
    report = Report()
    for job in jobs:
        try:
            x, _ = read_image(job.source)
        except LmppmError as exc:
            report.failed.append((job.source, str(exc)))
            continue
        choices[job.source] = choose(x, models, training, photo_table)
        groups.setdefault(choices[job.source].name, []).append(job)
    return groups, choices, report


REPORT_SUFFIXES = (".csv", ".json")


def write_rows(rows: list[dict], path: str | Path) -> None:
    """`restore --report`: the rows as CSV or JSON (by suffix), written atomically."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        write_text(path, json.dumps(rows, indent=2) + "\n")
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["input"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())
