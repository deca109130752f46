"""What a file run reports: the files written and failed, its notes (typed, so that notes of one kind can
be folded into one sentence), and the per-image rows of `restore --report`, written as CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lmppm_cli.files.atomic import write_text
from lmppm_cli.files.domain import estimate_noise, scores
from lmppm_cli.files.plan import Job

CHANNELS = "channels"  # a note's kind: an input converted to the model's channel count


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

    def extend(self, other: Report) -> None:
        self.written += other.written
        self.failed += other.failed
        self.notes += other.notes
        self.rows += other.rows

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
    and of the result under the model, the flow's steps, the time (domain.scores)."""
    measured = {"before": x, "after": out}
    values = {}
    for when, image in measured.items():
        s = scores(model, image) if model is not None else None
        values |= {
            f"distance_{when}": s and s.distance,
            f"residual_{when}": s and s.residual,
            f"noise_{when}": estimate_noise(image),
        }
    values |= {"steps": steps, "seconds": seconds}
    rounded = {k: v if v is None else round(float(v), 5) for k, v in values.items()}
    return {"input": str(job.source), "output": str(job.target), **label, **rounded}


REPORT_SUFFIXES = (".csv", ".json")


def write_rows(rows: list[dict], path: str | Path) -> None:
    """`restore --report`: the rows as CSV or JSON (by suffix), written atomically."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        write_text(path, json.dumps(rows, indent=2) + "\n")
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["input"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())
