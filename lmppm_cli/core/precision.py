"""Mixed precision: the context the networks run in, fp32 or bf16/fp16 under torch.autocast. The
flow's latent state and the kernel mean's log-sum-exp stay float32 (bank.kernel_mean); D stays float32
in training (models/distance.py)."""

from __future__ import annotations

import contextlib

import torch

from lmppm_cli.core.errors import LmppmError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX or AVX-512 BF16, from /proc/cpuinfo's flags)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def autocast(device: torch.device, precision: str):
    """The context that runs the networks at `precision`: nothing for fp32, torch.autocast for bf16/fp16.
    On CPU only bf16, and only where the CPU has it natively (`cpu_has_bf16`): elsewhere autocast runs
    slower than fp32 (docs/speed.md)."""
    if precision not in PRECISIONS:
        raise LmppmError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}.")
    if PRECISIONS[precision] is None:
        return contextlib.nullcontext()
    kind = torch.device(device).type
    if kind == "cpu" and (precision != "bf16" or not cpu_has_bf16()):
        raise LmppmError(
            f"precision {precision} needs a GPU or a CPU with native bf16 ({' or '.join(CPU_BF16_FLAGS)}); "
            "fp32 is the only choice on this one."
        )
    return torch.autocast(kind, dtype=PRECISIONS[precision])
