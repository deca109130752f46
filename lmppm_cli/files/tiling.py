"""Tiled restoration of images larger than the model's input: overlapping tiles, each restored at the
model's size, blended back with weights that ramp linearly across every overlap, so neighbouring tiles
hand over smoothly and no seam remains. Tiles go through the model `batch_size` at a time: memory is
bounded by the batch (plus two full-size float buffers for the sums), not by the image."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.core.models import architecture
from lmppm_cli.files.images import resize, to_channels


def resolve(tile: int | None, overlap: int | None, model) -> tuple[int, int]:
    """The tile size and overlap for a model. No --tile: U-Net models (trained on patches) tile at their
    input size, conv models (trained on whole images, e.g. digits) resize the whole image (tile 0).
    No --tile-overlap: a quarter of the tile."""
    ae = model.config.autoencoder
    if tile is None:
        tile = max(ae.height, ae.width) if architecture(ae.arch).tiles else 0
    if tile == 0:
        return 0, 0
    overlap = tile // 4 if overlap is None else overlap
    check_tile(tile, overlap, (ae.height, ae.width))
    return tile, overlap


def in_tiles(x: torch.Tensor, tiles: tuple[int, int], model) -> bool:
    """Whether an image (C, H, W) is restored tile by tile (`resolve`'s tiles, and larger than the
    model's input) rather than whole, resized to the model."""
    ae = model.config.autoencoder
    return tiles[0] > 0 and (x.shape[-2] > ae.height or x.shape[-1] > ae.width)


def check_tile(tile: int, overlap: int, model_hw: tuple[int, int]) -> None:
    if tile < max(model_hw):
        raise LmppmError(
            f"--tile {tile} is smaller than the model's input ({model_hw[0]}x{model_hw[1]}); use at least {max(model_hw)}, or 0 to resize whole images."
        )
    if not 0 <= overlap < tile:
        raise LmppmError(f"--tile-overlap must be at least 0 and below the tile size ({tile}), not {overlap}.")


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length `tile` covering [0, size) with at least `overlap` shared; the
    last tile is aligned to the end. One tile when the image fits."""
    if size <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, size - tile, step))
    return starts + [size - tile]


def ramp(length: int, overlap: int) -> torch.Tensor:
    """1-D blending weights: rising linearly over the first `overlap` samples, falling over the last,
    1 in between; never 0, so image borders (covered by one tile) keep their value."""
    w = torch.ones(length)
    if overlap:
        edge = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)
        n = min(overlap, length)
        w[:n] = torch.minimum(w[:n], edge[:n])
        w[-n:] = torch.minimum(w[-n:], edge[:n].flip(0))
    return w


@torch.no_grad()
def restore_tiled(
    image: torch.Tensor,
    restore: Callable[[torch.Tensor], torch.Tensor],
    model_hw: tuple[int, int],
    tile: int,
    overlap: int,
    batch_size: int,
    on_progress: Callable[[float], None] = lambda share: None,
) -> torch.Tensor:
    """image (C, H, W) -> restored (C, H, W). Each tile (at most tile x tile) is resized to the model's
    input, restored by `restore` (B, C, h, w) -> (B, C, h, w) in batches, resized back and blended.
    `on_progress(share)`: after each batch, the share of the image's tiles it restored."""
    check_tile(tile, overlap, model_hw)
    c, h, w = image.shape
    th, tw = min(tile, h), min(tile, w)
    boxes = [(y, x) for y in tile_starts(h, th, overlap) for x in tile_starts(w, tw, overlap)]
    weight = (ramp(th, overlap).unsqueeze(1) * ramp(tw, overlap).unsqueeze(0)).unsqueeze(0)  # (1, th, tw)
    total, norm = torch.zeros(c, h, w), torch.zeros(1, h, w)
    for i in range(0, len(boxes), batch_size):
        chunk = boxes[i : i + batch_size]
        tiles = torch.stack([resize(image[:, y : y + th, x : x + tw], *model_hw) for y, x in chunk])
        out = restore(tiles).cpu()
        for (y, x), t in zip(chunk, out):
            total[:, y : y + th, x : x + tw] += weight * resize(t, th, tw)
            norm[:, y : y + th, x : x + tw] += weight
        on_progress(len(chunk) / len(boxes))
    return total / norm


@dataclass
class Restoration:
    """One image as `lmppm restore` gives it back: in the input's channels and size."""

    image: torch.Tensor  # (C, H, W)
    steps: float | None  # the flow's steps (mean over tiles); None for a method without a model
    seconds: float
    frames: list[torch.Tensor] = field(default_factory=list)  # the image after each step (whole images, on request)


# a classical method restores larger images in such tiles, at the whole image's noise estimate: the same
# result within 0.01 dB (BM3D on chelsea at noise 0.1), and a progress bar that moves tile by tile
CLASSICAL_TILE, CLASSICAL_OVERLAP = 512, 32


@dataclass(frozen=True)
class Restorer:
    """A method ready to restore images, as every caller restores them: its model (None for a classical
    method), its batch restorer (methods.restorer), the tile size and overlap (`resolve`; (0, 0): whole
    images resized to the model's input) and the tiles or images per pass. service.restorer builds it."""

    model: Any
    fn: Callable
    tiles: tuple[int, int]
    batch_size: int = 64

    @classmethod
    def of(cls, model: Any, fn: Callable, tile: int | None = None, overlap: int | None = None, batch_size: int = 64):
        """Tile-or-resize decided here, once: `resolve` for a model; none for a method without one."""
        return cls(model, fn, resolve(tile, overlap, model) if model is not None else (0, 0), batch_size)

    def __call__(
        self, images: list[torch.Tensor], trajectory: bool = False, on_pixels: Callable[[float], None] = lambda n: None
    ) -> list[Restoration]:
        return restore_images(self.model, self.fn, images, self.tiles, self.batch_size, trajectory, on_pixels)


@torch.no_grad()
def restore_images(
    model,
    restorer,
    images: list[torch.Tensor],
    tiles: tuple[int, int],
    batch_size: int,
    trajectory=False,
    on_pixels: Callable[[float], None] = lambda n: None,
) -> list[Restoration]:
    """Each image (C, H, W) restored as the CLI and the API restore it. With no model (a classical
    method): at its own size and channels, whole up to CLASSICAL_TILE pixels a side, in such tiles
    beyond. An image larger than the model's input, with tiling on (`in_tiles`): tile by tile. Any other:
    resized to the model's input and back, all such images of the call in one batch (with `trajectory`,
    each keeps its frames). `on_pixels(n)`: n more pixels of the images are restored."""
    if model is None:
        return [_classical(restorer, x, on_pixels) for x in images]
    ae = model.config.autoencoder
    tiled = [in_tiles(x, tiles, model) for x in images]
    whole = [x for x, t in zip(images, tiled) if not t]
    started = time.perf_counter()
    result = None
    if whole:
        batch = torch.stack([resize(to_channels(x, ae.channels), ae.height, ae.width) for x in whole])
        result = restorer(batch.to(model.device), trajectory)
        on_pixels(sum(x.shape[-2] * x.shape[-1] for x in whole))
    share = (time.perf_counter() - started) / max(len(whole), 1)
    out, k = [], 0
    for x, t in zip(images, tiled):
        if t:
            done = _tiled(model, restorer, x, tiles, batch_size, on_pixels)
        else:
            assert result is not None  # this image was among `whole`
            frames = [f[k] for f in result.trajectory] if result.trajectory else []
            image = resize(result.images[k].cpu(), *x.shape[-2:])
            done, k = Restoration(image, float(result.steps_taken[k]), share, frames), k + 1
        done.image = to_channels(done.image, x.shape[0])
        out.append(done)
    return out


def _tiled(model, restorer, x: torch.Tensor, tiles, batch_size: int, on_pixels) -> Restoration:
    """One image larger than the model's input, tile by tile; its steps are the tiles' mean."""
    ae, steps, pixels = model.config.autoencoder, [], x.shape[-2] * x.shape[-1]

    def tile_fn(b: torch.Tensor) -> torch.Tensor:
        result = restorer(b.to(model.device), False)
        steps.append(result.steps_taken.cpu())
        return result.images

    started = time.perf_counter()
    image = restore_tiled(
        to_channels(x, ae.channels),
        tile_fn,
        (ae.height, ae.width),
        tiles[0],
        tiles[1],
        batch_size,
        lambda p: on_pixels(p * pixels),
    )
    return Restoration(image, float(torch.cat(steps).float().mean()), time.perf_counter() - started)


def _classical(restorer, x: torch.Tensor, on_pixels) -> Restoration:
    """A method without a model on one image: whole, or for an image larger than CLASSICAL_TILE in such
    tiles, each restored at the noise estimated on the whole image."""
    pixels = x.shape[-2] * x.shape[-1]
    started = time.perf_counter()
    if max(x.shape[-2:]) <= CLASSICAL_TILE:
        image = restorer(x.unsqueeze(0), False).images[0]
        on_pixels(pixels)
    else:
        from lmppm_cli.methods.classical import estimate_noise

        sigma = estimate_noise(x.permute(1, 2, 0).double().cpu().numpy())
        one = lambda b: restorer(b, False, sigma=sigma).images  # noqa: E731
        hw = (min(CLASSICAL_TILE, x.shape[-2]), min(CLASSICAL_TILE, x.shape[-1]))
        image = restore_tiled(x, one, hw, CLASSICAL_TILE, CLASSICAL_OVERLAP, 1, lambda p: on_pixels(p * pixels))
    return Restoration(image, None, time.perf_counter() - started)
