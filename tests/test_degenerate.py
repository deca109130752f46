"""Degenerate images through the real CLI: each comes back restored, or copied unchanged with a note;
never black where the input was not, never with a warning from numpy or torch."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


def _noisy(h: int, w: int, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(60, 190, w)[None, :, None] + np.zeros((h, 1, channels))
    if channels == 3:
        base = base * np.array([1.0, 0.6, 0.3])
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def _save(folder, name: str, array: np.ndarray, mode: str | None = None) -> None:
    img = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array, mode)
    img.save(folder / name)


@pytest.fixture
def degenerate(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for side in (1, 2, 4, 7):
        _save(folder, f"colour_{side}.png", _noisy(side, side, 3, side))
        _save(folder, f"grey_{side}.png", _noisy(side, side, 1, side))
    (folder / "colour_1.png").unlink()
    Image.new("RGB", (1, 1), (200, 30, 40)).save(folder / "colour_1.png")
    _save(folder, "strip_3000x8.png", _noisy(8, 3000, 3, 1))
    _save(folder, "strip_8x3000.png", _noisy(3000, 8, 3, 2))
    deep = (_noisy(24, 24, 1, 3)[..., 0].astype(np.uint16) * 257).astype(np.uint16)
    Image.fromarray(deep).save(folder / "grey16.png")
    rgba = np.concatenate([_noisy(24, 24, 3, 4), np.full((24, 24, 1), 128, np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    Image.new("RGB", (24, 24), (0, 0, 0)).save(folder / "black.png")
    Image.new("RGB", (24, 24), (255, 255, 255)).save(folder / "white.png")
    Image.new("RGB", (40, 40), (200, 30, 40)).save(folder / "constant.png")  # BM3D once divided by its 0 spread
    return folder


def test_degenerate_images_come_back_restored_or_copied_with_a_note(degenerate, tmp_path):
    out, report = tmp_path / "out", tmp_path / "report.csv"
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    cmd = [sys.executable, "-m", "lmppm_cli", "restore", str(degenerate), "-o", str(out), "--report", str(report)]
    done = subprocess.run([*cmd, "--device", "cpu"], capture_output=True, text=True, env=env, timeout=600)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "Warning" not in said and "Traceback" not in said
    rows = {os.path.basename(r["input"]): r for r in csv.DictReader(report.open())}
    for src in sorted(degenerate.iterdir()):
        before = np.asarray(Image.open(src)).astype(float)
        after = np.asarray(Image.open(out / src.name)).astype(float)
        assert after.shape == before.shape, src.name
        if before.any():
            assert after.any(), f"{src.name} came back black"
        small = min(before.shape[:2]) < 8 and "strip" not in src.name
        if small or src.name in ("black.png", "white.png", "constant.png"):
            assert np.array_equal(after, before), src.name
            assert "copied unchanged" in rows[src.name]["note"]
            assert f"{src.name}: " in said or "copied unchanged" in said
        assert np.abs(after - before).mean() < 0.2 * max(before.max(), 1), src.name  # not altered beyond noise
    strip_in = np.asarray(Image.open(degenerate / "strip_3000x8.png")).astype(float)
    strip_out = np.asarray(Image.open(out / "strip_3000x8.png")).astype(float)
    assert np.abs(strip_out - strip_in).mean() > 2  # denoised, not a no-op


def test_pick_reasons_that_differ_in_numbers_only_merge_into_one_with_ranges():
    from lmppm_cli.display import merged_reasons

    reasons = [
        "colour image, estimated noise 0.093: BM3D is ahead (30.1 against 29.5 dB)",
        "colour image, estimated noise 0.071: BM3D is ahead (31.0 against 30.2 dB)",
        "1x1 is no bundled model's size; restored in tiles",
        "colour image, estimated noise 0.080: BM3D is ahead (30.5 against 29.9 dB)",
    ]
    merged = merged_reasons(reasons)
    assert merged == [
        "colour image, estimated noise 0.071-0.093: BM3D is ahead (30.1-31.0 against 29.5-30.2 dB)",
        "1x1 is no bundled model's size; restored in tiles",
    ]
