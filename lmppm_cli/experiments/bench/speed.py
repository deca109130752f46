"""Suite `speed`: how fast each restorer runs on one device, side by side in one process.

Rows: images/s restoring noisy held-out digits (mnist-5k test split, sigma 0.4) with LMPPM (the bundled
flow), Ablation_lmppm (alpha = 0), the DAE's single pass, the LDM's default restoration and the LDM as the
paper runs it (the whole 2000-step reverse chain), at batch sizes 1, 64 and 1024; one flow step split into
its parts; the networks at bf16/fp16 beside fp32; the RGB U-Net restoring a 1000x700 photo in tiles beside
BM3D. Each timing repeats its call (after one untimed warm-up) until `min_seconds` have passed. Peak
memory: torch.cuda.max_memory_allocated on CUDA, the process's peak resident set (VmHWM, reset per row)
on CPU. Writes results.json and results.md naming the machine.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from lmppm_cli.core.bank import kernel_mean
from lmppm_cli.core.flow import normalized_gradient
from lmppm_cli.core.precision import PRECISIONS
from lmppm_cli.experiments.bench.report_speed import PAGE_IMAGES, page_seconds
from lmppm_cli.files.atomic import write_text
from lmppm_cli.files.data import mnist_5k, photo_tensor
from lmppm_cli.files.devices import pick_device
from lmppm_cli.files.images import resize
from lmppm_cli.files.tiling import resolve, restore_tiled
from lmppm_cli.files.weights import load_model, resolve_model
from lmppm_cli.methods import restorer
from lmppm_cli.methods.ldm import LdmOptions

BATCHES = (1, 64, 1024)
NOISE = 0.4
PHOTO_SIZE = (700, 1000)  # (height, width)
MODELS = {"lmppm": "mnist", "dae": "mnist-dae", "ldm": "mnist-ldm", "photos": "photos"}


@dataclass
class Row:
    table: str  # methods, step, precision or photo
    name: str
    batch: int
    seconds: float  # per call
    images_per_s: float
    peak_mb: float
    psnr: float | None = None  # precision rows: against the clean digits
    psnr_vs_fp32: float | None = None


def run_speed(
    out_dir,
    *,
    seed: int,
    limit: int | None = None,
    on_stage=lambda name: None,
    device: str = "auto",
    min_seconds: float = 1.0,
    classical: bool = True,
) -> dict:
    """Time every row, write results.json/results.md into `out_dir`; returns {row label: numbers}.
    `limit` caps the batch sizes (e.g. 64: batches 1 and 64 only)."""
    dev = pick_device(device)
    nets = {k: load_model(resolve_model(v), dev) for k, v in MODELS.items()}
    batches = [b for b in BATCHES if limit is None or b <= limit]
    clean, noisy = _digits(seed, max(batches))
    rows: list[Row] = []
    for name, fn in _methods(nets, seed).items():
        on_stage(name)
        rows += [_row("methods", name, b, lambda b=b: fn(noisy[:b].to(dev)), dev, min_seconds) for b in batches]
    on_stage("one flow step")
    rows += _step_rows(nets, noisy[: max(batches)], dev, min_seconds)
    on_stage("precision")
    rows += _precision_rows(nets, clean, noisy, dev, min_seconds)
    on_stage("photo in tiles")
    rows += _photo_rows(nets["photos"], seed, dev, min_seconds, classical)
    on_stage("report page")
    rows += _page_rows(noisy, dev, limit)
    write_speed(Path(out_dir), rows, dev, seed)
    return {f"{r.name}, batch {r.batch}": _numbers(r) for r in rows}


def _digits(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    test = mnist_5k().held_out().images
    clean = test.repeat(math.ceil(n / len(test)), 1, 1, 1)[:n]
    g = torch.Generator().manual_seed(seed)
    return clean, (clean + NOISE * torch.randn(clean.shape, generator=g)).clamp(0.0, 1.0)


def _methods(nets: dict, seed: int) -> dict[str, Callable]:
    full_chain = nets["ldm"].config.diffusion.steps - 1
    fns = {
        "LMPPM": restorer(nets["lmppm"]),
        "Ablation_lmppm": restorer(nets["lmppm"], "ablation-lmppm"),
        "DAE single pass": restorer(nets["dae"], "dae"),
        f"LDM default ({nets['ldm'].config.diffusion.start_step} steps)": restorer(
            nets["ldm"], "ldm", LdmOptions(seed=seed)
        ),
        f"LDM full chain ({full_chain + 1} steps)": restorer(
            nets["ldm"], "ldm", LdmOptions(seed=seed, start_step=full_chain)
        ),
    }
    return {name: (lambda x, fn=fn: fn(x).images) for name, fn in fns.items()}


def _step_rows(nets: dict, noisy: torch.Tensor, dev, min_seconds: float) -> list[Row]:
    """One flow step's parts at the largest batch (digits) and at a batch of 64 photo tiles. The conv
    model decodes once at the end, not per step; a U-Net decodes and re-encodes at every step."""
    rows = []
    photo = nets["photos"]
    tiles = torch.rand(
        64,
        photo.config.autoencoder.channels,
        photo.config.autoencoder.height,
        photo.config.autoencoder.width,
        generator=torch.Generator().manual_seed(0),
    )
    for label, net, x in (("digits", nets["lmppm"], noisy), ("photo tiles", photo, tiles)):
        x = x.to(dev)
        with torch.no_grad():
            z, skips = net.autoencoder.encode(x)
            decoded = net.autoencoder.decode(z, skips)
        sigma = net.config.flow.sigma_ker
        parts = {
            "kernel mean (Eq. 21)": lambda: kernel_mean(z, net.bank, sigma),
            "distance gradient (Eq. 14)": lambda: normalized_gradient(net.distance, z),
            "decode G": lambda: _no_grad(net.autoencoder.decode, z, skips),
            "re-encode F": lambda: _no_grad(net.autoencoder.encode, decoded),
        }
        rows += [_row("step", f"{label}: {part}", len(x), fn, dev, min_seconds) for part, fn in parts.items()]
    return rows


def _precision_rows(nets: dict, clean: torch.Tensor, noisy: torch.Tensor, dev, min_seconds: float) -> list[Row]:
    """LMPPM and the DAE at the largest batch under each precision (torch.autocast; on CPU too, where
    `lmppm restore` refuses it, to show why)."""
    rows = []
    for name, fn in (("LMPPM", restorer(nets["lmppm"])), ("DAE single pass", restorer(nets["dae"], "dae"))):
        x = noisy.to(dev)
        exact = fn(x, False).images.cpu()
        for precision, dtype in PRECISIONS.items():
            with torch.autocast(dev.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                out = fn(x, False).images.cpu()
                row = _row("precision", f"{name}, {precision}", len(x), lambda: fn(x, False), dev, min_seconds)
            row.psnr, row.psnr_vs_fp32 = _psnr(out, clean), _psnr(out, exact)
            rows.append(row)
    return rows


def _photo_rows(net, seed: int, dev, min_seconds: float, classical: bool) -> list[Row]:
    """The photos U-Net restoring one 1000x700 colour photo (scikit-image's coffee, resized; noise 0.1)
    in tiles as `lmppm restore` does, and BM3D (blind) on the same image, one call."""
    from skimage import data as skdata

    g = torch.Generator().manual_seed(seed)
    photo = resize(photo_tensor(skdata.coffee()), *PHOTO_SIZE)
    noisy = (photo + 0.1 * torch.randn(photo.shape, generator=g)).clamp(0.0, 1.0)
    fn, ae = restorer(net), net.config.autoencoder
    tiles = resolve(None, None, net)
    rows = [
        _row(
            "photo",
            "photos U-Net, tiles",
            1,
            lambda: restore_tiled(noisy, lambda b: fn(b.to(dev), False).images, (ae.height, ae.width), *tiles, 64),
            dev,
            min_seconds,
        )
    ]
    if classical and importlib.util.find_spec("bm3d") is not None:
        from lmppm_cli.methods.classical import denoise

        rows.append(
            _row(
                "photo",
                "BM3D (blind, CPU)",
                1,
                lambda: denoise(noisy.unsqueeze(0), "bm3d"),
                torch.device("cpu"),
                0.0,
                warm=False,
            )
        )
    return rows


def _page_rows(noisy: torch.Tensor, dev, limit: int | None) -> list[Row]:
    """A folder of PAGE_IMAGES digit files (fewer with --limit) restored with --report page.html, and
    its page written alone (report_speed.py)."""
    n = min(PAGE_IMAGES, limit or PAGE_IMAGES)
    batch = noisy[:n].repeat(math.ceil(n / len(noisy[:n])), 1, 1, 1)[:n]
    run, page = page_seconds(batch, str(dev))
    return [
        Row("report", "restore with --report page.html", n, run, n / run, _peak_mb(dev)),
        Row("report", "its page alone", n, page, n / page, _peak_mb(dev)),
    ]


def _no_grad(fn, *args):
    with torch.no_grad():
        return fn(*args)


def _row(table: str, name: str, batch: int, fn: Callable, dev, min_seconds: float, warm: bool = True) -> Row:
    if warm:
        fn()
    _sync(dev)
    _reset_peak(dev)
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        _sync(dev)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            break
    seconds = elapsed / calls
    return Row(table, name, batch, seconds, batch / seconds, _peak_mb(dev))


def _sync(dev) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _reset_peak(dev) -> None:
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        return
    try:  # Linux: writing 5 to clear_refs resets the process's peak resident set (VmHWM)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_mb(dev) -> float:
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20
    try:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float((a.clamp(0, 1) - b).pow(2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def _numbers(r: Row) -> dict[str, float]:
    out = {"images/s": r.images_per_s, "ms/call": 1000 * r.seconds, "peak MB": r.peak_mb}
    if r.psnr is not None and r.psnr_vs_fp32 is not None:
        out |= {"PSNR": r.psnr, "PSNR vs fp32": r.psnr_vs_fp32}
    return out


def machine(dev) -> str:
    """The device in words: GPU name, or CPU model, cores and torch's thread count."""
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)}, torch {torch.__version__}"
    model = platform.processor() or platform.machine()
    try:
        model = next(
            x.split(":", 1)[1].strip()
            for x in Path("/proc/cpuinfo").read_text().splitlines()
            if x.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return f"CPU {model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}"


def checks(rows: list[Row]) -> list[str]:
    """The issue's targets, computed from the rows at the largest batch."""
    big = max(r.batch for r in rows if r.table == "methods")
    rate = {r.name.split(" (")[0]: r.images_per_s for r in rows if r.table == "methods" and r.batch == big}
    lines = [
        f"At batch {big}: LMPPM restores {rate['LMPPM']:,.0f} images/s; "
        f"{rate['LMPPM'] / rate['LDM full chain']:.1f}x the LDM's full chain (target 100x), "
        f"{rate['LMPPM'] / rate['LDM default']:.1f}x its default restoration (target 10x), "
        f"{rate['LMPPM'] / rate['DAE single pass']:.2f}x the DAE's single pass (GPU target 0.67x)."
    ]
    run, page = ([r.seconds for r in rows if r.table == "report"] + [0.0, 0.0])[:2]
    if run > page > 0:
        lines.append(
            f"The report page for {next(r.batch for r in rows if r.table == 'report')} files took {page:.2f} s, "
            f"{100 * page / (run - page):.1f}% of the restore run's own {run - page:.2f} s (target under 10%)."
        )
    return lines


def write_speed(out_dir: Path, rows: list[Row], dev, seed: int) -> None:
    where = machine(dev)
    payload = {
        "suite": "speed",
        "seed": seed,
        "machine": where,
        "rows": [asdict(r) for r in rows],
        "checks": checks(rows),
    }
    write_text(out_dir / "results.json", json.dumps(payload, indent=2))
    write_text(out_dir / "results.md", speed_markdown(rows, where))


def speed_markdown(rows: list[Row], where: str) -> str:
    parts = [f"# lmppm bench: speed\n\nMachine: {where}.\n"]
    methods = [r for r in rows if r.table == "methods"]
    batches = sorted({r.batch for r in methods})
    names = list(dict.fromkeys(r.name for r in methods))
    by = {(r.name, r.batch): r for r in methods}
    head = "| digits, noise 0.4 | " + " | ".join(f"images/s @ {b}" for b in batches) + f" | peak MB @ {batches[-1]} |"
    body = [
        f"| {n} | "
        + " | ".join(f"{by[n, b].images_per_s:,.1f}" for b in batches)
        + f" | {by[n, batches[-1]].peak_mb:,.0f} |"
        for n in names
    ]
    parts.append("\n".join([head, "|---" * (len(batches) + 2) + "|", *body]) + "\n")
    step = [r for r in rows if r.table == "step"]
    parts.append(
        "| one flow step, part | batch | ms |\n|---|---|---|\n"
        + "\n".join(f"| {r.name} | {r.batch} | {1000 * r.seconds:.2f} |" for r in step)
        + "\n"
    )
    prec = [r for r in rows if r.table == "precision"]
    parts.append(
        "| precision (autocast) | batch | images/s | PSNR | PSNR vs fp32 output |\n|---|---|---|---|---|\n"
        + "\n".join(
            f"| {r.name} | {r.batch} | {r.images_per_s:,.1f} | {r.psnr:.2f} | {r.psnr_vs_fp32:.1f} |" for r in prec
        )
        + "\n"
    )
    photo = [r for r in rows if r.table == "photo"]
    mp = PHOTO_SIZE[0] * PHOTO_SIZE[1] / 1e6
    parts.append(
        "| 1000x700 colour photo, noise 0.1 | s / image | s / megapixel | peak MB |\n|---|---|---|---|\n"
        + "\n".join(f"| {r.name} | {r.seconds:.2f} | {r.seconds / mp:.2f} | {r.peak_mb:,.0f} |" for r in photo)
        + "\n"
    )
    page = [r for r in rows if r.table == "report"]
    parts.append(
        "| report page | files | s | images/s |\n|---|---|---|---|\n"
        + "\n".join(f"| {r.name} | {r.batch} | {r.seconds:.2f} | {r.images_per_s:,.0f} |" for r in page)
        + "\n"
    )
    parts.append("".join(f"- {line}\n" for line in checks(rows)))
    return "\n".join(parts)
