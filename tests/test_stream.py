"""Streamed training data (files/stream.py): the path-hash split, lazy decoding a batch of files per
worker step, the memory-mapped cache, and training from it through the CLI."""

import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import blob_images, write_png
from PIL import Image
from torch.utils.data import DataLoader
from typer.testing import CliRunner

from lmppm_cli.cli import app
from lmppm_cli.core.neighbours import FaissIndex, faiss_available, nearest
from lmppm_cli.files.data import is_validation, split_files
from lmppm_cli.files.stream import ImageFiles, open_stream
from lmppm_cli.files.weights import load_model


def test_the_split_by_path_hash_holds_out_a_tenth_and_is_stable_when_files_are_added(tmp_path):
    names = [tmp_path / f"d{i % 7}" / f"{i:05d}.png" for i in range(2000)]
    train, val = split_files(tmp_path, names[:1000])
    assert 70 <= len(val) <= 130 and len(train) + len(val) == 1000 and not set(train) & set(val)
    train2, val2 = split_files(tmp_path, names)  # twice the files: none of the first thousand moves
    assert set(val2) & set(names[:1000]) == set(val) and set(train2) & set(names[:1000]) == set(train)
    assert is_validation("a/b.png") == is_validation("a/b.png")
    assert split_files(tmp_path, names[:1]) == (names[:1], []) and split_files(tmp_path, names[:2])[1] != []


class _CountingFiles(ImageFiles):
    """Records, in memory shared with the DataLoader's forked workers, when each file was read."""

    def __init__(self, *args):
        super().__init__(*args)
        ctx = multiprocessing.get_context("fork")
        self.count, self.when = ctx.Value("i", 0), ctx.Array("i", [-1] * len(self.paths))

    def __getitem__(self, i):
        with self.count.get_lock():
            self.when[i] = self.count.value
            self.count.value += 1
        return super().__getitem__(i)


def test_workers_read_the_files_of_one_batch_per_step_and_each_file_once(tmp_path):
    paths = []
    for i, img in enumerate(blob_images(40, size=12, seed=4)):
        paths.append(tmp_path / f"{i:02d}.png")
        write_png(paths[-1], (img[0].numpy() * 255).astype(np.uint8))
    files, batch, workers = _CountingFiles(paths, 1, 12, 12), 4, 2
    loader = DataLoader(files, batch_size=batch, num_workers=workers, prefetch_factor=1, multiprocessing_context="fork")
    for k, (x, ok) in enumerate(loader):
        assert x.shape == (batch, 1, 12, 12) and x.dtype == torch.uint8 and ok.all()
        # read so far: the batches handed over, plus at most one batch in flight per worker
        assert files.count.value <= (k + 1 + workers) * batch
    assert sorted(files.when) == list(range(40))  # every file read exactly once


def _folder(root: Path, n: int = 30) -> Path:
    """Nested folders, PNG and BMP and TIFF, 8-bit gray at the model's size, and one file that is no image."""
    for i, img in enumerate(blob_images(n, size=12, seed=6)):
        sub = ("", "a", "a/b")[i % 3]
        suffix = (".png", ".bmp", ".tif")[i % 3]
        write_png(root / sub / f"{i:03d}{suffix}", (img[0].numpy() * 255).astype(np.uint8))
    (root / "a" / "broken.png").write_bytes(b"not an image")
    return root


def test_the_cache_holds_every_readable_image_names_the_rest_and_is_reused_until_a_file_changes(tmp_path):
    root, cache = _folder(tmp_path / "imgs"), tmp_path / "cache"
    ds = open_stream(root, 1, 12, 12, cache, workers=0, batch=7)
    assert ds.skipped == (str(root / "a" / "broken.png"),)
    assert ds.train.images.dtype == torch.uint8 and len(ds.train.images) + len(ds.val.images) == 30
    assert torch.equal(ds.joint[: len(ds.train.images)], ds.train.images)
    train, val = split_files(root, sorted(p for p in root.rglob("*") if p.is_file() and p.name != "broken.png"))
    first = np.asarray(Image.open(train[0]))
    assert np.array_equal(ds.train.images[0, 0].numpy(), first)  # exact 8-bit pixels, in split order
    stamp = (cache / "images.u8").stat().st_mtime_ns
    assert open_stream(root, 1, 12, 12, cache, workers=0).digest == ds.digest
    assert (cache / "images.u8").stat().st_mtime_ns == stamp  # reused, not rebuilt
    Image.fromarray(255 - first).save(train[0])
    os.utime(train[0], ns=(1, 1))
    changed = open_stream(root, 1, 12, 12, cache, workers=0)
    assert changed.digest != ds.digest and np.array_equal(changed.train.images[0, 0].numpy(), 255 - first)
    assert not list(cache.glob("*.part"))


def test_exact_and_faiss_search_over_a_uint8_memory_map_match_the_float_pool(tmp_path):
    pool = (blob_images(300, size=12, seed=8) * 255).round().to(torch.uint8)
    queries = torch.rand(20, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    a, da = nearest(queries, pool.float() / 255, chunk=64)
    b, db = nearest(queries, pool, chunk=64)
    assert torch.equal(a, b) and torch.allclose(da, db)
    if faiss_available():
        index = FaissIndex(pool, dims=16, fit_rows=100, chunk=64)
        i, _ = index.search(pool[:50].float() / 255)
        assert (i == torch.arange(50)).float().mean() >= 0.95


@pytest.mark.parametrize("workers", ["0", "2"])
def test_streamed_training_from_the_cli_ends_with_the_weights_of_training_in_memory(tmp_path, workers):
    """8-bit files at the model's size: the cache holds exactly what in-memory loading gives, so the same
    seed trains the same model, whether batches come from DataLoader workers or from this process."""
    root = _folder(tmp_path / "imgs")
    common = [
        str(root),
        "--image-size",
        "12",
        "--latent-dim",
        "4",
        "--widths",
        "4,8",
        "--batch-size",
        "8",
        "--epochs",
        "2",
        "--seed",
        "2",
        "--device",
        "cpu",
    ]
    streamed = CliRunner().invoke(app, ["train", *common, "-o", str(tmp_path / "s"), "--stream", "--workers", workers])
    assert streamed.exit_code == 0, streamed.output
    assert "skipped 1 unreadable file(s)" in streamed.output and (tmp_path / "s" / "cache" / "images.u8").is_file()
    memory = CliRunner().invoke(app, ["train", *common, "-o", str(tmp_path / "m")])
    assert memory.exit_code == 0, memory.output
    a, b = load_model(tmp_path / "s" / "model.safetensors"), load_model(tmp_path / "m" / "model.safetensors")
    for key, value in a.state_dict().items():
        torch.testing.assert_close(value, b.state_dict()[key], atol=1e-6, rtol=1e-5, msg=key)
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert (
        summary["skipped_files"] == [str(root / "a" / "broken.png")]
        and summary["train_images"] + summary["val_images"] == 30
    )


def test_stream_needs_a_folder(tmp_path):
    res = CliRunner().invoke(app, ["train", "mnist-5k", "-o", str(tmp_path / "r"), "--stream"])
    assert res.exit_code == 2 and "--stream trains from a folder of images" in res.output
