"""Degraded copies of image files (`lmppm degrade`), seeded per file, each at its own size and mode."""

from __future__ import annotations

import zlib

import torch

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.files.images import encode, read_image, save_image
from lmppm_cli.files.plan import Job
from lmppm_cli.files.reports import Report


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
