"""Training checkpoints as safetensors (no pickle): weights, best weights, optimiser moments, RNG states,
and the loop's counters as JSON metadata. Enough to continue a run exactly where it stopped."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.files.atomic import atomic_path
from lmppm_cli.files.weights import read_tensors

STATE_KEY = "lmppm.train_state"


def save_checkpoint(
    path, model_state, best_state, optimizer, rng: dict[str, torch.Tensor], state: dict, ema_state=None
) -> None:
    tensors = {f"model.{k}": v for k, v in model_state.items()}
    tensors |= {f"best.{k}": v for k, v in best_state.items()}
    tensors |= {f"ema.{k}": v for k, v in (ema_state or {}).items()}
    opt = optimizer.state_dict()
    for idx, slots in opt["state"].items():
        tensors |= {f"optim.{idx}.{name}": torch.as_tensor(v) for name, v in slots.items()}
    tensors |= {f"rng.{k}": v for k, v in rng.items()}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = {STATE_KEY: json.dumps({**state, "param_groups": opt["param_groups"]})}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=meta)


def load_checkpoint(path: str | Path):
    """-> (model_state, best_state, optimizer_state_dict, rng, state, ema_state ({} without an EMA))."""
    tensors, meta = read_tensors(path)
    if STATE_KEY not in meta:
        raise LmppmError(
            f"{path} is not a training checkpoint: it holds no training state (a model file cannot be resumed)."
        )
    try:
        state = json.loads(meta[STATE_KEY])
        param_groups = state.pop("param_groups")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LmppmError(f"{path} holds an unreadable training state ({exc}).") from exc

    def group(prefix):
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    optim_state: dict[int, dict] = {}
    for key, value in group("optim.").items():
        idx, name = key.split(".", 1)
        optim_state.setdefault(int(idx), {})[name] = value
    optimizer = {"state": optim_state, "param_groups": param_groups}
    return group("model."), group("best."), optimizer, group("rng."), state, group("ema.")
