"""What a file run reports: the files written and failed, its notes (typed, so that notes of one kind can
be folded into one sentence), and the per-image rows of `restore --report`, written as CSV or JSON."""

from __future__ import annotations

import csv
import functools
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lmppm_cli.files.atomic import write_text
from lmppm_cli.files.domain import estimate_noise, scores
from lmppm_cli.files.images import resize, to_channels
from lmppm_cli.files.plan import Job

CHANNELS = "channels"  # a note's kind: an input converted to the model's channel count
SURE = 0.9  # a digit the classifier reads with this probability is clear: its change is flagged
GREW = 1.05  # D after restoration above this share of D before (plus 0.01) is flagged


@dataclass(frozen=True)
class Note:
    """One thing a run has to say, about one file (`source`) or about the run."""

    text: str
    source: Path | None = None
    kind: str = "note"

    def __str__(self) -> str:
        return f"{self.source}: {self.text}" if self.source is not None else self.text


@dataclass
class Report:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)  # per written image, with --report
    thumbs: dict[str, tuple[str, str]] = field(default_factory=dict)  # input -> (before, after), an HTML report

    def extend(self, other: Report) -> None:
        self.written += other.written
        self.failed += other.failed
        self.notes += other.notes
        self.rows += other.rows
        self.thumbs |= other.thumbs

    def note(self, text: str, source: Path | None = None, kind: str = "note") -> None:
        self.notes.append(Note(text, source, kind))

    def fold_channel_notes(self, channels: int) -> None:
        """The per-file notes of inputs converted to the model's channels, as one sentence."""
        converted = [n for n in self.notes if n.kind == CHANNELS]
        if converted:
            kind = "grayscale" if channels == 1 else "colour"
            self.notes = [n for n in self.notes if n.kind != CHANNELS]
            self.note(f"{len(converted)} image(s) were converted to {kind} for this {channels}-channel model.")


def row(job: Job, label: dict, model, x: torch.Tensor, out: torch.Tensor, steps: float | None, seconds: float) -> dict:
    """One line of `restore --report`: the learned distance D_S(F(.)) and the residual of the input
    and of the result under the model, the flow's steps, the time (domain.scores); for a digit model,
    the digit the bundled classifier reads before and after; and `flag`, where the result may show
    something else than the input (the digit read changed, or D grew instead of shrinking)."""
    measured = {"before": x, "after": out}
    values: dict[str, Any] = {}
    for when, image in measured.items():
        s = scores(model, image) if model is not None else None
        values |= {
            f"distance_{when}": s and s.distance,
            f"residual_{when}": s and s.residual,
            f"noise_{when}": estimate_noise(image),
        }
    change = (out.float().cpu() - x.float().cpu()).pow(2).mean().sqrt()  # RMS: how much restoring changed it
    values |= {"steps": steps, "seconds": seconds, "change": change}
    rounded = {k: v if v is None else round(float(v), 5) for k, v in values.items()}
    (before, sure), (after, _) = (digit(model, image) for image in (x, out))
    flags = []
    if before is not None and sure and before != after:
        flags.append(f"a clear {before} became a {after}")
    if values["distance_before"] is not None and values["distance_after"] > GREW * values["distance_before"] + 0.01:
        flags.append("D grew")
    extra = ({"digit_before": before, "digit_after": after} if before is not None else {}) | {"flag": "; ".join(flags)}
    return {"input": str(job.source), "output": str(job.target), **label, **rounded, **extra}


def flagged(rows: list[dict]) -> int:
    """How many report rows carry a flag."""
    return sum(bool(r.get("flag")) for r in rows)


@functools.cache
def _classifier():
    """The bundled digit classifier (None where it cannot be loaded)."""
    from lmppm_cli.core.errors import LmppmError
    from lmppm_cli.files.weights import load_model, resolve_model

    try:
        return load_model(resolve_model("mnist-classifier"), "cpu", "classifier")
    except LmppmError:
        return None


@torch.no_grad()
def digit(model, image: torch.Tensor) -> tuple[int | None, bool]:
    """(the digit the bundled classifier reads in `image`, whether it reads it with at least SURE
    probability) for a model of the classifier's input (1x28x28); (None, False) otherwise."""
    ae = None if model is None else model.config.autoencoder
    classifier = _classifier() if ae is not None and (ae.channels, ae.height, ae.width) == (1, 28, 28) else None
    if classifier is None:
        return None, False
    x = resize(to_channels(image.float().cpu(), 1), 28, 28).unsqueeze(0)
    p = classifier(x).softmax(1)[0]
    return int(p.argmax()), bool(p.max() >= SURE)


REPORT_SUFFIXES = (".csv", ".json", ".html")  # rows as a table; .html: the before/after page (report_page.py)


def write_rows(rows: list[dict], path: str | Path) -> None:
    """`restore --report`: the rows as CSV or JSON (by suffix), written atomically; a CSV's columns are
    every row's keys in their first order (a failed file's row has input and error only)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        write_text(path, json.dumps(rows, indent=2) + "\n")
        return
    buffer = io.StringIO()
    columns = list(dict.fromkeys(k for row in rows for k in row)) or ["input"]
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())
