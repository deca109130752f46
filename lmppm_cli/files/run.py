"""A training run's folder: what core/train.py writes through it (the checkpoint each epoch, the model
and the summary at the end), atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.files.atomic import write_text
from lmppm_cli.files.checkpoint import load_checkpoint, save_checkpoint
from lmppm_cli.files.weights import save_model

CHECKPOINT = "checkpoint.safetensors"
MODEL = "model.safetensors"


def check_writable(folder: Path) -> None:
    """Refuse, in one sentence and before any epoch, a run folder that cannot be written: a probe file is
    made and removed in the folder, or where it would be made (its nearest existing parent), so nothing
    is left behind either way. Catches read-only and immutable folders, and read-only file systems."""
    place = next(p for p in (folder, *folder.parents) if p.exists())
    try:
        handle, probe = tempfile.mkstemp(prefix=".lmppm-probe-", dir=place)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        where = "" if place == folder else f" (its folder {place} cannot be written)"
        raise LmppmError(
            f"-o {folder} cannot be written{where}: {exc.strerror or exc}; pick a folder you can write."
        ) from None


class RunFolder:
    """checkpoint.safetensors, model.safetensors, summary.json and summary.md in one folder."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise LmppmError(f"-o {self.folder} is a file; training writes a run folder (checkpoint, model, summary).")
        check_writable(self.folder)
        self.checkpoint = self.folder / CHECKPOINT  # named in the loop's messages

    def has_checkpoint(self) -> bool:
        return self.checkpoint.is_file()

    def save_checkpoint(self, *parts) -> None:
        save_checkpoint(self.checkpoint, *parts)

    def load_checkpoint(self):
        return load_checkpoint(self.checkpoint)

    def save_model(self, model, metadata: dict[str, str]) -> None:
        save_model(model, self.folder / MODEL, metadata)

    def write_text(self, name: str, text: str) -> None:
        write_text(self.folder / name, text)
