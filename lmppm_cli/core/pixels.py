"""Stored images as the networks take them. Built-in data and small folders are float32 tensors in
[0, 1]; a streamed folder (files/stream.py) is a uint8 array memory-mapped from its cache on disk,
read a batch or a chunk at a time and scaled here, so no step holds the whole set in memory."""

from __future__ import annotations

import torch


def as_floats(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch of stored images as float32 in [0, 1] on `device` (uint8 rows are divided by 255)."""
    if x.dtype == torch.uint8:
        return x.to(device, non_blocking=True).float().div_(255.0)
    return x.to(device)


def rows(x: torch.Tensor, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
    """x[idx] as floats on `device`, indexing x where it lives (a memory map stays on the CPU)."""
    return as_floats(x[idx.to(x.device)], device)


def place(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Where a training set lives: float images on the training device, a uint8 memory map where it is."""
    return x if x.dtype == torch.uint8 else x.to(device)
