"""What the CLI shows on the terminal: progress bars, the pick's choices, a run's notes and counts,
training epochs and bench tables (rich). Everything here prints; nothing here computes."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

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
            more = "; ..." if len(reasons) > 3 else ""
            say(f"{kind}: {name} for {n} file(s) ({'; '.join(reasons[:3])}{more}).")
    for warning in warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)


def report(result, verb: str, quiet: bool = False) -> None:
    """A run's notes, failures and counts (`quiet`: say nothing, as torchrun's ranks other than 0);
    exit code 1 if any file failed."""
    for note in [] if quiet else result.notes:
        say(f"note: {note}")
    for path, reason in [] if quiet else result.failed:
        err.print(f"[red]failed:[/red] {path}: {reason}", highlight=False, soft_wrap=True)
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

    return Hooks(
        on_start=on_start,
        on_batch=lambda e, t: progress.advance(tasks["batches"]),
        on_epoch=on_epoch,
        on_note=lambda text: progress.console.print(text, highlight=False, soft_wrap=True),
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


def run_restore(restore, request) -> None:
    """`restore(request, hooks)` with a progress bar of its files, shown once the files are planned (an
    error before that is one sentence alone), then its report; under torchrun, rank 0 alone speaks."""
    from lmppm_cli.files.shards import world_from_env
    from lmppm_cli.service import Hooks

    main = world_from_env().main
    progress = bar(quiet=not main)
    tasks = []

    def on_start(n: int) -> None:
        progress.start()
        tasks.append(progress.add_task("restoring", total=n))

    hooks = Hooks(on_start=on_start, on_file=lambda job: progress.advance(tasks[0]), on_choices=choices, on_note=say)
    try:
        result = restore(request, hooks)
    finally:
        stop(progress)
    report(result, "restored", quiet=not main)


def run_training(run, method, autoencoder, tcfg, source, output, device, resume, base) -> None:
    """`training.run` under an epoch bar and a batch bar (rank 0 only), then where the model went."""
    from pathlib import Path

    from lmppm_cli.files.shards import world_from_env

    main = world_from_env().main
    with bar(quiet=not main) as progress:
        hooks = training_progress(progress) if main else None
        summary = run(
            method, autoencoder, tcfg, source, output, device, resume, base, hooks, say if main else lambda s: None
        )
    if summary is not None:
        where = Path(output) / "model.safetensors"
        epochs = f"best epoch {summary['best_epoch']} of {summary['epochs_run']}, {summary['seconds']} s"
        out.print(f"model written to {where} ({epochs}).")


def bench(suite: str, output: str, options, run_bench) -> None:
    """Run a bench suite with a progress line, then its table and where the results went."""
    from pathlib import Path

    from rich.table import Table

    from lmppm_cli.experiments.bench import STANDALONE, check_options

    check_options(suite, options)  # before any progress is shown
    if suite in STANDALONE:
        with out.status(f"{suite}: starting") as status:
            rows = run_bench(suite, output, options, on_stage=lambda stage: status.update(f"{suite}: {stage}"))
        rows_table(rows)
    else:
        table = Table("degradation", "method", "PSNR", "SSIM", "FID", "acc %", "ms / image")
        with bar() as progress:
            task = progress.add_task(suite, total=None)

            def on_cell(c):
                progress.advance(task)
                fid = "" if c.fid is None else f"{c.fid:.2f}"
                acc = "" if c.accuracy is None else f"{100 * c.accuracy:.1f}"
                ms = f"{1000 * c.seconds_per_image:.3f}"
                table.add_row(c.degradation, c.method, f"{c.psnr:.2f}", f"{c.ssim:.3f}", fid, acc, ms)

            run_bench(suite, output, options, on_cell=on_cell)
        out.print(table)
    out.print(f"results written to {Path(output) / 'results.json'} and {Path(output) / 'results.md'}.")


def models(rows: list[dict]) -> None:
    """`lmppm models`: one row per model file."""
    from rich.table import Table

    from lmppm_cli.files.catalog import COLUMNS

    table = Table(*COLUMNS)
    table.columns[0].no_wrap = True
    for row in rows:
        table.add_row(*(str(row[c]) for c in COLUMNS))
    out.print(table)
    out.print("with no --model, `lmppm restore` picks mnist, faces or photos by the image's channels and size.")


def methods(registry, default_model) -> None:
    """`lmppm methods`: the registry, one row per method."""
    from rich.table import Table

    table = Table("method", "what it does", "model it needs", "default model", "restores", "trains", "generates")
    table.columns[0].no_wrap = True
    for m in registry:
        yes = lambda part: "yes" if part is not None else ""  # noqa: E731
        table.add_row(
            m.name,
            m.summary,
            m.model or "none",
            default_model(m.name) or "",
            yes(m.restorer),
            yes(m.objective),
            yes(m.generator),
        )
    out.print(table)
