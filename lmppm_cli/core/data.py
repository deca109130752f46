"""The data a training run sees: images (and labels) per split, as tensors; files/data.py fills them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


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
