"""In-memory training of small vector models (the synthetic circle of Figs. 4-7): Adam, shuffled
batches, a validation loss each epoch, early stopping, the best state restored at the end.
(Image models use train.py, with checkpoints and resume.)"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FitConfig:
    """Table 10: Adam (0.9, 0.999), lr 1e-3, weight decay 1e-4, batch 550, 1500 epochs, patience 100."""

    epochs: int = 1500
    batch_size: int = 550
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 100


def fit(model: torch.nn.Module, loss_fn, train: torch.Tensor, val: torch.Tensor, cfg: FitConfig, seed: int) -> dict:
    """Minimise loss_fn(batch, generator) -> scalar over `train`; keep the state with the lowest
    validation loss (evaluated with a fixed generator, so epochs compare). Returns a small summary."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    best, best_state, best_epoch, epoch = math.inf, copy.deepcopy(model.state_dict()), 0, 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        for idx in torch.randperm(len(train), generator=gen).split(cfg.batch_size):
            loss = loss_fn(train[idx], gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        val_loss = float(loss_fn(val, torch.Generator().manual_seed(seed + 1)).detach())
        if val_loss < best:
            best, best_state, best_epoch = val_loss, copy.deepcopy(model.state_dict()), epoch
        elif epoch - best_epoch >= cfg.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return {"epochs": epoch, "best_epoch": best_epoch, "best_val_loss": best}
