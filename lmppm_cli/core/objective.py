"""The contract between the training loop (train.py) and what a method trains (objectives.py, methods/)."""

from __future__ import annotations

import torch


class Objective:
    """What core/train.fit trains. `model`; `param_groups()`; `loss(x, labels, generator, validation,
    share) -> (total, {term: value})` (the generator gives every random draw, so validation with a
    re-seeded one is the same each epoch; `share` = (rank, size) under torchrun, see `noisy`);
    `finish(loop) -> dict` of summary entries (it may update `model.config`). The rest has defaults:
    `notes` (what the run found before its first epoch), `train_mode()` (the model's training mode),
    `new_training_images(train)` (a dataset that draws new images each epoch hands them over)."""

    model: torch.nn.Module
    notes: tuple[str, ...] = ()

    def param_groups(self) -> list[dict]:
        raise NotImplementedError

    def loss(self, x, labels, generator, validation: bool, share=(0, 1)):
        raise NotImplementedError

    def train_mode(self) -> None:
        self.model.train()

    def new_training_images(self, train: torch.Tensor) -> None:
        """Nothing to do by default: the loss reads only its batch."""

    def finish(self, loop) -> dict:
        return {}
