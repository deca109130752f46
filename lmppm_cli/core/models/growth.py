"""Growing a trained U-Net wider without changing what it computes (not in the paper; Net2Net's
"wider" operation, Chen et al. 2016, with zero outgoing weights instead of split ones).

A trained model's F and G are copied into a U-Net whose levels are as wide or wider. Each new channel
keeps its fresh random incoming weights, so it computes a new feature at once, and every weight that
reads a new channel starts at zero, so no old output sees it: the grown network gives the narrow one's
outputs exactly, and training goes on from there with the extra capacity (the zero weights receive
gradients from the first step, as the new channels are not zero).

Channel correspondence: a widened level's old channels are its first ones; a decoder block's first
convolution reads the concatenation [h, skip], whose old channels sit at the start of each half; the
flattened grids of the bottleneck and the projections are channel-major, so their old rows lead too.

Deeper: a larger `depth` adds residual layers h + Conv-BN-LReLU(h) to every block, after the ones it
had (Net2Net's "deeper" operation in its residual form); each new layer's batch norm starts with zero
scale and shift, so the layer is the identity and the grown network still computes the old function.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.core.models.architectures import architecture

if TYPE_CHECKING:
    from lmppm_cli.core.models.unet import DecoderBlock, UNetAutoencoder

INPUT_DIM = {nn.Conv2d: 1, nn.Linear: 1, nn.ConvTranspose2d: 0}  # the dimension of a weight that reads


def can_grow(small, large) -> bool:
    """Whether the autoencoder config `large` is `small` with some levels widened or every block deepened
    (same architecture, one that grows, and the same number of levels)."""
    if small.arch != large.arch or not architecture(small.arch).grows or len(small.widths) != len(large.widths):
        return False
    same = dataclasses.replace(large, widths=small.widths, depth=small.depth) == small
    return same and large.depth >= small.depth and all(b >= a for a, b in zip(small.widths, large.widths))


@torch.no_grad()
def grow(target: UNetAutoencoder, source: UNetAutoencoder) -> None:
    """Copy the U-Net `source` into the as-wide-or-wider U-Net `target` (fresh from its constructor), so
    that target computes what source does (module docstring)."""
    if not can_grow(source.cfg, target.cfg):
        raise LmppmError(
            f"cannot grow a U-Net of widths {source.cfg.widths}, depth {source.cfg.depth} into one of widths "
            f"{target.cfg.widths}, depth {target.cfg.depth}: only the widths and the depth may differ, each as large or larger."
        )
    reads_concat = {
        id(block.body[0]) for block in cast("list[DecoderBlock]", target.up)
    }  # each decoder block's first convolution
    old_modules = dict(source.named_modules())
    for name, module in target.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d, nn.BatchNorm2d)):
            continue
        old = _old_name(name, source.cfg.depth, target.cfg.depth)
        if old is not None:
            _copy_module(module, old_modules[old], id(module) in reads_concat)
        elif isinstance(module, nn.BatchNorm2d):  # a new residual layer: zero out, so h + 0 = h
            nn.init.zeros_(module.weight), nn.init.zeros_(module.bias)
    target.skip_weight.copy_(source.skip_weight)
    target.projection_weight.copy_(source.projection_weight)


def _old_name(name: str, old_depth: int, new_depth: int) -> str | None:
    """The source module a target module copies: the same name, but within a block (`down.i.n`,
    `up.i.body.n`) the layers after the added residual layers move by their number; None for a layer
    the source lacks. A block holds Conv, BN, LReLU, depth - 2 residual layers, Conv, BN, LReLU."""
    found = re.match(r"^(down\.\d+|up\.\d+\.body)\.(\d+)(.*)$", name)
    if found is None:
        return name
    index, added, kept = int(found[2]), new_depth - old_depth, 1 + old_depth  # kept: Conv, BN, LReLU, old residuals
    if index < kept:
        return name
    return None if index < kept + added else f"{found[1]}.{index - added}{found[3]}"


def _copy_module(new: nn.Module, old: nn.Module, concat: bool) -> None:
    reads = INPUT_DIM.get(type(new))
    old_state = old.state_dict()
    for key, tensor in new.state_dict().items():
        before = old_state[key]
        if tensor.shape == before.shape:
            tensor.copy_(before)
            continue
        index = []
        for dim, (n, o) in enumerate(zip(tensor.shape, before.shape)):
            if key == "weight" and dim == reads and concat:
                index.append(_concat_index(o, n))
            else:
                index.append(torch.arange(o))
        if key == "weight" and reads is not None and tensor.shape[reads] != before.shape[reads]:
            _zero_reads(tensor, reads, index[reads])
        tensor[torch.meshgrid(*index, indexing="ij")] = before


def _concat_index(old_total: int, new_total: int) -> torch.Tensor:
    """Where the old [h, skip] channels (two halves of old_total / 2) sit in the new [h, skip]."""
    old_half, new_half = old_total // 2, new_total // 2
    return torch.cat([torch.arange(old_half), new_half + torch.arange(old_half)])


def _zero_reads(weight: torch.Tensor, dim: int, old: torch.Tensor) -> None:
    """Zero the weights that read the new input channels (every input not in `old`)."""
    new = torch.ones(weight.shape[dim], dtype=torch.bool)
    new[old] = False
    weight.index_fill_(dim, new.nonzero().squeeze(1), 0.0)
