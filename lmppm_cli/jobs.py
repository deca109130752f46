"""File-level jobs behind the CLI: which files to restore and where each result goes; restoring them in
batches; writing generated samples. Each output is written atomically and never over an input."""

from __future__ import annotations

import glob
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torchvision.utils import make_grid

from lmppm_cli.config import FlowConfig
from lmppm_cli.degradations import degrade
from lmppm_cli.errors import LmppmError
from lmppm_cli.tiling import resolve, restore_tiled
from lmppm_cli.images import IMAGE_SUFFIXES, ImageInfo, encode, read_image, resize, save_image, tensor_to_image, to_channels
from lmppm_cli.baselines import ldm
from lmppm_cli.restoration import generate, sample_seeds


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


@dataclass
class Report:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def plan_outputs(inputs: list[str], output: str) -> list[Job]:
    """Expand files, folders (recursive) and globs, and map each to its output path (restore, degrade).

    One plain file and an output with an image suffix: file to file. Anything else: `output` is a
    folder and every result keeps its name relative to the folder or glob it came from.
    """
    out = Path(output)
    if out.is_file() and out.suffix.lower() not in IMAGE_SUFFIXES:
        raise LmppmError(f"-o {output} is an existing file that is not an image; give an image name or a folder.")
    if any(Path(item).is_dir() and Path(item).resolve() == out.resolve() for item in inputs):
        raise LmppmError(f"-o {output} is one of the inputs: the results would overwrite the originals.")
    found: list[tuple[Path, Path]] = []  # (source, name relative to its root)
    for item in inputs:
        found += [(src, rel) for src, rel in _expand(item) if not _inside(src, out)]
    if not found:
        raise LmppmError("the inputs hold no images outside the output folder.")
    single = len(inputs) == 1 and Path(inputs[0]).is_file()
    if out.suffix.lower() in IMAGE_SUFFIXES and not out.is_dir():
        if not single:
            raise LmppmError(f"-o {output} names one file but the inputs hold {len(found)} images; give a folder.")
        jobs = [Job(found[0][0], out)]
    else:
        jobs = [Job(src, out / rel) for src, rel in found]
    _check_targets(jobs)
    return jobs


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path` lies in `folder` (earlier outputs are not restored again)."""
    return folder.is_dir() and path.resolve().is_relative_to(folder.resolve())


def _expand(item: str) -> list[tuple[Path, Path]]:
    path = Path(item)
    if path.is_file():
        return [(path, Path(path.name))]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise LmppmError(f"the folder {item} holds no image files.")
        return [(p, p.relative_to(path)) for p in files]
    if glob.has_magic(item):
        base = Path(*_prefix_parts(item))
        files = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
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


def _check_targets(jobs: list[Job]) -> None:
    sources = {j.source.resolve() for j in jobs}
    seen: dict[Path, Path] = {}
    for job in jobs:
        target = job.target.resolve()
        if target in sources:
            raise LmppmError(f"refusing to write {job.target}: it is one of the inputs (choose another -o).")
        if target in seen:
            raise LmppmError(f"{seen[target]} and {job.source} would both be written to {job.target}.")
        seen[target] = job.source


def degrade_files(jobs: list[Job], kind: str, value: float, seed: int, on_done=lambda job: None) -> Report:
    """Degrade each file at its own size and channels and write it back in its own mode. A file's
    seed comes from `seed` and its output name, so it does not depend on the other files."""
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
) -> Report:
    """Restore every job with `restorer` (methods.py); a file that fails to read or write is reported
    and the rest go on. Images larger than the model's input are restored in tiles (tiling.py) when
    tiling is on for this model; otherwise they are resized to the model's input and back. With no
    model (a classical method) each image is restored whole, at its own size and channels."""
    report = Report()
    tiles = resolve(tile, overlap, model) if model is not None else (0, 0)
    pending: list[tuple[Job, torch.Tensor, ImageInfo]] = []
    for job in jobs:
        try:
            x, info = read_image(job.source)
        except LmppmError as exc:
            report.failed.append((job.source, str(exc)))
            on_done(job)
            continue
        pending.append((job, x, info))
        if len(pending) == batch_size:
            _restore_batch(model, pending, restorer, trajectory, report, on_done, tiles, batch_size)
            pending = []
    if pending:
        _restore_batch(model, pending, restorer, trajectory, report, on_done, tiles, batch_size)
    _channel_note(model, report)
    return report


def _restore_batch(model, pending, restorer, trajectory, report, on_done, tiles, batch_size) -> None:
    if model is None:
        for job, x, info in pending:
            _write(job, restorer(x.unsqueeze(0), False).images[0], info, report)
            on_done(job)
        return
    ae = model.config.autoencoder
    tiled = [tiles[0] > 0 and (x.shape[-2] > ae.height or x.shape[-1] > ae.width) for _, x, _ in pending]
    whole = [x for (_, x, _), t in zip(pending, tiled) if not t]
    result = restorer(torch.stack([resize(to_channels(x, ae.channels), ae.height, ae.width) for x in whole]).to(model.device), trajectory) if whole else None
    k = 0
    for i, (job, x, info) in enumerate(pending):
        if tiled[i]:
            fn = lambda b: restorer(b.to(model.device), False).images  # noqa: E731
            out = restore_tiled(to_channels(x, ae.channels), fn, (ae.height, ae.width), *tiles, batch_size)
        else:
            out, k = resize(result.images[k].cpu(), info.height, info.width), k + 1
        if _write(job, to_channels(out, x.shape[0]), info, report) and result is not None and result.trajectory and not tiled[i]:
            strip = _grid(torch.stack([t[k - 1] for t in result.trajectory]).cpu(), len(result.trajectory))
            try:
                save_image(tensor_to_image(strip), job.target.with_name(job.target.stem + ".trajectory.png"))
            except LmppmError as exc:
                report.failed.append((job.source, str(exc)))
        if x.shape[0] != ae.channels:
            report.notes.append(f"{job.source}: {x.shape[0]}-channel input converted for a {ae.channels}-channel model.")
        on_done(job)


def _write(job: Job, image: torch.Tensor, info: ImageInfo, report: Report) -> bool:
    try:
        save_image(encode(image, info), job.target, info)
    except LmppmError as exc:
        report.failed.append((job.source, str(exc)))
        return False
    report.written.append(job.target)
    return True


def _channel_note(model, report: Report) -> None:
    """Fold per-file channel notes into one sentence."""
    converted = [n for n in report.notes if "converted for a" in n]
    if converted:
        ch = model.config.autoencoder.channels
        kind = "grayscale" if ch == 1 else "colour"
        report.notes = [n for n in report.notes if n not in converted]
        report.notes.append(f"{len(converted)} image(s) were converted to {kind} for this {ch}-channel model.")


def generate_files(
    model, n: int, out_dir: str | Path, seed: int, flow: FlowConfig, batch_size: int = 256,
    progression: bool = False, start: str = "latent",
) -> Report:
    """`n` samples from noise as sample_0000.png..., plus grid.png and, on request, progression.png
    (one row per sample of the first 8, one column per flow step). An ldm model runs its full DDPM
    chain instead of the flow (and has no progression)."""
    out_dir = Path(out_dir)
    report = Report()
    ae = model.config.autoencoder
    if ae.arch == "unet" and ae.skip_dropout == 0 and model.config.method != "ldm":
        report.notes.append("this U-Net was trained without --skip-dropout, so its decoder leans on the encoder's "
                            "skips, which generation does not have: expect flat samples (train with --skip-dropout 0.5 to generate).")  # fmt: skip
    images, steps = [], []
    for first in range(0, n, batch_size):
        seeds = sample_seeds(seed, first, min(batch_size, n - first))
        if model.config.method == "ldm":
            images.append(ldm.generate(model, seeds).cpu())
            continue
        result = generate(model, seeds, flow, progression and first == 0, start)
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
    grid = make_grid(images, nrow=per_row, padding=2)
    return grid[:1] if images.shape[1] == 1 else grid
