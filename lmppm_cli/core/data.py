"""The data a training run sees: images (and labels) per split, as tensors; files/data.py fills them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from lmppm_cli.core.errors import LmppmError


@dataclass
class Split:
    images: torch.Tensor  # (N, C, H, W) float32 in [0, 1], or uint8 memory-mapped (streamed folder)
    labels: torch.Tensor | None = None  # (N,) int64 where the data has classes


@dataclass
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split | None = None
    skipped: tuple[str, ...] = ()  # files of a folder that could not be read
    draw: Callable[[int], torch.Tensor] | None = None  # epoch -> that epoch's training images (photo-crops)
    joint: torch.Tensor | None = None  # train then validation images as one view (streamed folder), else None
    digest: str | None = None  # content hash of both splits when known without reading them (stream cache)
    workers: int = 0  # DataLoader processes that read a streamed folder's batches (0: in this process)

    def held_out(self) -> Split:
        """The test split, which the built-in data sets that benches score on have."""
        if self.test is None:
            raise LmppmError(f"{self.name} has no test split.")
        return self.test
