"""Runs across processes started by torchrun (`torchrun --nproc-per-node N -m lmppm_cli restore|train ...`):
each process's place (World), its device, and the process group. Training uses them in core/train.py.

Every rank plans the same job list, takes the disjoint, deterministic share jobs[rank::size], restores
and writes only its own files, and the reports are gathered so that rank 0 prints one summary for all.
torch.distributed does the work: NCCL between GPUs (rank r on cuda:LOCAL_RANK), gloo on CPUs, and the
env:// rendezvous that torchrun sets up (across nodes too, with torchrun's --nnodes and --rdzv options).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from lmppm_cli.core.world import World


def world_from_env() -> World:
    """This process's place among torchrun's workers (a lone process: rank 0 of 1)."""
    env = os.environ
    return World(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def rank_device(device: torch.device, world: World) -> torch.device:
    """A CUDA device without an index becomes this rank's own GPU, cuda:LOCAL_RANK."""
    if device.type == "cuda" and device.index is None and world.size > 1:
        return torch.device("cuda", world.local_rank % torch.cuda.device_count())
    return device


def start(world: World, device: torch.device) -> None:
    """Join the process group (NCCL for CUDA, gloo otherwise) when there is more than one rank."""
    if world.size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def share(items: list, world: World) -> list:
    """This rank's share: every size-th item from its rank on (disjoint, deterministic, balanced)."""
    return items[world.rank :: world.size]


def gather(value, world: World) -> list:
    """Every rank's `value`, in rank order, on every rank."""
    if world.size == 1:
        return [value]
    parts = [None] * world.size
    dist.all_gather_object(parts, value)
    return parts


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
