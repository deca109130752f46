"""The bench runner: every (degradation, method) cell of a suite, scored per image."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torchvision.utils import make_grid

from lmppm_cli.atomic import write_text
from lmppm_cli.errors import LmppmError
from lmppm_cli.images import save_image, tensor_to_image
from lmppm_cli.metrics import psnr, ssim

Method = Callable[[torch.Tensor], torch.Tensor]  # degraded (B, C, H, W) -> restored (B, C, H, W)


@dataclass
class Suite:
    """What a suite hands the runner: clean images, degradations, methods, and how to describe them."""

    name: str
    clean: torch.Tensor  # (N, C, H, W)
    degradations: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]]
    methods: dict[str, Method]
    notes: list[str] = field(default_factory=list)
    figure_methods: list[str] = field(default_factory=list)  # columns of the comparison grids
    figure_rows: int = 10


@dataclass
class Cell:
    degradation: str
    method: str
    psnr: float
    ssim: float
    seconds_per_image: float
    images: int


SUITES: dict[str, Callable[..., Suite]] = {}


def spread(n_total: int, limit: int | None) -> torch.Tensor:
    """Indices of `limit` images spread evenly over a set (class-ordered sets stay balanced)."""
    if limit is None or limit >= n_total:
        return torch.arange(n_total)
    return torch.linspace(0, n_total - 1, limit).round().long()


def suite(name: str):
    def register(factory):
        SUITES[name] = factory
        return factory

    return register


def run_suite(name: str, out_dir, *, seed: int, batch_size: int = 250, on_cell=lambda cell: None, **options) -> list[Cell]:
    if name not in SUITES:
        raise LmppmError(f"unknown bench suite {name!r}; available: {', '.join(sorted(SUITES))}.")
    bench = SUITES[name](seed=seed, **options)
    cells = []
    for d_index, (deg_name, degrade) in enumerate(bench.degradations.items()):
        gen = torch.Generator().manual_seed(seed * 1000 + d_index)
        degraded = torch.cat([degrade(bench.clean[i : i + batch_size], gen) for i in range(0, len(bench.clean), batch_size)])
        for method_name, method in bench.methods.items():
            cell = _score(deg_name, method_name, method, degraded, bench.clean, batch_size)
            cells.append(cell)
            on_cell(cell)
        if bench.figure_methods:
            _figure(bench, deg_name, degraded, Path(out_dir))
    write_results(bench, cells, Path(out_dir), seed)
    return cells


def _figure(bench: Suite, deg_name: str, degraded: torch.Tensor, out_dir: Path) -> None:
    """Rows of images spread over the set; columns: degraded | each figure method | original."""
    idx = spread(len(bench.clean), bench.figure_rows)
    columns = [degraded[idx]] + [bench.methods[m](degraded[idx]).cpu() for m in bench.figure_methods] + [bench.clean[idx]]
    tiles = torch.stack(columns, dim=1).flatten(0, 1)  # (rows * cols, C, H, W)
    grid = make_grid(tiles.cpu(), nrow=len(columns), padding=2, pad_value=1.0)
    grid = grid[:1] if tiles.shape[1] == 1 else grid
    save_image(tensor_to_image(grid), out_dir / f"grid_{_slug(deg_name)}.png")


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in ".-" else "-" for ch in text)


def _score(deg_name, method_name, method, degraded, clean, batch_size) -> Cell:
    p, s, seconds = [], [], 0.0
    for i in range(0, len(clean), batch_size):
        start = time.perf_counter()
        out = method(degraded[i : i + batch_size]).cpu()
        seconds += time.perf_counter() - start
        p.append(psnr(out, clean[i : i + batch_size]))
        s.append(ssim(out, clean[i : i + batch_size]))
    return Cell(deg_name, method_name, torch.cat(p).mean().item(), torch.cat(s).mean().item(), seconds / len(clean), len(clean))


def write_results(bench: Suite, cells: list[Cell], out_dir: Path, seed: int) -> None:
    notes = list(bench.notes)
    if bench.figure_methods:
        notes.append("grids: " + " | ".join(["degraded", *bench.figure_methods, "original"]) + " (grid_*.png).")
    payload = {"suite": bench.name, "seed": seed, "notes": notes, "cells": [c.__dict__ for c in cells]}
    write_text(out_dir / "results.json", json.dumps(payload, indent=2))
    write_text(out_dir / "results.md", markdown_table(bench, cells, notes))


def markdown_table(bench: Suite, cells: list[Cell], notes: list[str]) -> str:
    """One row per method, a PSNR / SSIM column pair per degradation."""
    degs = list(bench.degradations)
    head = "| method | " + " | ".join(f"{d} PSNR | {d} SSIM" for d in degs) + " | ms / image |"
    rule = "|---|" + "---|---|" * len(degs) + "---|"
    rows = []
    for method in bench.methods:
        mine = {c.degradation: c for c in cells if c.method == method}
        vals = " | ".join(f"{mine[d].psnr:.2f} | {mine[d].ssim:.3f}" for d in degs)
        ms = 1000 * sum(c.seconds_per_image for c in mine.values()) / len(mine)
        rows.append(f"| {method} | {vals} | {ms:.2f} |")
    bullets = "".join(f"\n- {n}" for n in notes)
    return f"# lmppm bench: {bench.name}\n\n{head}\n{rule}\n" + "\n".join(rows) + f"\n{bullets}\n"
