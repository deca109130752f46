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


def test_exif_orientation_is_applied_and_not_applied_twice_on_output(tmp_path):
    arr = np.zeros((20, 30), np.uint8)
    arr[:, :5] = 255  # a bright band on the stored image's left edge
    exif = Image.new("L", (1, 1)).getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    Image.fromarray(arr).save(tmp_path / "turned.png", exif=exif.tobytes())
    x, info = read_image(tmp_path / "turned.png")
    assert x.shape == (1, 30, 20) and (info.width, info.height) == (20, 30)
    assert x[0, :5].mean() > 0.9 and x[0, 5:].mean() < 0.1  # upright: the band is now on top
    save_image(encode(x, info), tmp_path / "out.png", info)
    written = Image.open(tmp_path / "out.png")
    assert written.size == (20, 30) and written.getexif().get(0x0112) in (None, 1)


def test_multi_frame_bombs_and_non_finite_pixels_are_refused_in_one_sentence(tmp_path, monkeypatch):
    frames = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (0, 128)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(LmppmError, match="holds 2 frames"):
        read_image(tmp_path / "anim.gif")
    bad = np.ones((6, 6), np.float32)
    bad[2, 3] = np.nan
    Image.fromarray(bad, "F").save(tmp_path / "nan.tif")
    with pytest.raises(LmppmError, match="NaN or infinite"):
        read_image(tmp_path / "nan.tif")
    Image.fromarray(np.full((6, 6), 900.0, np.float32), "F").save(tmp_path / "far.tif")
    with pytest.raises(LmppmError, match="0-1 or a 0-255 scale"):
        read_image(tmp_path / "far.tif")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # the 36-pixel images above now count as bombs (> 2x)
    with pytest.raises(LmppmError, match="too large to decode safely"):
        read_image(tmp_path / "nan.tif")


def test_float_images_on_a_0_255_scale_are_read_and_written_on_it(tmp_path):
    values = np.linspace(0, 255, 36, dtype=np.float32).reshape(6, 6)
    Image.fromarray(values, "F").save(tmp_path / "f255.tif")
    x, info = read_image(tmp_path / "f255.tif")
    assert float(x.max()) == pytest.approx(1.0) and info.scale == 255.0 and info.notes
    save_image(encode(x, info), tmp_path / "back.tif", info)
    np.testing.assert_allclose(np.asarray(Image.open(tmp_path / "back.tif")), values, atol=1e-3)


def test_big_endian_16_bit_round_trips_exactly_and_16_bit_colour_is_read_at_16_bits(tmp_path):
    import struct
    import zlib

    values = np.linspace(0, 65535, 64).reshape(8, 8).astype(">u2")
    Image.frombytes("I;16B", (8, 8), values.tobytes()).save(tmp_path / "be.tif")
    x, info = read_image(tmp_path / "be.tif")
    save_image(encode(x, info), tmp_path / "out.tif", info)
    back = Image.open(tmp_path / "out.tif")
    assert back.mode == "I;16B" and np.array_equal(np.asarray(back), np.asarray(Image.open(tmp_path / "be.tif")))
    rgb16 = (np.random.default_rng(0).random((4, 4, 3)) * 65535).astype(">u2")  # a 16-bit RGB PNG, by hand
    rows = b"".join(b"\x00" + row.tobytes() for row in rgb16)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 4, 4, 16, 2, 0, 0, 0)
    (tmp_path / "deep.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )
    x, info = read_image(tmp_path / "deep.png")
    assert x.shape == (3, 4, 4) and info.bits == 16 and not info.notes  # pypng reads it at 16 bits
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy(), rgb16.astype(np.float64) / 65535.0, atol=1e-7)
