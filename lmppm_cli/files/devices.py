"""`--device auto|cpu|cuda[:N]|mps` -> torch.device, with one clear error for anything else."""

from __future__ import annotations

import re

import torch

from lmppm_cli.core.errors import LmppmError


def pick_device(spec: str = "auto") -> torch.device:
    """`auto` picks CUDA, then Apple MPS, then the CPU."""
    spec = spec.strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not torch.backends.mps.is_available():
            raise LmppmError("device 'mps' was asked for but Apple MPS is not available here.")
        return torch.device("mps")
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if not match:
        raise LmppmError(f"unknown device {spec!r}; use auto, cpu, mps, cuda or cuda:N.")
    if not torch.cuda.is_available():
        raise LmppmError(f"device {spec!r} was asked for but CUDA is not available on this machine.")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise LmppmError(f"device {spec!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s).")
    return torch.device("cuda", index)
