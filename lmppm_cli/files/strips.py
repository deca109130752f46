"""Very large PNG images restored strip by strip: rows are decoded (pypng), restored one row of tiles at a
time, blended exactly as tiling.restore_tiled does, and encoded (pypng) as soon as no later tile
touches them. Memory is bounded by a strip of tiles (tile height x image width), not by the image.

Taken for a PNG -> PNG job of a tiling model over BAND_PIXELS, gray or RGB, 8 or 16 bits, without
alpha or an EXIF orientation; every other job goes the whole-image way (restore_files.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lmppm_cli.files.atomic import atomic_path
from lmppm_cli.files.images import _no_bomb_warning, resize, to_channels
from lmppm_cli.files.tiling import ramp, tile_starts


def strip_pixels() -> int:
    """Images above Pillow's decompression-bomb threshold (89 Mpx) are streamed."""
    return Image.MAX_IMAGE_PIXELS or 89_478_485


def streamable(source: Path, target: Path) -> bool:
    """A PNG -> PNG job over strip_pixels() that pypng reads as plain gray or RGB rows."""
    if source.suffix.lower() != ".png" or target.suffix.lower() != ".png":
        return False
    try:
        with _no_bomb_warning(), Image.open(source) as img:
            plain = img.mode in ("L", "I", "I;16", "I;16B", "RGB") and "transparency" not in img.info
            bare = not img.info.get("icc_profile") and not img.getexif()  # pypng writes neither back
            return plain and bare and img.width * img.height > strip_pixels()
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


def restore_png_in_strips(
    source: Path, target: Path, restore: Callable, channels: int, model_hw, tile: int, overlap: int, batch_size: int
) -> int:
    """`source` restored into `target` (atomically) in the source's own channels and bit depth (8 for
    depths below 8, as Pillow writes them). -> the source's channels."""
    import png

    width, height, rows, meta = png.Reader(filename=str(source)).asDirect()
    planes, depth = meta["planes"], meta["bitdepth"]
    scale = float(2**depth - 1)
    images = (torch.from_numpy(np.asarray(r, np.float32).reshape(width, planes).T.copy()) / scale for r in rows)
    out = _blend_rows(
        images, height, width, lambda x: to_channels(x, channels), restore, model_hw, tile, overlap, batch_size
    )
    depth_out = 16 if depth == 16 else 8
    top, dtype = float(2**depth_out - 1), np.uint16 if depth_out == 16 else np.uint8
    encoded = (
        np.rint(to_channels(r[:, None], planes)[:, 0].clamp(0, 1).T.reshape(-1).numpy() * top).astype(dtype)
        for r in out
    )
    writer = png.Writer(width, height, greyscale=planes == 1, bitdepth=depth_out)
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        writer.write(f, encoded)
    return planes


def _blend_rows(
    rows: Iterator[torch.Tensor], height, width, convert, restore, model_hw, tile, overlap, batch_size
) -> Iterator[torch.Tensor]:
    """Rows (C, W) in, restored rows (C', W) out, each as soon as it is final. The tiles, their weights
    and the order in which they are added to each pixel are restore_tiled's."""
    th, tw = min(tile, height), min(tile, width)
    ys, xs = tile_starts(height, th, overlap), tile_starts(width, tw, overlap)
    weight = (ramp(th, overlap).unsqueeze(1) * ramp(tw, overlap).unsqueeze(0)).unsqueeze(0)
    buffer: list[torch.Tensor] = []
    first = 0  # input rows first .. first + len(buffer) - 1
    total: torch.Tensor | None = None
    norm: torch.Tensor | None = None
    done = 0  # rows [0, done) are emitted; total/norm hold rows from `done` on
    for k, y in enumerate(ys):
        while first + len(buffer) < y + th:
            buffer.append(next(rows))
        strip = convert(torch.stack(buffer[y - first : y - first + th], dim=1))  # (C, th, W)
        grow = y + th - done - (0 if total is None else total.shape[1])
        if total is None:
            total, norm = torch.zeros(strip.shape[0], y + th - done, width), torch.zeros(1, y + th - done, width)
        elif grow > 0:
            assert norm is not None  # set with total
            total = torch.cat([total, torch.zeros(total.shape[0], grow, width)], 1)
            norm = torch.cat([norm, torch.zeros(1, grow, width)], 1)
        assert total is not None and norm is not None
        boxes = list(xs)
        for i in range(0, len(boxes), batch_size):
            chunk = boxes[i : i + batch_size]
            restored = restore(torch.stack([resize(strip[:, :, x : x + tw], *model_hw) for x in chunk])).cpu()
            for x, t in zip(chunk, restored):
                total[:, y - done : y - done + th, x : x + tw] += weight * resize(t, th, tw)
                norm[:, y - done : y - done + th, x : x + tw] += weight
        final = (ys[k + 1] if k + 1 < len(ys) else height) - done
        finished = total[:, :final] / norm[:, :final]
        yield from finished.unbind(1)
        total, norm, done = total[:, final:], norm[:, final:], done + final
        keep = ys[k + 1] if k + 1 < len(ys) else height
        buffer, first = buffer[keep - first :], keep
