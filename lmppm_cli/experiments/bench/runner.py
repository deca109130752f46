"""The bench runner: every (degradation, method) cell of a suite, scored per image, written as JSON,
Markdown tables and comparison grids."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torchvision.utils import make_grid

from lmppm_cli.files.atomic import write_text
from lmppm_cli.core.degradations import DEGRADATIONS, degrade
from lmppm_cli.core.errors import LmppmError
from lmppm_cli.files.images import save_image, tensor_to_image
from lmppm_cli.core.metrics import classifier_outputs, domain_fid, inception_fid, inception_fid_missing, psnr, ssim

Method = Callable[[torch.Tensor], torch.Tensor]  # degraded (B, C, H, W) -> restored (B, C, H, W)


@dataclass
class Suite:
    """What a suite hands the runner: clean images, degradations, methods, and how to describe them.
    With a `classifier` and `labels` the runner adds FID, per-class FID and accuracy."""

    name: str
    clean: torch.Tensor  # (N, C, H, W)
    degradations: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]]
    methods: dict[str, Method]
    notes: list[str] = field(default_factory=list)
    figure_methods: list[str] = field(default_factory=list)  # columns of the comparison grids
    figure_rows: int = 10
    classifier: torch.nn.Module | None = None
    labels: torch.Tensor | None = None
    checks: Callable[[list], list[str]] | None = None  # extra Markdown lines from the cells
    inception_fid: bool = False  # add Inception FID where torchmetrics can load its network
    limits: dict[str, int] = field(default_factory=dict)  # method -> images it is scored on (slow methods)


@dataclass
class Cell:
    degradation: str
    method: str
    psnr: float
    ssim: float
    seconds_per_image: float
    images: int
    fid: float | None = None
    fid_per_class: float | None = None
    accuracy: float | None = None


@dataclass(frozen=True)
class Entry:
    factory: Callable[..., Suite]
    needs: dict[str, str]  # model kind the suite uses (lmppm, ablation, dae, ldm, classifier) -> default model


SUITES: dict[str, Entry] = {}
KIND_METHOD = {"ablation": "lmppm"}  # a kind whose model file is of another method (else: the kind itself)


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
    if len({(m.config.autoencoder.channels, m.config.autoencoder.height, m.config.autoencoder.width) for m in models.values()}) > 1:
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


def run_suite(name: str, out_dir, *, seed: int, batch_size: int = 250, on_cell=lambda cell: None, **options) -> list[Cell]:
    """Run a suite and write results.json, results.md and grid_*.png into `out_dir`."""
    if name not in SUITES:
        raise LmppmError(f"unknown bench suite {name!r}; available: {', '.join(sorted(SUITES))}.")
    bench = SUITES[name].factory(seed=seed, **options)
    if bench.inception_fid and (missing := inception_fid_missing()):
        bench.inception_fid = False
        bench.notes.append(missing)
    reference = classifier_outputs(bench.classifier, bench.clean)[0] if bench.classifier is not None else None
    cells = []
    for d_index, (deg_name, degrade) in enumerate(bench.degradations.items()):
        gen = torch.Generator().manual_seed(seed * 1000 + d_index)
        degraded = torch.cat([degrade(bench.clean[i : i + batch_size], gen) for i in range(0, len(bench.clean), batch_size)])
        for method_name, method in bench.methods.items():
            cell = _score(bench, deg_name, method_name, method, degraded, reference, batch_size)
            cells.append(cell)
            on_cell(cell)
        if bench.figure_methods:
            _figure(bench, deg_name, degraded, Path(out_dir))
    write_results(bench, cells, Path(out_dir), seed)
    return cells


def _score(bench: Suite, deg_name, method_name, method, degraded, reference, batch_size) -> Cell:
    """One cell; a method with a limit is scored on that many images spread over the set."""
    idx = spread(len(degraded), bench.limits.get(method_name))
    degraded, clean = degraded[idx], bench.clean[idx].cpu()
    outs, seconds = [], 0.0
    for i in range(0, len(degraded), batch_size):
        start = time.perf_counter()
        outs.append(method(degraded[i : i + batch_size]).cpu())
        seconds += time.perf_counter() - start
    out = torch.cat(outs).clamp(0.0, 1.0)
    cell = Cell(deg_name, method_name, psnr(out, clean).mean().item(), ssim(out, clean).mean().item(), seconds / len(clean), len(clean))
    subset = len(idx) < len(bench.clean)  # FID depends on the sample size: none for a subset
    if reference is not None:
        features, predicted = classifier_outputs(bench.classifier, out)
        labels = bench.labels[idx].to(predicted.device)
        if not subset:
            cell.fid, cell.fid_per_class = domain_fid(reference, features, labels)
        cell.accuracy = (predicted == labels).float().mean().item()
    elif bench.inception_fid and not subset:
        cell.fid = inception_fid(clean, out)
    return cell


def _figure(bench: Suite, deg_name: str, degraded: torch.Tensor, out_dir: Path) -> None:
    """Rows of images spread over the set; columns: degraded | each figure method | original."""
    idx = spread(len(bench.clean), bench.figure_rows)
    columns = [degraded[idx].cpu()] + [bench.methods[m](degraded[idx]).cpu() for m in bench.figure_methods] + [bench.clean[idx].cpu()]
    tiles = torch.stack(columns, dim=1).flatten(0, 1)  # (rows * cols, C, H, W)
    grid = make_grid(tiles, nrow=len(columns), padding=2, pad_value=1.0)
    grid = grid[:1] if tiles.shape[1] == 1 else grid
    save_image(tensor_to_image(grid), out_dir / f"grid_{_slug(deg_name)}.png")


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in ".-" else "-" for ch in text)


def write_results(bench: Suite, cells: list[Cell], out_dir: Path, seed: int) -> None:
    notes = list(bench.notes)
    if bench.figure_methods:
        notes.append("grids: " + " | ".join(["degraded", *bench.figure_methods, "original"]) + " (grid_*.png).")
    payload = {"suite": bench.name, "seed": seed, "notes": notes, "cells": [c.__dict__ for c in cells]}
    write_text(out_dir / "results.json", json.dumps(payload, indent=2))
    write_text(out_dir / "results.md", markdown(bench, cells, notes))


def markdown(bench: Suite, cells: list[Cell], notes: list[str]) -> str:
    """Table 1's layout: one table per degradation kind, one row per method, a column group per strength."""
    if any(c.accuracy is not None for c in cells):
        metrics = ("SSIM", "PSNR", "FID", "FID/class", "acc %")
    else:
        metrics = ("PSNR", "SSIM", "FID") if any(c.fid is not None for c in cells) else ("PSNR", "SSIM")
    kinds: dict[str, list[str]] = {}
    for deg in bench.degradations:
        kinds.setdefault(deg.split(" ")[0], []).append(deg)
    by = {(c.degradation, c.method): c for c in cells}
    parts = [f"# lmppm bench: {bench.name}\n"]
    for degs in kinds.values():
        head = "| method | " + " | ".join(f"{d} {m}" for d in degs for m in metrics) + " |"
        rule = "|---|" + "---|" * (len(degs) * len(metrics))
        rows = [f"| {m} | " + " | ".join(_values(by[(d, m)], metrics) for d in degs) + " |" for m in bench.methods]
        parts.append("\n".join([head, rule, *rows]) + "\n")
    ms = {m: 1000 * sum(c.seconds_per_image for c in cells if c.method == m) / len(bench.degradations) for m in bench.methods}
    parts.append("| method | ms / image |\n|---|---|\n" + "\n".join(f"| {m} | {v:.3f} |" for m, v in ms.items()) + "\n")
    if bench.checks is not None:
        parts.append("\n".join(bench.checks(cells)) + "\n")
    parts.append("".join(f"- {n}\n" for n in notes))
    return "\n".join(parts)


def _values(c: Cell, metrics) -> str:
    table = {"SSIM": f"{c.ssim:.3f}", "PSNR": f"{c.psnr:.2f}", "FID": f"{c.fid:.2f}" if c.fid is not None else "",
             "FID/class": f"{c.fid_per_class:.2f}" if c.fid_per_class is not None else "",
             "acc %": f"{100 * c.accuracy:.1f}" if c.accuracy is not None else ""}  # fmt: skip
    return " | ".join(table[m] for m in metrics)
