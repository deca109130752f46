"""The I/O pool: processes that decode input files and encode results beside the model, so that reading
batch i + 1 and writing batch i - 1 overlap restoring batch i."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.files.atomic import remove_in_flight
from lmppm_cli.files.images import ImageInfo, encode_array, read_image, save_image
from lmppm_cli.files.plan import Job

PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies
IO_WORKERS = 2  # processes that decode input files and encode results beside the model (io_pool)


def io_pool(wanted: bool):
    """Processes that decode input files and encode results beside the model: Python's GIL makes
    threads slower than none here (10,000 digits: 710 images/s with 4 threads, 1,031 without).
    Forked (Linux), so they start in milliseconds and never import anything; none for a run of one
    batch, whose start-up matters more."""
    if wanted and IO_WORKERS > 0 and sys.platform == "linux":
        return ProcessPoolExecutor(
            IO_WORKERS, mp_context=multiprocessing.get_context("fork"), initializer=_worker_start
        )
    return Inline()


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


class Inline:
    """An executor that runs each call at once, in this process."""

    def submit(self, fn, *args):
        return Done(fn(*args))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def read_ahead(pool, jobs: list[Job], size: int):
    """Batches of (job, (image, info) or the LmppmError that reading it raised), decoded by the pool:
    batch i + 1 is read while the caller restores batch i; each batch is split across the workers."""
    chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
    submit = lambda chunk: [pool.submit(_read_many, [j.source for j in part]) for part in split(chunk)]  # noqa: E731
    ahead = submit(chunks[0]) if chunks else []
    for i in range(len(chunks)):
        current, ahead = ahead, submit(chunks[i + 1]) if i + 1 < len(chunks) else []
        yield list(zip(chunks[i], [_tensor(read) for future in current for read in future.result()]))


def split(items: list) -> list[list]:
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


def write_many(items: list[tuple[Path, np.ndarray, ImageInfo]]) -> list[str | None]:
    """Encode and write results atomically; -> per item None, or why it could not be written."""
    errors: list[str | None] = []
    for target, arr, info in items:
        try:
            save_image(encode_array(arr, info), target, info)
            errors.append(None)
        except LmppmError as exc:
            errors.append(str(exc))
    return errors


@dataclass
class Done:
    """An already computed result, shaped like a finished Future."""

    value: object

    def result(self):
        return self.value
