import numpy as np
import pytest
import torch
from PIL import Image

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.files.images import decode, encode, fit, read_image, resize, save_image, to_channels


def _modes(rng):
    r = np.random.default_rng(0)
    rgb = (r.random((9, 13, 3)) * 255).astype(np.uint8)
    return {
        "L": Image.fromarray(rgb[:, :, 0]),
        "RGB": Image.fromarray(rgb),
        "RGBA": Image.fromarray((r.random((9, 13, 4)) * 255).astype(np.uint8)),
        "LA": Image.fromarray((r.random((9, 13, 2)) * 255).astype(np.uint8), "LA"),
        "I;16": Image.fromarray((r.random((9, 13)) * 65535).astype(np.uint16)),
        "I": Image.fromarray((r.random((9, 13)) * 65535).astype(np.int32)),
        "F": Image.fromarray(r.random((9, 13)).astype(np.float32)),
        "P": Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE),
        "1": Image.fromarray(rgb[:, :, 0]).convert("1"),
        "CMYK": Image.fromarray(rgb).convert("CMYK"),
    }


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "I;16", "I", "F", "P", "1", "CMYK"])
def test_every_mode_round_trips_exactly(mode, rng):
    img = _modes(rng)[mode]
    x, info = decode(img)
    assert x.dtype == torch.float32 and x.shape[0] in (1, 3) and tuple(x.shape[1:]) == (9, 13)
    assert 0.0 <= x.min() and x.max() <= 1.0
    out = encode(x, info)
    assert out.mode == mode and out.size == img.size
    a = np.asarray(out.convert("RGB") if mode == "P" else out, dtype=np.float64)
    b = np.asarray(img.convert("RGB") if mode == "P" else img, dtype=np.float64)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_sixteen_bit_keeps_its_precision(tmp_path):
    ramp = (np.arange(300, dtype=np.uint16) * 200).reshape(15, 20)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    x, info = read_image(tmp_path / "deep.png")
    assert info.mode == "I;16"
    assert len(torch.unique(x)) == 300  # 8-bit conversion would merge neighbouring values
    save_image(encode(x, info), tmp_path / "back.png", info)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "back.png")), ramp)


def test_alpha_plane_is_kept_when_colour_changes():
    r = np.random.default_rng(1)
    img = Image.fromarray((r.random((8, 8, 4)) * 255).astype(np.uint8))
    x, info = decode(img)
    out = encode(1.0 - x, info)
    np.testing.assert_array_equal(np.asarray(out.getchannel("A")), np.asarray(img.getchannel("A")))


def test_palette_with_transparency_comes_back_as_rgba():
    img = Image.new("P", (6, 6), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.info["transparency"] = 0
    x, info = decode(img)
    assert info.alpha is not None
    assert encode(x, info).mode == "RGBA"


def test_icc_profile_is_kept(tmp_path):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.new("RGB", (5, 5), (10, 20, 30)).save(tmp_path / "c.png", icc_profile=icc)
    x, info = read_image(tmp_path / "c.png")
    save_image(encode(x, info), tmp_path / "d.png", info)
    assert Image.open(tmp_path / "d.png").info.get("icc_profile") == icc


def test_channel_conversion_and_resizing(rng):
    rgb = torch.rand(2, 3, 10, 14, generator=rng)
    gray = to_channels(rgb, 1)
    torch.testing.assert_close(gray[:, 0], 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2], atol=1e-4, rtol=0)
    assert to_channels(gray, 3).shape == (2, 3, 10, 14)
    assert resize(rgb, 5, 7).shape == (2, 3, 5, 7)
    cropped = fit(rgb, 8, 8)
    assert cropped.shape == (2, 3, 8, 8) and 0 <= cropped.min() and cropped.max() <= 1


def test_unreadable_files_give_one_sentence(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(LmppmError, match="not an image file"):
        read_image(tmp_path / "notes.png")
    with pytest.raises(LmppmError, match="does not exist"):
        read_image(tmp_path / "absent.png")
    with pytest.raises(LmppmError, match="cannot tell an image format"):
        save_image(Image.new("L", (2, 2)), tmp_path / "out.xyz")
