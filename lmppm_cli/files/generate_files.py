"""Generated samples written as files: each sample, the grid of them all and, on request, the flow's
progression (Fig. 9)."""

from __future__ import annotations

from pathlib import Path

import torch

from lmppm_cli.core.config import FlowOverride
from lmppm_cli.core.precision import autocast
from lmppm_cli.core.restoration import sample_seeds
from lmppm_cli.files.images import grid, save_image, tensor_to_image
from lmppm_cli.files.reports import Report


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
    overrides the model's generation flow; `precision`: precision.autocast."""
    from lmppm_cli.files.catalog import bundled_entries
    from lmppm_cli.methods import generator

    make = generator(model, [row["name"] for row in bundled_entries() if row["generates"] == "yes"])
    out_dir = Path(out_dir)
    report = Report()
    batches: list[torch.Tensor] = []
    steps: list[torch.Tensor] = []
    for first in range(0, n, batch_size):
        seeds = sample_seeds(seed, first, min(batch_size, n - first))
        with autocast(model.device, precision):
            result = make(model, seeds, flow, progression and first == 0, start)
        batches.append(result.images.cpu())
        steps = steps or [t[:8].cpu() for t in result.trajectory]
    images = torch.cat(batches)
    for i, img in enumerate(images):
        path = out_dir / f"sample_{i:04d}.png"
        save_image(tensor_to_image(img), path)
        report.written.append(path)
    save_image(tensor_to_image(grid(images, max(1, int(n**0.5)))), out_dir / "grid.png")
    report.note(f"{out_dir / 'grid.png'} shows them all.")
    if progression and steps:
        rows = torch.stack(steps, dim=1).flatten(0, 1)  # (8 * steps, C, H, W), row-major per sample
        save_image(tensor_to_image(grid(rows, len(steps))), out_dir / "progression.png")
        report.note(f"{out_dir / 'progression.png'} shows the first 8 after each step.")
    return report
