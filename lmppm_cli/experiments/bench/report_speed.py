"""The report page's cost, for the speed suite: `lmppm restore` of a folder of small images with
`--report page.html` (the whole run, as a user runs it, the page included) beside writing the same page
again from the run's report alone. Issue 45's target: the page under 10% of the run's own time."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from lmppm_cli.files.images import save_image, tensor_to_image
from lmppm_cli.files.report_page import write_page

PAGE_IMAGES = 1000


def page_seconds(noisy: torch.Tensor, device: str) -> tuple[float, float]:
    """(seconds of the restore run with --report page.html, seconds of writing its page alone) for the
    images `noisy` (N, C, H, W), written as PNG files and restored by the bundled `mnist`."""
    from lmppm_cli import service

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for i, x in enumerate(noisy):
            save_image(tensor_to_image(x), folder / f"{i:05d}.png")
        request = service.RestoreRequest(
            (str(folder),), f"{tmp}/out/", model="mnist", device=device, report=(f"{tmp}/page.html",)
        )
        start = time.perf_counter()
        report = service.restore(request)
        run = time.perf_counter() - start
        start = time.perf_counter()
        write_page(f"{tmp}/again.html", report.rows, [(str(s), w) for s, w in report.failed], report.thumbs, run)
        return run, time.perf_counter() - start
