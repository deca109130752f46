"""A training run's folder: what core/train.py writes through it (the checkpoint each epoch, the model
and the summary at the end), atomically."""

from __future__ import annotations

from pathlib import Path

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.files.atomic import write_text
from lmppm_cli.files.checkpoint import load_checkpoint, save_checkpoint
from lmppm_cli.files.weights import save_model

CHECKPOINT = "checkpoint.safetensors"
MODEL = "model.safetensors"


class RunFolder:
    """checkpoint.safetensors, model.safetensors, summary.json and summary.md in one folder."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise LmppmError(f"-o {self.folder} is a file; training writes a run folder (checkpoint, model, summary).")
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
