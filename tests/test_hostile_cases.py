"""The last hostile cases (issue 23), each through the real command line on real files: a run folder
that cannot be written, resuming by another spelling of the data's path, 16-bit colour, a very large
image, and a rerun into an output folder inside the input folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ENV = {**os.environ, "LMPPM_THREADS": "1"}
TINY = ["--epochs", "1", "--image-size", "16", "--latent-dim", "4", "--widths", "4,8", "--batch-size", "4"]
TINY += ["--no-calibrate", "--device", "cpu"]


def _lmppm(*args, cwd=None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "lmppm_cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=ENV, timeout=600)


def _folder(path: Path, n: int = 8, seed: int = 0) -> Path:
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(path / f"{i}.png")
    return path


def _one_line(done: subprocess.CompletedProcess) -> str:
    said = " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr, done.stderr
    return said


@pytest.fixture
def unwritable(tmp_path):
    """A folder this process cannot write: read-only for a user, immutable (chattr +i) for root."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
    elif shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
        pytest.skip("root without chattr +i: no folder here is unwritable")
    yield folder
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)])
    folder.chmod(0o755)


@pytest.mark.parametrize("inside", [False, True])
def test_training_into_a_folder_that_cannot_be_written_is_one_sentence_before_any_epoch(tmp_path, unwritable, inside):
    data = _folder(tmp_path / "in")
    target = unwritable / "run" if inside else unwritable
    done = _lmppm("train", data, "-o", target, *TINY)
    said = _one_line(done)
    assert done.returncode == 2 and f"-o {target} cannot be written" in said and "epoch" not in said, said
    assert not list(unwritable.iterdir())


def test_resume_accepts_the_same_data_by_a_relative_path_and_refuses_another_folder(tmp_path):
    data = _folder(tmp_path / "in")
    first = _lmppm("train", data.resolve(), "-o", tmp_path / "runA", *TINY)
    assert first.returncode == 0, first.stderr
    same = _lmppm("train", "in", "-o", "runA", *TINY[2:], "--epochs", "2", "--resume", cwd=tmp_path)
    assert same.returncode == 0, same.stderr
    assert "best epoch" in same.stdout and (tmp_path / "runA" / "model.safetensors").is_file()
    other = _folder(tmp_path / "other", seed=1)
    refused = _lmppm("train", other, "-o", tmp_path / "runA", *TINY[2:], "--epochs", "3", "--resume")
    said = _one_line(refused)
    assert refused.returncode == 2 and "was trained on" in said and "resume with the same data" in said, said


def _noisy_colour(height: int = 40, width: int = 48, alpha: bool = False) -> np.ndarray:
    """A smooth colour image with noise, as uint16 (H, W, 3 or 4)."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([0.3 + 0.4 * yy / height, 0.2 + 0.5 * xx / width, 0.5 + 0.2 * np.sin(xx / 5)], 2)
    noisy = np.clip(base + 0.1 * np.random.default_rng(0).standard_normal(base.shape), 0, 1)
    if alpha:
        noisy = np.concatenate([noisy, (xx / width)[:, :, None]], 2)
    return np.rint(noisy * 65535).astype(np.uint16)


def _read16(path: Path) -> np.ndarray:
    if path.suffix == ".png":
        import png

        width, height, rows, meta = png.Reader(filename=str(path)).asDirect()
        assert meta["bitdepth"] == 16
        return np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(height, width, meta["planes"])
    import tifffile

    return tifffile.imread(path)


def _write16(path: Path, arr: np.ndarray) -> None:
    if path.suffix == ".png":
        import png

        writer = png.Writer(arr.shape[1], arr.shape[0], greyscale=False, alpha=arr.shape[2] == 4, bitdepth=16)
        with open(path, "wb") as f:
            writer.write(f, arr.reshape(arr.shape[0], -1))
    else:
        import tifffile

        tifffile.imwrite(path, arr, photometric="rgb")


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_colour_is_restored_at_16_bits_and_agrees_with_the_8_bit_run(tmp_path, suffix):
    src, src8 = tmp_path / f"photo{suffix}", tmp_path / "photo8.png"
    arr = _noisy_colour()
    _write16(src, arr)
    Image.fromarray(np.rint(arr / 257.0).astype(np.uint8)).save(src8)
    for path in (src, src8):
        done = _lmppm("restore", path, "-o", tmp_path / f"out-{path.name}", "-m", "photos", "--device", "cpu")
        assert done.returncode == 0 and "8 bits" not in done.stdout + done.stderr, done.stderr
    out = _read16(tmp_path / f"out-{src.name}")
    out8 = np.asarray(Image.open(tmp_path / "out-photo8.png"), np.float64)
    assert out.dtype == np.uint16 and out.shape == arr.shape
    assert len(np.unique(out % 257)) > 100  # full 16-bit values, not 8-bit ones scaled up
    assert not np.array_equal(out, arr)  # restored, not copied
    gap = np.abs(out / 257.0 - out8)
    assert gap.max() < 2.0 and gap.mean() < 0.5  # in 8-bit levels: the two runs agree to within quantisation


def test_16_bit_colour_keeps_its_16_bit_alpha_and_says_so_when_the_output_holds_8(tmp_path):
    src = tmp_path / "alpha.png"
    arr = _noisy_colour(alpha=True)
    _write16(src, arr)
    done = _lmppm("restore", src, "-o", tmp_path / "out.png", "-m", "photos", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    out = _read16(tmp_path / "out.png")
    assert out.shape == arr.shape and np.array_equal(out[:, :, 3], arr[:, :, 3])
    jpg = _lmppm("restore", src, "-o", tmp_path / "out.jpg", "-m", "photos", "--device", "cpu")
    assert jpg.returncode == 0 and "written with 8 bits per channel" in " ".join((jpg.stdout + jpg.stderr).split())
    assert Image.open(tmp_path / "out.jpg").mode == "RGB"


def _digits(folder: Path, n: int = 3) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for i in range(n):
        Image.fromarray((rng.random((28, 28)) * 255).astype(np.uint8)).save(folder / f"{i}.png")


def test_a_rerun_into_an_output_folder_inside_the_input_replaces_its_own_results_only(tmp_path):
    _digits(tmp_path / "in")
    out = tmp_path / "in" / "out"
    first = _lmppm("restore", "in", "-o", "in/out", "--device", "cpu", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    mine = out / "notes.png"  # the user's own image in that folder, under a name the run does not write
    Image.fromarray(np.full((28, 28), 7, np.uint8)).save(mine)
    kept = mine.read_bytes()
    again = _lmppm("restore", "in", "-o", "in/out", "--method", "ablation-lmppm", "--device", "cpu", cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # the natural second try
    assert all(out.joinpath(n).stat().st_mtime_ns > t for n, t in before.items())  # replaced
    assert mine.read_bytes() == kept and sorted(p.name for p in out.glob("*.png")) == [
        "0.png",
        "1.png",
        "2.png",
        "notes.png",
    ]
    Image.fromarray(np.full((28, 28), 9, np.uint8)).save(out / "1.png")  # the user puts their own image there
    theirs = (out / "1.png").read_bytes()
    refused = _lmppm("restore", "in", "-o", "in/out", "--device", "cpu", cwd=tmp_path)
    said = _one_line(refused)
    assert refused.returncode == 2 and "already holds in/out/1.png" in said, said
    assert (out / "1.png").read_bytes() == theirs and mine.read_bytes() == kept


def test_a_very_large_image_gets_one_line_of_ours_and_no_raw_pillow_warning(tmp_path):
    """Between Pillow's decompression-bomb threshold and twice it Pillow only warns, with its own source
    line; the run says instead, before restoring, how large the image is and what it will take. (The
    threshold is lowered here so that a 2-megapixel image stands for a 100-megapixel one.)"""
    src = tmp_path / "big.png"
    Image.fromarray((np.random.default_rng(0).random((1000, 2000)) * 255).astype(np.uint8)).save(src)
    code = (
        "import sys\nfrom PIL import Image\nImage.MAX_IMAGE_PIXELS = 1_500_000\nfrom lmppm_cli.cli import main\n"
        f"sys.argv = ['lmppm', 'restore', {str(src)!r}, '-o', {str(tmp_path / 'out.png')!r}, '--device', 'cpu']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=600)
    said = " ".join(done.stderr.split())
    assert done.returncode == 0 and "Warning" not in done.stderr and "warnings.warn" not in done.stderr, done.stderr
    assert f"note: {src} is 2000x1000 (2 megapixels, over Pillow's decompression-bomb threshold of 2)" in said, said
    assert "restoring it takes about 8 s and strip by strip, about 1.0 GiB of memory" in said
    assert (tmp_path / "out.png").is_file()
    assert said.index("is 2000x1000") < said.index("model: photos")  # said before the restoring begins


def _restore_with_threshold(src: Path, out: Path, threshold: int) -> subprocess.CompletedProcess:
    code = (
        f"import sys\nfrom PIL import Image\nImage.MAX_IMAGE_PIXELS = {threshold}\nfrom lmppm_cli.cli import main\n"
        f"sys.argv = ['lmppm', 'restore', {str(src)!r}, '-o', {str(out)!r}, '-m', 'photos', '--device', 'cpu']\n"
        "main()\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=600)


@pytest.mark.parametrize("mode", ["L", "RGB", "I;16"])
def test_a_very_large_png_restored_band_by_band_equals_the_whole_image_restoration(tmp_path, mode):
    """Over the threshold a PNG -> PNG restore goes strip by strip (files/strips.py), memory bounded by a
    band of tiles; its result is the whole-image path's in the input's mode, to the last unit (the luma
    of a row and of the whole image may round apart in one pixel of 100,000)."""
    yy, xx = np.mgrid[0:300, 0:410]
    base = 0.5 + 0.3 * np.sin(xx / 17) * np.cos(yy / 23)
    base = np.stack([base, base[::-1], 1 - base], 2) if mode == "RGB" else base
    noisy = np.clip(base + 0.15 * np.random.default_rng(0).standard_normal(base.shape), 0, 1)
    src = tmp_path / "big.png"
    if mode == "I;16":
        Image.fromarray(np.rint(noisy * 65535).astype(np.uint16)).save(src)
    else:
        Image.fromarray(np.rint(noisy * 255).astype(np.uint8), mode).save(src)
    whole = _restore_with_threshold(src, tmp_path / "whole.png", 10**9)
    in_strips = _restore_with_threshold(src, tmp_path / "in_strips.png", 80_000)  # 123,000 pixels: over it
    assert whole.returncode == 0 and in_strips.returncode == 0, in_strips.stderr
    assert "strip by strip" in " ".join(in_strips.stderr.split()) and "strip by strip, about" not in whole.stderr
    a, b = Image.open(tmp_path / "whole.png"), Image.open(tmp_path / "in_strips.png")
    assert a.mode == b.mode and a.size == b.size == (410, 300)
    gap = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    assert gap.max() <= 1 and (gap > 0).mean() < 1e-3  # at most a last-unit rounding of the luma sum
