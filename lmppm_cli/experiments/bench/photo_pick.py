"""Suite `photo-pick`: the photo model against blind BM3D on the whole validation scenes (photo-crops'
`validation_photos`: fur, a face, foliage, a building, a smooth sky, a landscape), at Gaussian noise 0
to 0.3 and at the camera-like rows, each photo 8-bit in and out as `lmppm restore` writes it.

It writes, beside results.json and results.md, `photos-vs-bm3d.json`: per noise level, the mean over the
scenes of the estimated noise (as it comes out of clipped 8-bit photos) and of each method's PSNR and
SSIM. For the bundled `photos` model that file is in weights/, and `lmppm restore` with no --model sends
a colour photo to the learned model wherever it is ahead there at the photo's estimated noise
(domain.photo_method). The row `default (no --model)` is that pick made on each noisy photo of the Gaussian
rows, by the table this run writes: the cell of the method it picks (both are deterministic, so running the
pick again would give the same pixels); a section of results.md sets it against each single method.
Differences are paired by scene and draw, with a 95% Student-t interval over them.
Run again into the same folder with the same seed and draws (new weights, or after an interruption: the
cells are saved scene by scene), it keeps BM3D's cells.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from lmppm_cli.experiments.bench.intervals import t_interval
from lmppm_cli.experiments.bench.photos import (
    CAMERA_ROWS,
    camera_rows,
    classical_rows,
    learned_rows,
    noise_levels,
    score_photo,
)
from lmppm_cli.files.atomic import write_text
from lmppm_cli.files.data import validation_photos
from lmppm_cli.files.devices import pick_device
from lmppm_cli.files.weights import load_model, resolve_model

PICK_LEVELS = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
MODEL, BM3D, SINGLE = "LMPPM", "BM3D (blind)", "single pass G(F(x))"
DEFAULT = "default (no --model)"
PAIRED = (("psnr", 2), ("ssim", 4), ("chroma_rmse", 4))  # metrics paired against LMPPM, and their digits


def run_photo_pick(
    out_dir,
    *,
    seed: int,
    limit: int | None = None,
    on_stage=lambda s: None,
    models: dict | None = None,
    draws: int = 1,
    device: str = "auto",
    extra_photos: str | None = None,
) -> dict:
    """The model's default restorer, its single pass and blind BM3D on every validation scene (the first
    `limit` of them); writes results.json, results.md and photos-vs-bm3d.json into out_dir."""
    model = (models or {}).get("lmppm") or "photos"
    path = resolve_model(model)
    net = load_model(path, pick_device(device))
    rows = learned_rows(net, None)
    methods = {MODEL: rows[MODEL], SINGLE: rows[SINGLE], BM3D: classical_rows()[BM3D]}
    scenes = dict(list(validation_photos(extra_photos).items())[:limit])
    degradations = {**noise_levels(PICK_LEVELS), **CAMERA_ROWS, **camera_rows()}
    out = Path(out_dir)
    known = classical_cells(out / "results.json", seed, draws)
    cells = []
    for name, clean in scenes.items():
        stage = lambda s, name=name: on_stage(f"{name}, {s}")  # noqa: E731
        found = {k[1:]: c for k, c in known.items() if k[0] == name}
        cells += [
            c | {"scene": name} for c in score_photo(clean, methods, degradations, seed, draws, stage, known=found)
        ]
        done = {c["scene"] for c in cells}
        later = [c for k, c in known.items() if k[0] not in done]
        save_results(out, seed, draws, cells + later, partial=True)  # an interrupted run keeps BM3D's cells
    table = pick_table(cells, model, hashlib.sha256(Path(path).read_bytes()).hexdigest(), list(scenes))
    write_text(out / "photos-vs-bm3d.json", json.dumps(table, indent=2) + "\n")
    cells += default_cells(cells, table)
    save_results(out, seed, draws, cells, partial=False)
    write_text(out / "results.md", markdown(cells, list(scenes), draws) + default_section(cells))
    return {f"{row['degradation']}: {row['method']}": row["means"] for row in pooled(cells)}


def default_cells(cells: list[dict], table: dict) -> list[dict]:
    """What `lmppm restore photo.png` gives on each noisy photo of the Gaussian rows: domain.photo_method
    at the photo's estimated noise under `table`, draw by draw, and the cell of the method it picks."""
    from lmppm_cli.files.domain import photo_method

    by = {(c["scene"], c["degradation"], c["method"]): c for c in cells}
    out = []
    for (scene, degradation, method), model in by.items():
        if method != MODEL or model["sigma"] is None:
            continue
        bm3d = by[scene, degradation, BM3D]
        # photo_method names BM3D, or None for the learned model
        picks = [model if photo_method(e, table)[0] is None else bm3d for e in model["estimated_noise"]]
        cell = model | {"method": DEFAULT, "picked": [p["method"] for p in picks]}
        for key in ("psnr", "ssim", "chroma_rmse"):
            cell[key] = [p[key][k] for k, p in enumerate(picks)]
        cell["seconds_per_mp"] = sum(p["seconds_per_mp"] for p in picks) / len(picks)
        out.append(cell)
    return out


def default_section(cells: list[dict]) -> str:
    """results.md's part on the pick: per Gaussian row, the default minus each single method (PSNR and
    SSIM, paired by scene and draw), and how often it took BM3D."""
    against = {m: {r["degradation"]: r for r in pooled(cells, m) if r["method"] == DEFAULT} for m in (MODEL, BM3D)}
    lines = [
        "",
        "The default (the pick of `lmppm restore photo.png`, by this run's table) against each single method:",
        "",
        f"| degradation | BM3D picked | {DEFAULT} - LMPPM, PSNR | SSIM | {DEFAULT} - BM3D, PSNR | SSIM |",
        "|---|---|---|---|---|---|",
    ]
    for deg in dict.fromkeys(c["degradation"] for c in cells if c["method"] == DEFAULT):
        picked = [p for c in cells if c["method"] == DEFAULT and c["degradation"] == deg for p in c["picked"]]
        versus = [against[method][deg]["versus"] for method in (MODEL, BM3D)]
        diffs = [f"{v[m].text(d, True)} {_verdict(m, v[m])}" for v in versus for m, d in PAIRED[:2]]
        lines.append(f"| {deg} | {picked.count(BM3D)} of {len(picked)} | {' | '.join(diffs)} |")
    return "\n".join(lines) + "\n"


def save_results(out: Path, seed: int, draws: int, cells: list[dict], partial: bool) -> None:
    """results.json: every cell so far (`partial` while scenes remain), which classical_cells reads back."""
    record = {"suite": "photo-pick", "seed": seed, "draws": draws, "partial": partial, "cells": cells}
    write_text(out / "results.json", json.dumps(record, indent=2))


def classical_cells(results: Path, seed: int, draws: int, kept_methods: tuple[str, ...] = (BM3D,)) -> dict:
    """BM3D's cells (or those of `kept_methods`) of an earlier run into the same folder with the same seed
    and draws, by (scene, degradation, method): they do not depend on the model, so a re-run for new
    weights keeps them."""
    if not results.is_file():
        return {}
    earlier = json.loads(results.read_text())
    if earlier.get("seed") != seed or earlier.get("draws") != draws:  # a run that did not record its draws: anew
        return {}
    kept = [
        c
        for c in earlier["cells"]
        if c["method"] in kept_methods and all(math.isfinite(v) for v in c["psnr"] + c["ssim"])
    ]
    return {(c["scene"], c["degradation"], c["method"]): c for c in kept}  # a cell without numbers: anew


def pooled(cells: list[dict], reference: str = MODEL) -> list[dict]:
    """Per (degradation, method): the mean PSNR and SSIM over scenes and draws, and the paired difference
    to `reference` (this row minus it) with its interval over every (scene, draw)."""
    keys = list(dict.fromkeys((c["degradation"], c["method"]) for c in cells))
    by = {(c["degradation"], c["method"], c["scene"]): c for c in cells}
    scenes = list(dict.fromkeys(c["scene"] for c in cells))
    out = []
    for deg, method in keys:
        row = {"degradation": deg, "method": method, "means": {}, "versus": {}}
        for metric in ("psnr", "ssim", "chroma_rmse"):
            values = [v for s in scenes for v in by[deg, method, s][metric]]
            row["means"][metric] = sum(values) / len(values)
            if method != reference:
                ref = [v for s in scenes for v in by[deg, reference, s][metric]]
                row["versus"][metric] = t_interval([a - b for a, b in zip(values, ref)])
        out.append(row)
    return out


def pick_table(
    cells: list[dict],
    name: str,
    sha256: str,
    scenes: list[str],
    model: str = MODEL,
    suite: str = "photo-pick",
    bf16: str | None = None,
) -> dict:
    """What domain.photo_method reads: per Gaussian noise level (per row where no cell has a level: the
    camera rows), the mean over the scenes of the noisy photos' estimated noise and of the model's and
    blind BM3D's PSNR and SSIM; with `bf16` (its method's name), the model's PSNR under bf16 too, which
    lets `lmppm restore` run it in bf16 (domain.fast_precision)."""
    gaussian = [c for c in cells if c["sigma"] is not None]
    levels: list = sorted({c["sigma"] for c in gaussian})
    if not gaussian:  # the camera rows, in their order
        gaussian = [c | {"sigma": c["degradation"]} for c in cells]
        levels = list(dict.fromkeys(c["sigma"] for c in gaussian))

    def mean(sigma, method, key):
        values = [v for c in gaussian if c["sigma"] == sigma and c["method"] == method for v in c[key]]
        return sum(values) / len(values)

    table = {
        "_about": f"lmppm bench --suite {suite}: the model's default restorer against blind BM3D, mean over the validation scenes, by noise level.",
        "model": name,
        "sha256": sha256,
        "scenes": scenes,
        "sigma": levels,
        "estimated_noise": [mean(s, model, "estimated_noise") for s in levels],
        "model_psnr": [mean(s, model, "psnr") for s in levels],
        "bm3d_psnr": [mean(s, BM3D, "psnr") for s in levels],
        "model_ssim": [mean(s, model, "ssim") for s in levels],
        "bm3d_ssim": [mean(s, BM3D, "ssim") for s in levels],
    }
    if bf16 and any(c["method"] == bf16 for c in gaussian):  # the same model under bf16 autocast
        table["bf16_psnr"] = [mean(s, bf16, "psnr") for s in levels]
    return table


def _verdict(metric: str, interval) -> str:
    """win / loss / tie for the row; a chroma error is better lower, so its sign is turned."""
    return interval.verdict if metric != "chroma_rmse" else {"win": "loss", "loss": "win"}.get(interval.verdict, "tie")


def markdown(
    cells: list[dict], scenes: list[str], draws: int, reference: str = MODEL, suite: str = "photo-pick"
) -> str:
    lines = [
        f"# lmppm bench: {suite}",
        "",
        f"The validation scenes ({', '.join(scenes)}), whole, {draws} draw(s) each, 8-bit in and out. "
        "Mean over the scenes; the difference to LMPPM is paired by scene and draw (95% interval).",
        "",
        f"| degradation | method | PSNR | SSIM | chroma RMSE | PSNR - {reference} | SSIM - {reference} | chroma - {reference} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in pooled(cells, reference):
        v = row["versus"]
        diff = [f"{v[m].text(d, True)} {_verdict(m, v[m])}" if m in v else "" for m, d in PAIRED]
        means = row["means"]
        lines.append(
            f"| {row['degradation']} | {row['method']} | {means['psnr']:.2f} | {means['ssim']:.4f} | "
            f"{means['chroma_rmse']:.4f} | {' | '.join(diff)} |"
        )
    lines += ["", f"{reference} minus blind BM3D, PSNR by scene:", "", "| degradation | " + " | ".join(scenes) + " |"]
    lines.append("|---" * (len(scenes) + 1) + "|")
    by = {(c["degradation"], c["method"], c["scene"]): c for c in cells}
    for deg in dict.fromkeys(c["degradation"] for c in cells):
        gaps = [sum(by[deg, reference, s]["psnr"]) / draws - sum(by[deg, BM3D, s]["psnr"]) / draws for s in scenes]
        lines.append(f"| {deg} | " + " | ".join(f"{g:+.2f}" for g in gaps) + " |")
    return (
        "\n".join(lines) + f"\n\nwin / loss: the row is ahead of / behind {reference} with the interval excluding 0.\n"
    )
