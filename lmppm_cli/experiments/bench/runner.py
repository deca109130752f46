"""The bench runner: every (degradation, method) cell of a suite, scored per image over several seeded
draws of each degradation (the same images and draws for every method), with 95% bootstrap intervals
and paired differences to the suite's reference method (intervals.py), written as JSON, Markdown
tables and comparison grids."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid

from lmppm_cli.core.degradations import DEGRADATIONS, degrade
from lmppm_cli.core.errors import LmppmError
from lmppm_cli.core.metrics import classifier_outputs, domain_fid, inception_fid, inception_fid_missing, psnr, ssim
from lmppm_cli.experiments.bench.intervals import RESAMPLES, Interval, Resamples, fid_interval, mean_interval
from lmppm_cli.files.atomic import write_text
from lmppm_cli.files.images import save_image, tensor_to_image

Method = Callable[[torch.Tensor], torch.Tensor]  # degraded (B, C, H, W) -> restored (B, C, H, W)
DRAWS = 3  # seeded draws of every degradation
DRAW_STRIDE = 100_003  # draw k of degradation d is seeded seed * 1000 + d + k * DRAW_STRIDE


@dataclass(frozen=True)
class PerRow:
    """A method whose setting is chosen for each degradation apart: `for_row(name, degrade)` gives the
    Method for the degradation `name` (degrade(x, generator) makes its inputs), e.g. chosen on validation."""

    for_row: Callable[[str, Callable], Method]


@dataclass
class Suite:
    """What a suite hands the runner: clean images, degradations, methods, and how to describe them.
    With a `classifier` and `labels` the runner adds FID, per-class FID and accuracy."""

    name: str
    clean: torch.Tensor  # (N, C, H, W)
    degradations: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]]
    methods: dict[str, Method | PerRow]
    notes: list[str] = field(default_factory=list)
    figure_methods: list[str] = field(default_factory=list)  # columns of the comparison grids
    figure_rows: int = 10
    classifier: torch.nn.Module | None = None
    labels: torch.Tensor | None = None
    checks: Callable[[list], list[str]] | None = None  # extra Markdown lines from the cells
    inception_fid: bool = False  # add Inception FID where torchmetrics can load its network
    limits: dict[str, int] = field(default_factory=dict)  # method -> images it is scored on (slow methods)
    reference: str | None = "LMPPM"  # every other row is compared with this one, paired


@dataclass
class Cell:
    """Means over the draws and images; `intervals`: metric -> [low, high] (95%); `versus`: metric ->
    the paired difference reference - this row (FID: this row - reference, so > 0 means the reference
    is ahead), its interval and the reference's verdict (win / tie / loss)."""

    degradation: str
    method: str
    psnr: float
    ssim: float
    seconds_per_image: float
    images: int
    fid: float | None = None
    fid_per_class: float | None = None
    accuracy: float | None = None
    draws: int = 1
    intervals: dict = field(default_factory=dict)
    versus: dict = field(default_factory=dict)


@dataclass
class Scores:
    """Per (draw, image) scores of one cell, on the images `index` of the suite."""

    index: torch.Tensor
    psnr: torch.Tensor  # (D, n)
    ssim: torch.Tensor
    correct: torch.Tensor | None = None  # (D, n) 0/1
    features: torch.Tensor | None = None  # (D, n, F) classifier features


@dataclass(frozen=True)
class Entry:
    factory: Callable[..., Suite]
    needs: dict[str, str]  # model kind the suite uses (lmppm, ablation, dae, ldm, classifier) -> default model


SUITES: dict[str, Entry] = {}
KIND_METHOD = {
    "ablation": "lmppm",
    "eq20": "lmppm",
}  # a kind whose model file is of another method (else: the kind itself)


def suite(name: str, needs: dict[str, str]):
    def register(factory):
        SUITES[name] = Entry(factory, needs)
        return factory

    return register


def at_strength(kind: str, value: float) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """A degradation as a suite lists it, (images, generator) -> images, at an explicit strength."""
    return functools.partial(_degrade, kind=kind, value=value)


def _degrade(x, generator, kind, value):
    return degrade(x, kind, value, generator)


def check_same_input(models: dict) -> None:
    """The models of one bench run must take the same image size and channels."""
    if (
        len(
            {
                (m.config.autoencoder.channels, m.config.autoencoder.height, m.config.autoencoder.width)
                for m in models.values()
            }
        )
        > 1
    ):
        raise LmppmError("the models of a bench run must share their image size and channels.")


def degradation_kinds(names: list[str] | None) -> list[str]:
    """The kinds a suite runs: all of Table 6 by default, else the names given, checked."""
    names = list(DEGRADATIONS) if not names else names
    unknown = [n for n in names if n not in DEGRADATIONS]
    if unknown:
        raise LmppmError(f"unknown degradation {unknown[0]!r}; choose from {', '.join(DEGRADATIONS)}.")
    return names


def spread(n_total: int, limit: int | None) -> torch.Tensor:
    """Indices of `limit` images spread evenly over a set (class-ordered sets stay balanced)."""
    if limit is None or limit >= n_total:
        return torch.arange(n_total)
    return torch.linspace(0, n_total - 1, limit).round().long()


def run_suite(
    name: str,
    out_dir,
    *,
    seed: int,
    batch_size: int = 250,
    draws: int = DRAWS,
    on_cell=lambda cell: None,
    on_start=lambda cells: None,
    **options,
) -> list[Cell]:
    """Run a suite and write results.json, results.md and grid_*.png into `out_dir`. `on_start(n)`: the
    suite has n cells; `on_cell(cell)`: one of them is scored."""
    if name not in SUITES:
        raise LmppmError(f"unknown bench suite {name!r}; available: {', '.join(sorted(SUITES))}.")
    bench = SUITES[name].factory(seed=seed, **options)
    if bench.inception_fid and (missing := inception_fid_missing()):
        bench.inception_fid = False
        bench.notes.append(missing)
    on_start(len(bench.degradations) * len(bench.methods))
    reference = classifier_outputs(bench.classifier, bench.clean)[0] if bench.classifier is not None else None
    resamples = functools.cache(lambda n: Resamples.of(draws, n, RESAMPLES, seed))
    cells = []
    for d_index, (deg_name, damage) in enumerate(bench.degradations.items()):
        inputs = [_degraded(bench, damage, seed * 1000 + d_index + k * DRAW_STRIDE, batch_size) for k in range(draws)]
        scored = {}
        for method_name, method in bench.methods.items():
            method = method.for_row(deg_name, damage) if isinstance(method, PerRow) else method
            scored[method_name] = _score(bench, deg_name, method_name, method, inputs, reference, batch_size, resamples)
            on_cell(scored[method_name][0])
        _compare(bench, scored, reference, resamples)
        cells += [cell for cell, _ in scored.values()]
        if bench.figure_methods:
            _figure(bench, deg_name, inputs[0], Path(out_dir))
    write_results(bench, cells, Path(out_dir), seed)
    return cells


def _degraded(bench: Suite, degrade, seed: int, batch_size: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([degrade(bench.clean[i : i + batch_size], gen) for i in range(0, len(bench.clean), batch_size)])


def _score(
    bench: Suite, deg_name, method_name, method, inputs, reference, batch_size, resamples
) -> tuple[Cell, Scores]:
    """One cell over every draw; a method with a limit is scored on that many images spread over the set."""
    idx = spread(len(bench.clean), bench.limits.get(method_name))
    clean = bench.clean[idx].cpu()
    per_draw, seconds = [], 0.0
    for degraded in inputs:
        outs = []
        for i in range(0, len(idx), batch_size):
            start = time.perf_counter()
            outs.append(method(degraded[idx[i : i + batch_size]]).cpu())
            seconds += time.perf_counter() - start
        per_draw.append(torch.cat(outs).clamp(0.0, 1.0))
    scores = Scores(
        idx, torch.stack([psnr(o, clean) for o in per_draw]), torch.stack([ssim(o, clean) for o in per_draw])
    )
    n, d = len(idx), len(inputs)
    cell = Cell(
        deg_name, method_name, scores.psnr.mean().item(), scores.ssim.mean().item(), seconds / (n * d), n, draws=d
    )
    subset = n < len(bench.clean)  # FID depends on the sample size: none for a subset
    if reference is not None and bench.labels is not None:
        labels = bench.labels[idx]
        outputs = [classifier_outputs(bench.classifier, o) for o in per_draw]
        scores.features = torch.stack([f for f, _ in outputs])
        scores.correct = torch.stack([(p == labels.to(p.device)).float().cpu() for _, p in outputs])
        cell.accuracy = scores.correct.mean().item()
        if not subset:
            fids = [domain_fid(reference, f, labels) for f in scores.features]
            cell.fid, cell.fid_per_class = (sum(v) / d for v in zip(*fids))
    elif bench.inception_fid and not subset:
        cell.fid = sum(inception_fid(clean, o) for o in per_draw) / d
    cell.intervals = _intervals(scores, reference, resamples(n), subset)
    return cell, scores


def _intervals(scores: Scores, reference, resamples: Resamples, subset: bool) -> dict:
    out = {"psnr": mean_interval(scores.psnr, resamples), "ssim": mean_interval(scores.ssim, resamples)}
    if scores.correct is not None:
        out["accuracy"] = mean_interval(scores.correct, resamples)
        if not subset and scores.features is not None:
            out["fid"] = fid_interval(reference, scores.features, resamples)
    return {k: [v.low, v.high] for k, v in out.items()}


def _compare(bench: Suite, scored: dict, reference, resamples) -> None:
    """Each row's paired difference to the reference row, on the images the row was scored on."""
    if bench.reference not in scored:
        return
    ref = scored[bench.reference][1]
    for name, (cell, row) in scored.items():
        if name == bench.reference:
            continue
        res, full = resamples(len(row.index)), len(row.index) == len(ref.index)
        diffs = {
            "psnr": mean_interval(ref.psnr[:, row.index] - row.psnr, res),
            "ssim": mean_interval(ref.ssim[:, row.index] - row.ssim, res),
        }
        if row.correct is not None:
            diffs["accuracy"] = mean_interval(ref.correct[:, row.index] - row.correct, res)
            if full:
                diffs["fid"] = fid_interval(reference, row.features, res, minus=ref.features)
        cell.versus = {
            k: {"mean": v.mean, "low": v.low, "high": v.high, "verdict": v.verdict} for k, v in diffs.items()
        }


def _plain(method: Method | PerRow) -> Method:
    """A figure column's method: one setting for every degradation."""
    if isinstance(method, PerRow):
        raise TypeError("a comparison grid shows methods with one setting, not one per degradation")
    return method


def _figure(bench: Suite, deg_name: str, degraded: torch.Tensor, out_dir: Path) -> None:
    """Rows of images spread over the set; columns: degraded | each figure method | original."""
    idx = spread(len(bench.clean), bench.figure_rows)
    columns = (
        [degraded[idx].cpu()]
        + [_plain(bench.methods[m])(degraded[idx]).cpu() for m in bench.figure_methods]
        + [bench.clean[idx].cpu()]
    )
    tiles = torch.stack(columns, dim=1).flatten(0, 1)  # (rows * cols, C, H, W)
    grid = make_grid(tiles, nrow=len(columns), padding=2, pad_value=1.0)
    grid = grid[:1] if tiles.shape[1] == 1 else grid
    labels = ["degraded", *bench.figure_methods, "original"]
    save_image(labelled(tensor_to_image(grid), labels), out_dir / f"grid_{slug(deg_name)}.png")


def labelled(grid: Image.Image, columns: list[str]) -> Image.Image:
    """The grid, scaled up (nearest) until each column is wide enough, under a band naming its columns."""
    from PIL import ImageDraw

    longest = max(len(c) for c in columns)
    scale = max(1, -(-6 * longest // (grid.width // len(columns))))  # about 6 pixels per character
    big = grid.resize((grid.width * scale, grid.height * scale), Image.Resampling.NEAREST).convert("RGB")
    out = Image.new("RGB", (big.width, big.height + 14), "white")
    out.paste(big, (0, 14))
    draw, step = ImageDraw.Draw(out), big.width / len(columns)
    for i, name in enumerate(columns):
        draw.text((i * step + 2, 1), name, fill="black")
    return out


def slug(text: str) -> str:
    """A file-name part from a row or method name."""
    return "".join(ch if ch.isalnum() or ch in ".-" else "-" for ch in text)


def write_results(bench: Suite, cells: list[Cell], out_dir: Path, seed: int) -> None:
    notes = list(bench.notes)
    if bench.figure_methods:
        notes.append("grids: " + " | ".join(["degraded", *bench.figure_methods, "original"]) + " (grid_*.png).")
    payload = {"suite": bench.name, "seed": seed, "notes": notes, "cells": [c.__dict__ for c in cells]}
    write_text(out_dir / "results.json", json.dumps(payload, indent=2))
    write_text(out_dir / "results.md", markdown(bench, cells, notes))


def markdown(bench: Suite, cells: list[Cell], notes: list[str]) -> str:
    """Table 1's layout: one table per degradation kind, one row per method, a column group per strength;
    each figure +- the half-width of its 95% interval. Then the paired differences to the reference."""
    metrics: tuple[str, ...]
    if any(c.accuracy is not None for c in cells):
        metrics = ("SSIM", "PSNR", "FID", "FID/class", "acc %")
    else:
        metrics = ("PSNR", "SSIM", "FID") if any(c.fid is not None for c in cells) else ("PSNR", "SSIM")
    kinds: dict[str, list[str]] = {}
    for deg in bench.degradations:
        kinds.setdefault(deg.split(" ")[0], []).append(deg)
    by = {(c.degradation, c.method): c for c in cells}
    draws = max(c.draws for c in cells) if cells else 1
    parts = [
        f"# lmppm bench: {bench.name}\n",
        f"Each figure: the mean over the images and {draws} draws of each degradation, "
        "+- the half-width of its 95% bootstrap interval (images and draws resampled).\n",
    ]
    for degs in kinds.values():
        head = "| method | " + " | ".join(f"{d} {m}" for d in degs for m in metrics) + " |"
        rule = "|---|" + "---|" * (len(degs) * len(metrics))
        rows = [f"| {m} | " + " | ".join(_values(by[(d, m)], metrics) for d in degs) + " |" for m in bench.methods]
        parts.append("\n".join([head, rule, *rows]) + "\n")
    ms = {
        m: 1000 * sum(c.seconds_per_image for c in cells if c.method == m) / len(bench.degradations)
        for m in bench.methods
    }
    parts.append("| method | ms / image |\n|---|---|\n" + "\n".join(f"| {m} | {v:.3f} |" for m, v in ms.items()) + "\n")
    if bench.reference is not None and any(c.versus for c in cells):
        parts.append(paired_table(bench.reference, cells))
    if bench.checks is not None:
        parts.append("\n".join(bench.checks(cells)) + "\n")
    parts.append("".join(f"- {n}\n" for n in notes))
    return "\n".join(parts)


VERSUS = (("psnr", "PSNR", 2, 1), ("ssim", "SSIM", 3, 1), ("fid", "FID", 2, 1), ("accuracy", "acc %", 1, 100))


def paired_table(reference: str, cells: list[Cell]) -> str:
    """One line per (degradation, row): the reference minus the row (FID: the row minus the reference),
    with its paired 95% interval and the reference's win / tie / loss."""
    present = [v for v in VERSUS if any(v[0] in c.versus for c in cells)]
    lines = [
        f"Paired against {reference} (positive: {reference} ahead; on the row's images and draws):",
        "",
        "| degradation | row | " + " | ".join(label for _, label, _, _ in present) + " |",
        "|---|---|" + "---|" * len(present),
    ]
    for c in cells:
        if not c.versus:
            continue
        parts = []
        for key, _, digits, scale in present:
            d = c.versus.get(key)
            parts.append(
                ""
                if d is None
                else f"{Interval(*(scale * d[k] for k in ('mean', 'low', 'high'))).text(digits, signed=True)} {d['verdict']}"
            )
        lines.append(f"| {c.degradation} | {c.method} | " + " | ".join(parts) + " |")
    return "\n".join(lines) + "\n"


def _pm(value: float | None, interval, digits: int, scale: float = 1.0) -> str:
    if value is None:
        return ""
    if not interval:
        return f"{scale * value:.{digits}f}"
    half = scale * max(value - interval[0], interval[1] - value)
    return f"{scale * value:.{digits}f}±{half:.{digits}f}"


def _values(c: Cell, metrics) -> str:
    iv = c.intervals
    table = {
        "SSIM": _pm(c.ssim, iv.get("ssim"), 3),
        "PSNR": _pm(c.psnr, iv.get("psnr"), 2),
        "FID": _pm(c.fid, iv.get("fid"), 2),
        "FID/class": _pm(c.fid_per_class, None, 2),
        "acc %": _pm(c.accuracy, iv.get("accuracy"), 1, 100),
    }
    return " | ".join(table[m] for m in metrics)
