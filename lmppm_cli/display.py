"""What the CLI shows on the terminal: progress bars, the pick's choices, a run's notes and counts,
training epochs and bench tables (rich). Everything here prints; nothing here computes."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

if TYPE_CHECKING:
    from pathlib import Path

    from lmppm_cli.core.train_config import TrainRequest

err = Console(stderr=True)
out = Console()


def bar(quiet: bool = False) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
        disable=quiet,
    )


def megapixel_bar(quiet: bool = False) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.2f}/{task.total:.2f} Mpx"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
        disable=quiet,
    )


def stop(progress: Progress) -> None:
    """Stop a progress display that was started; one never started draws nothing."""
    if progress.live.is_started:
        progress.stop()


def say(text: str) -> None:
    err.print(text, highlight=False, soft_wrap=True)


def choices(counts: list[tuple[str, int, list[str]]], warnings: list[str]) -> None:
    """Which model (or classical method) the files went to and why, and every warning."""
    from lmppm_cli.methods.classical import CLASSICAL

    for name, n, reasons in counts:
        if reasons:
            kind = "method" if name in CLASSICAL else "model"
            reasons = merged_reasons(reasons)
            more = "; ..." if len(reasons) > 2 else ""
            say(f"{kind}: {name} for {n} file(s) ({'; '.join(reasons[:2])}{more}).")
    for warning in warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)


NUMBER = re.compile(r"\d+(?:\.\d+)?")


def merged_reasons(reasons: list[str]) -> list[str]:
    """Reasons that differ only in their numbers as one, each number that differs shown as its range
    ("estimated noise 0.071-0.093"), in their first order."""
    groups: dict[str, list[list[str]]] = {}
    for reason in reasons:
        groups.setdefault(NUMBER.sub("#", reason), []).append(NUMBER.findall(reason))
    merged = []
    for template, numbers in groups.items():
        parts = template.split("#")
        text = parts[0]
        for i, part in enumerate(parts[1:]):
            values = sorted({n[i] for n in numbers}, key=float)
            text += (values[0] if len(values) == 1 else f"{values[0]}-{values[-1]}") + part
        merged.append(text)
    return merged


def report(result, verb: str, quiet: bool = False, failures: bool | None = None) -> None:
    """A run's notes, failures and counts (`quiet`: none of them, as torchrun's ranks other than 0;
    `failures`: the failed files all the same, as --quiet); exit code 1 if any file failed."""
    for note in [] if quiet else result.notes:
        say(f"note: {note}")
    for path, reason in result.failed if (not quiet if failures is None else failures) else []:
        named = reason if str(path) in reason else f"{path}: {reason}"  # the path once
        err.print(f"[red]failed:[/red] {named}", highlight=False, soft_wrap=True)
    if not quiet:
        failed = f", {len(result.failed)} failed" if result.failed else ""
        out.print(f"{verb} {len(result.written)} file(s){failed}.")
    if result.failed:
        raise typer.Exit(1)


def training_progress(progress: Progress):
    """The training loop's hooks (core/train.Progress) drawing an epoch bar, a batch bar and a line per epoch."""
    from lmppm_cli.core.train import Progress as Hooks

    tasks = {}

    def on_start(total, per_epoch):  # the bars appear once the data is loaded and the first epoch starts
        progress.start()
        tasks["epochs"] = progress.add_task("epochs", total=total)
        tasks["batches"] = progress.add_task("batches", total=per_epoch)

    def on_epoch(rec):
        epochs, batches = tasks["epochs"], tasks["batches"]
        progress.update(epochs, completed=rec["epoch"])
        progress.update(batches, completed=0)
        terms = " ".join(f"{k} {v:.4f}" for k, v in rec["train"].items())
        mark = " *" if rec["improved"] else ""
        progress.console.print(
            f"epoch {rec['epoch']:>3} | {terms} | val {rec['val']['total']:.4f}{mark}", highlight=False
        )

    def on_calibration(done, total):  # its own bar, with the time left: 1,200 settings take minutes
        if "calibration" not in tasks:
            tasks["calibration"] = progress.add_task("calibrating the flow (settings)", total=total)
        progress.update(tasks["calibration"], completed=done)

    return Hooks(
        on_start=on_start,
        on_batch=lambda e, t: progress.advance(tasks["batches"]),
        on_epoch=on_epoch,
        on_note=lambda text: progress.console.print(text, highlight=False, soft_wrap=True),
        on_calibration=on_calibration,
    )


def rows_table(rows: dict) -> None:
    """A standalone bench suite's {row: {column: number}} as a table."""
    from rich.table import Table

    keys = list(dict.fromkeys(k for row in rows.values() for k in row))
    table = Table("method", *keys)
    for method, row in rows.items():
        cells = ("" if k not in row else f"{row[k]:.5f}" if abs(row[k]) < 10 else f"{row[k]:,.1f}" for k in keys)
        table.add_row(method, *cells)
    out.print(table)


class FileProgress:
    """A bar in megapixels over a run's files (their sizes read from the headers), moved tile by tile
    within a large image and set exactly as each file finishes; its label counts the files."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.task = TaskID(0)  # set by on_start
        self.sizes: dict[Path, float] = {}
        self.files, self.count, self.finished, self.partial = 0, 0, 0.0, 0.0

    def on_start(self, jobs) -> None:
        from lmppm_cli.files.images import pixel_size

        self.sizes = {job.source: pixel_size(job.source)[0] * pixel_size(job.source)[1] / 1e6 for job in jobs}
        self.files = len(jobs)
        self.progress.start()
        self.task = self.progress.add_task(self._label(0), total=max(sum(self.sizes.values()), 1e-9))

    def on_pixels(self, n: float) -> None:
        self.partial += n / 1e6
        self.progress.update(self.task, completed=self.finished + self.partial)

    def on_file(self, job) -> None:
        done = self.sizes.get(job.source, 0.0)
        self.finished, self.partial = self.finished + done, max(0.0, self.partial - done)
        count = int(self.progress.tasks[0].fields.get("files", 0)) + 1
        self.progress.update(
            self.task, completed=self.finished + self.partial, description=self._label(count), files=count
        )

    def _label(self, count: int) -> str:
        return f"restoring {count}/{int(self.files)} files"


def run_restore(restore, request, quiet: bool = False) -> None:
    """`restore(request, hooks)` with a progress bar (megapixels, with the time left), shown once the
    files are planned (an error before that is one sentence alone), then its report; under torchrun,
    rank 0 alone speaks."""
    from lmppm_cli.files.shards import world_from_env
    from lmppm_cli.service import Hooks

    main = world_from_env().main and not quiet
    progress = megapixel_bar(quiet=not main)
    files = FileProgress(progress)
    silent = lambda *a: None  # noqa: E731
    hooks = Hooks(
        on_start=files.on_start,
        on_file=files.on_file,
        on_pixels=files.on_pixels,
        on_choices=choices if main else silent,
        on_note=say if main else silent,
    )
    try:
        result = restore(request, hooks)
    finally:
        stop(progress)
    report(result, "restored", quiet=not main, failures=world_from_env().main)


def run_training(run: Callable[..., dict | None], request: TrainRequest) -> None:
    """`training.run` under an epoch bar and a batch bar (rank 0 only), then where the model went."""
    from pathlib import Path

    from lmppm_cli.files.shards import world_from_env

    main = world_from_env().main
    with bar(quiet=not main) as progress:
        hooks = training_progress(progress) if main else None
        summary = run(request, hooks, say if main else lambda s: None)
    if summary is not None:
        where = Path(request.run.output) / "model.safetensors"
        epochs = f"best epoch {summary['best_epoch']} of {summary['epochs_run']}, {summary['seconds']} s"
        out.print(f"model written to {where} ({epochs}).")


def bench(suite: str, output: str, options, run_bench) -> None:
    """Run a bench suite with a progress line (cells of a known total, or the stage of a standalone
    suite), then a short summary; the full table is in the results files."""
    from pathlib import Path

    from lmppm_cli.experiments.bench import STANDALONE, check_options

    check_options(suite, options)  # before any progress is shown
    if suite in STANDALONE:
        with out.status(f"{suite}: starting") as status:
            rows = run_bench(suite, output, options, on_stage=lambda stage: status.update(f"{suite}: {stage}"))
        rows_table(rows)
    else:
        with bar() as progress:
            task = progress.add_task(f"{suite} cells", total=None)
            cells = run_bench(
                suite,
                output,
                options,
                on_cell=lambda c: progress.advance(task),
                on_start=lambda n: progress.update(task, total=n),
            )
        bench_summary(cells)
    out.print(f"full tables: {Path(output) / 'results.md'}; as a page: {Path(output) / 'results.html'}.")


def bench_summary(cells) -> None:
    """One line per degradation: LMPPM's PSNR and SSIM, and its verdicts against every other row."""
    by: dict[str, list] = {}
    for c in cells:
        by.setdefault(c.degradation, []).append(c)
    for degradation, row in by.items():
        ours = next((c for c in row if c.method == "LMPPM"), None)
        if ours is None:
            continue
        tally: dict[str, int] = {}
        for c in row:
            v = c.versus.get("psnr", {}).get("verdict")
            if v and c.method != "LMPPM":
                tally[v] = tally.get(v, 0) + 1
        verdicts = ", ".join(f"{n} {k}" for k, n in sorted(tally.items()))
        text = f"{degradation}: LMPPM {ours.psnr:.2f} dB / SSIM {ours.ssim:.3f}" + (
            f" ({verdicts} in PSNR)" if verdicts else ""
        )
        out.print(text, highlight=False, soft_wrap=True)


def models(rows: list[dict]) -> None:
    """`lmppm models`: each model as a line of what it is and lines of its data and figure, wrapped to
    the terminal (a table of ten columns cannot be read at 80 columns)."""
    import textwrap

    width = max(40, min(out.width, shutil.get_terminal_size().columns))
    for row in rows:
        facts = [row["source"], row["method"], row["arch"], row["input CxHxW"], f"{row['MB']} MB"]
        facts.append("generates" if row["generates"] == "yes" else "does not generate")
        if row["auto-pick for"]:
            facts.append(f"picked for {row['auto-pick for']}")
        head = textwrap.fill(f"{row['name']}: {', '.join(facts)}", width, subsequent_indent="    ")
        out.print(head, highlight=False, markup=False)
        for text in (f"data: {row['training data']}", row["headline"]):
            if text:
                out.print(textwrap.fill(text, width, initial_indent="  ", subsequent_indent="  "), highlight=False)
    out.print("With no --model, `lmppm restore` picks mnist, faces or photos by the image's channels and size.")


def methods(registry, default_model) -> None:
    """`lmppm methods`: each method of the registry as a line of what it needs and does, and its summary."""
    import textwrap

    width = max(40, min(out.width, shutil.get_terminal_size().columns))
    for m in registry:
        does = [
            part for part, fn in (("restores", m.restorer), ("trains", m.objective), ("generates", m.generator)) if fn
        ]
        needs = f"needs a {m.model} model (default {default_model(m.name)})" if m.model else "needs no model"
        head = textwrap.fill(f"{m.name}: {needs}; {', '.join(does)}", width, subsequent_indent="    ")
        out.print(head, highlight=False, markup=False)
        out.print(textwrap.fill(m.summary, width, initial_indent="  ", subsequent_indent="  "), highlight=False)
