"""A folder of images streamed for training (`lmppm train FOLDER --stream`): never held in memory whole.

The files are decoded once, lazily, by a DataLoader's worker processes (`ImageFiles`: one file per
item, a batch of files per worker step) into a uint8 array on disk, memory-mapped (`open_stream`).
Training then reads batches of rows from that map (core/train.py), and the exact x* search and the bank
read it a chunk at a time (core/neighbours.py, core/pixels.py). The split is data.split_files (by path
hash). The cache is reused while every file keeps its path, size and modification time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from lmppm_cli.core.data import Dataset, Split
from lmppm_cli.core.errors import LmppmError
from lmppm_cli.files.atomic import write_text
from lmppm_cli.files.data import folder_files, split_files
from lmppm_cli.files.images import fit, read_image, to_channels

CACHE_VERSION = 1
IMAGES, INDEX = "images.u8", "index.json"


class ImageFiles(torch.utils.data.Dataset):
    """Image files decoded on demand, one per item: (uint8 image (C, H, W), whether it could be read)."""

    def __init__(self, paths: list[Path], channels: int, height: int, width: int):
        self.paths, self.shape = paths, (channels, height, width)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, bool]:
        try:
            x, _ = read_image(self.paths[i])
        except LmppmError:
            return torch.zeros(self.shape, dtype=torch.uint8), False
        x = fit(to_channels(x, self.shape[0]), *self.shape[1:])
        return x.mul(255.0).round_().to(torch.uint8), True


def open_stream(
    root: Path, channels: int, height: int, width: int, cache: Path, workers: int = 2, batch: int = 256
) -> Dataset:
    """The folder as memory-mapped uint8 splits (train rows, then validation rows), decoding it into
    `cache` first unless a cache of the same files is there."""
    train, val = split_files(root, folder_files(root))
    listing = [[p.relative_to(root).as_posix(), *_stamp(p)] for p in train + val]
    key = hashlib.sha256(json.dumps([CACHE_VERSION, channels, height, width, len(train), listing]).encode()).hexdigest()
    index = _read_index(cache / INDEX)
    if index.get("key") != key:
        index = _build(train + val, len(train), (channels, height, width), cache, key, workers, batch)
    n_train, n_val = index["train"], index["val"]
    if n_train < 1 or n_val < 1:
        raise LmppmError(
            f"{root} holds {n_train + n_val} readable images ({n_val} for validation); training needs at least one of each."
        )
    array = np.memmap(
        cache / IMAGES, np.uint8, "c", shape=(n_train + n_val, channels, height, width)
    )  # copy-on-write: never changes the file
    images = torch.from_numpy(array)
    return Dataset(
        str(root),
        Split(images[:n_train]),
        Split(images[n_train:]),
        None,
        tuple(index["skipped"]),
        joint=images,
        digest=index["sha256"],
        workers=workers,
    )


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _read_index(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _build(
    paths: list[Path], n_train: int, shape: tuple[int, int, int], cache: Path, key: str, workers: int, batch: int
) -> dict:
    """Decode every file once, `batch` files per worker step, into cache/images.u8; unreadable files are
    left out and named. Written under a temporary name, then renamed, so a cut run leaves no half cache."""
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / (IMAGES + ".part")
    out = np.memmap(tmp, np.uint8, "w+", shape=(max(len(paths), 1), *shape))
    loader = DataLoader(ImageFiles(paths, *shape), batch_size=batch, num_workers=workers)
    digest, skipped, cursor, kept_train = hashlib.sha256(), [], 0, 0
    for k, (x, ok) in enumerate(loader):
        good = x[ok].numpy()
        out[cursor : cursor + len(good)] = good
        digest.update(good.tobytes())
        cursor += len(good)
        first = k * batch
        kept_train += int(ok[: max(0, n_train - first)].sum())
        skipped += [str(paths[first + j]) for j in (~ok).nonzero().flatten().tolist()]
    out.flush()
    del out
    os.truncate(tmp, cursor * int(np.prod(shape)))
    os.replace(tmp, cache / IMAGES)
    index = {
        "key": key,
        "train": kept_train,
        "val": cursor - kept_train,
        "skipped": skipped,
        "sha256": digest.hexdigest(),
    }
    write_text(cache / INDEX, json.dumps(index))
    return index
