"""Restoring files: batches of decoded images through a method's restorer (tiling.restore_images), read
and written by the I/O pool beside the model; very large PNGs strip by strip. A file that fails to read,
restore or write is reported and the rest go on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.files.images import DEEP_SUFFIXES, grid, pixel_size, save_image, tensor_to_image, to_array
from lmppm_cli.files.io_pool import Done, Inline, io_pool, read_ahead, split, write_many
from lmppm_cli.files.plan import Job, trajectory_path
from lmppm_cli.files.report_page import thumbnail
from lmppm_cli.files.reports import CHANNELS, Report, row
from lmppm_cli.files.strips import restore_png_in_strips, streamable
from lmppm_cli.files.tiling import Restorer, tile_starts

MIN_SIDE = 8  # pixels: an image with a shorter side holds too little to tell noise from detail; copied unchanged


@dataclass
class Progress:
    """What restore_files tells its caller as it goes: a file is done (written or failed), and n more
    pixels are restored (tile by tile within a large image)."""

    on_file: Callable[[Job], None] = lambda job: None
    on_pixels: Callable[[float], None] = lambda n: None


def restore_files(
    restorer: Restorer,
    jobs: list[Job],
    trajectory: bool = False,
    progress: Progress | None = None,
    report_as: dict | None = None,
    thumbnails: bool = False,
) -> Report:
    """Restore every job with `restorer` (service.restorer), as it restores an image. With `report_as`
    (e.g. {"model": ..., "method": ...}), each written image adds those fields and its scores (`row`)
    to `report.rows`; with `thumbnails` too, each input and result a thumbnail in `report.thumbs`
    (report_page.py)."""
    report, progress = Report(), progress or Progress()
    on_done = progress.on_file
    model = restorer.model
    if restorer.tiles[0] > 0 and not trajectory and report_as is None:
        in_strips = [job for job in jobs if streamable(job.source, job.target)]
        _restore_in_strips(restorer, in_strips, report, progress)
        jobs = [job for job in jobs if job not in in_strips]
    with io_pool(len(jobs) > restorer.batch_size) as pool:
        batch = _Batch(restorer, trajectory, report, progress, report_as, thumbnails, pool)
        for chunk in read_ahead(pool, jobs, restorer.batch_size):
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
    if model is not None:
        report.fold_channel_notes(model.config.autoencoder.channels)
    return report


def _restore_in_strips(restorer: Restorer, jobs: list[Job], report: Report, progress: Progress) -> None:
    """Very large PNGs, strip by strip (files/strips.py): memory bounded by a strip of tiles."""
    import png

    model, tiles, batch_size = restorer.model, restorer.tiles, restorer.batch_size
    ae = model.config.autoencoder
    for job in jobs:
        per_tile = _pixels_per_tile(job.source, tiles)

        def tile_fn(b, per_tile=per_tile):
            out = restorer.fn(b.to(model.device), False).images
            progress.on_pixels(len(b) * per_tile)
            return out

        try:
            planes = restore_png_in_strips(
                job.source, job.target, tile_fn, ae.channels, (ae.height, ae.width), *tiles, batch_size
            )
            report.written.append(job.target)
            if planes != ae.channels:
                report.note(
                    f"{planes}-channel input converted for a {ae.channels}-channel model.", job.source, CHANNELS
                )
        except (LmppmError, OSError, ValueError, png.Error) as exc:
            report.failed.append((job.source, f"could not be restored in strips ({exc})"))
        progress.on_file(job)


def _pixels_per_tile(path, tiles: tuple[int, int]) -> float:
    """An image's pixels over its tiles' count (its header only): what each restored tile adds to progress."""
    width, height = pixel_size(path)
    th, tw = min(tiles[0], height), min(tiles[0], width)
    return width * height / max(1, len(tile_starts(height, th, tiles[1])) * len(tile_starts(width, tw, tiles[1])))


def untouched(x: torch.Tensor) -> str | None:
    """Why an image (C, H, W) is copied unchanged rather than restored, or None: a side under MIN_SIDE
    pixels (too little to tell noise from detail), or one colour throughout (nothing to restore)."""
    if min(x.shape[-2:]) < MIN_SIDE:
        return f"{x.shape[-1]}x{x.shape[-2]}: too small to restore, copied unchanged"
    if bool((x == x[:, :1, :1]).all()):
        return f"{x.shape[-1]}x{x.shape[-2]}: one colour throughout, nothing to restore, copied unchanged"
    return None


@dataclass
class _Batch:
    """Restores a batch of read images and hands the results to the pool's writers."""

    restorer: Restorer
    trajectory: bool
    report: Report
    progress: Progress
    report_as: dict | None
    thumbnails: bool
    pool: Any = field(default_factory=lambda: Inline())  # encodes and writes results (io_pool)
    staged: list = field(default_factory=list)  # (job, result array, info, report row or None) of this batch
    writing: list = field(default_factory=list)  # ([(job, report row)], future of their write errors)

    def run(self, pending) -> None:
        done_before = self.writing
        self._run(pending)
        self.writing = [
            (
                [(job, line) for job, _, _, line in part],
                self.pool.submit(write_many, [(job.target, arr, info) for job, arr, info, _ in part]),
            )
            for part in split(self.staged)
        ]
        self.staged = []
        self._settle(done_before)  # at most two batches of results are in flight

    def finish(self) -> None:
        self._settle(self.writing)
        self.writing = []

    def _run(self, pending) -> None:
        reasons = [untouched(x) for _, x, _ in pending]
        for (job, x, info), why in zip(pending, reasons):
            if why:
                self.report.note(f"{why}.", job.source)
                line = {"input": str(job.source), "output": str(job.target), "note": why}
                self.staged.append(
                    (job, to_array(x), info, None if self.report_as is None else self._thumbs(line, x, x))
                )
        pending = [p for p, why in zip(pending, reasons) if not why]
        for (job, x, info), done in zip(pending, self._restored([x for _, x, _ in pending])):
            if not isinstance(done, str) and not torch.isfinite(done.image).all():
                done = "its result holds NaN or infinite values (a bug of this tool; please report it), so nothing was written"
            if isinstance(done, str):
                self.report.failed.append((job.source, done))
                self.progress.on_file(job)
                continue
            if self._done(job, x, done.image, info, done.steps, done.seconds) and done.frames:
                self._strip(job, done.frames)
            model = self.restorer.model
            if model is not None and x.shape[0] != model.config.autoencoder.channels:
                channels = model.config.autoencoder.channels
                self.report.note(
                    f"{x.shape[0]}-channel input converted for a {channels}-channel model.", job.source, CHANNELS
                )
            for note in info.notes:
                self.report.note(f"{note}.", job.source)
            if info.bits == 16 and job.target.suffix.lower() not in DEEP_SUFFIXES:
                self.report.note(
                    f"16-bit colour written with 8 bits per channel ({job.target.suffix} holds 8; .png or .tif keep 16).",
                    job.source,
                )

    def _restored(self, images: list[torch.Tensor]) -> list:
        """The batch restored together; if that fails, each image alone, so that one image whatever
        breaks on it (a method's limits, its size, memory) fails alone: -> a Restoration or, for an
        image that failed, why, in one sentence."""
        restore = lambda xs: self.restorer(xs, self.trajectory, self.progress.on_pixels)  # noqa: E731
        try:
            return restore(images)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception:  # noqa: BLE001 - found again, image by image, below
            if len(images) == 1:
                return [_failure(images[0], restore)]
        return [_failure(x, restore) for x in images]

    def _done(self, job, x, out, info, steps, seconds) -> bool:
        """Stage one result for the pool's writers (settled later, in order), or write it here when a
        trajectory strip must follow only a successful write. -> written (True while in flight)."""
        line = (
            row(job, self.report_as, self.restorer.model, x, out.cpu(), steps, seconds)
            if self.report_as is not None
            else None
        )
        line = self._thumbs(line, x, out)
        if not self.trajectory:
            self.staged.append((job, to_array(out), info, line))
            return True
        return self._settle([([(job, line)], Done(write_many([(job.target, to_array(out), info)])))])

    def _thumbs(self, line: dict | None, x: torch.Tensor, out: torch.Tensor) -> dict | None:
        """The report line (None without a report) with the input's and the result's thumbnails."""
        if line is None or not self.thumbnails:
            return line
        return {**line, "thumbs": (thumbnail(to_array(x)), thumbnail(to_array(out)))}

    def _settle(self, writing) -> bool:
        ok = True
        for items, future in writing:
            for (job, line), error in zip(items, future.result()):
                if error is None:
                    self.report.written.append(job.target)
                    if line is not None:
                        if "thumbs" in line:
                            self.report.thumbs[line["input"]] = line.pop("thumbs")
                        self.report.rows.append(line)
                else:
                    self.report.failed.append((job.source, error))
                    ok = False
                self.progress.on_file(job)
        return ok

    def _strip(self, job: Job, frames: list[torch.Tensor]) -> None:
        strip = grid(torch.stack(frames).cpu(), len(frames))
        try:
            save_image(tensor_to_image(strip), trajectory_path(job.target))
        except LmppmError as exc:
            self.report.failed.append((job.source, str(exc)))


def _failure(x: torch.Tensor, restore):
    """restore([x])[0], or why it could not be restored, in one sentence."""
    try:
        return restore([x])[0]
    except (KeyboardInterrupt, SystemExit):
        raise
    except LmppmError as exc:
        return str(exc)
    except MemoryError:
        return f"could not be restored: a {x.shape[-1]}x{x.shape[-2]} image needs more memory than there is"
    except Exception as exc:  # noqa: BLE001 - one file's failure, named; the others go on
        return f"could not be restored ({type(exc).__name__}: {str(exc).strip().rstrip('.')})"
