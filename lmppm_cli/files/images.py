"""Image files <-> tensors in [0, 1], for every common mode, and back to the input's own mode.

A decoded image is a colour tensor (1 or 3 channels, float32 in [0, 1]) plus an `ImageInfo` that keeps
what is needed to write the result back faithfully: mode, bit depth scale, alpha plane, ICC and EXIF.
Pillow holds colour at 8 bits per channel, so 16-bit colour PNG and TIFF files are read and written by
pypng and tifffile instead (16 bits in, 16 bits out).
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.files.atomic import atomic_path
from lmppm_cli.files.formats import IMAGE_SUFFIXES  # noqa: F401  (images.IMAGE_SUFFIXES, as before)

_GRAY = {"1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, as PIL's convert("L") and torchvision's rgb_to_grayscale
_SCALE = {"I": 65535.0, "I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0, "F": 1.0}


@dataclass
class ImageInfo:
    mode: str
    width: int
    height: int
    alpha: np.ndarray | None = None  # (H, W) float in [0, 1], kept untouched for the output
    icc_profile: bytes | None = None
    exif: bytes | None = None
    notes: list[str] = field(default_factory=list)
    scale: float = 1.0  # float images: the scale their values were read on (1 or 255), used to write them back
    bits: int = 8  # colour images: bits per channel of the file (16: read and written by pypng / tifffile)
    format: str = ""  # Pillow's name of the file's format (JPEG: as cameras write photos; domain.choose)


DEEP_SUFFIXES = {".png", ".tif", ".tiff"}  # where 16-bit colour is read and written at 16 bits
# EXIF orientation -> the numpy view that turns an (H, W, C) array upright (PIL's exif_transpose)
UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def read_image(path: str | Path) -> tuple[torch.Tensor, ImageInfo]:
    """Decode a file to (colour tensor (C, H, W) in [0, 1] with C = 1 or 3, ImageInfo), turned upright by
    its EXIF orientation. Refused with one sentence: multi-frame files, images over Pillow's
    decompression-bomb limit, and pixels that are NaN or infinite or off a float scale."""
    try:
        with _no_bomb_warning(), Image.open(path) as img:  # said in our own words: large_images
            if (frames := getattr(img, "n_frames", 1)) > 1:
                raise LmppmError(
                    f"{path} holds {frames} frames (an animation or a multi-page file); lmppm restores single images, so extract the frames first."
                )
            deep = img.mode in ("RGB", "RGBA") and any(";16" in str(t.args) for t in img.tile)
            if deep and Path(path).suffix.lower() in DEEP_SUFFIXES:
                return read_deep(path, img)
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
            x, info = decode(img)
            if deep:  # Pillow's colour modes hold 8 bits per channel
                info.notes.append("16-bit colour is read with 8 bits per channel (only PNG and TIFF keep 16)")
            return x, info
    except Image.DecompressionBombError as exc:
        raise LmppmError(f"{path} is too large to decode safely: {exc}") from exc
    except FileNotFoundError as exc:
        raise LmppmError(f"{path} does not exist.") from exc
    except UnidentifiedImageError as exc:
        raise LmppmError(f"{path} is not an image file Pillow can read.") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise LmppmError(f"{path} could not be read as an image ({exc}).") from exc


def read_deep(path: str | Path, img: Image.Image) -> tuple[torch.Tensor, ImageInfo]:
    """A 16-bit colour PNG (pypng) or TIFF (tifffile) at full precision; `img` (Pillow's view of the
    same file) gives the metadata and the EXIF orientation."""
    if Path(path).suffix.lower() == ".png":
        import png

        width, height, rows, meta = png.Reader(filename=str(path)).asDirect()
        planes = meta["planes"]
        arr = np.vstack([np.asarray(row, np.uint16) for row in rows]).reshape(height, width, planes)
    else:
        import tifffile

        arr = tifffile.imread(path)
    arr = UPRIGHT.get(img.getexif().get(0x0112, 1), lambda a: a)(arr)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype != np.uint16:
        raise ValueError(f"its 16-bit colour reads as {arr.dtype} {arr.shape}, not (height, width, 3 or 4)")
    values = arr.astype(np.float32) / 65535.0
    info = ImageInfo(img.mode, arr.shape[1], arr.shape[0], None, img.info.get("icc_profile"), img.info.get("exif"))
    info.bits = 16
    if arr.shape[2] == 4:
        info.alpha = values[:, :, 3]
    tensor = torch.from_numpy(np.ascontiguousarray(values[:, :, :3])).permute(2, 0, 1)
    return tensor.contiguous(), info


@contextlib.contextmanager
def _no_bomb_warning():
    """Pillow's DecompressionBombWarning (a raw warning with its source line) silenced while opening."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


# measured (docs/speed.md): gray 2 and 8 Mpx images through the default pick
# (whole), and gray 2, 8 and 32 Mpx PNGs restored strip by strip (files/strips.py), whose memory stays near 1 GB
SECONDS_PER_MPX, MIB_PER_MPX, MIB_BASE, MIB_BANDED = 3.8, 42, 990, 1050


def large_images(paths: list[Path], in_strips=lambda path: False) -> list[str]:
    """One sentence for each image over Pillow's decompression-bomb threshold (which Pillow would only
    warn about, up to twice it): its size and what restoring it will take (`in_strips(path)`: whether it
    is restored strip by strip). Headers only."""
    said = []
    for path in paths:
        try:
            with _no_bomb_warning(), Image.open(path) as img:
                width, height = img.size
        except (OSError, ValueError, Image.DecompressionBombError):
            continue  # read_image says what is wrong with it
        if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
            mpx = width * height / 1e6
            seconds = mpx * SECONDS_PER_MPX
            took = f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
            memory = (
                f"strip by strip, about {MIB_BANDED / 1024:.1f} GiB of memory"
                if in_strips(path)
                else f"{(MIB_BASE + mpx * MIB_PER_MPX) / 1024:.1f} GiB of memory (PNG to PNG goes strip by strip)"
            )
            said.append(
                f"{path} is {width}x{height} ({mpx:.0f} megapixels, over Pillow's decompression-bomb threshold "
                f"of {Image.MAX_IMAGE_PIXELS / 1e6:.0f}); restoring it takes about {took} and {memory} on 2 CPU cores"
            )
    return said


def decode(img: Image.Image) -> tuple[torch.Tensor, ImageInfo]:
    info = ImageInfo(img.mode, img.width, img.height, None, img.info.get("icc_profile"), img.info.get("exif"))
    info.format = img.format or ""
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    if img.mode in ("LA", "La", "RGBA", "RGBa"):
        info.alpha = np.asarray(img.getchannel("A"), dtype=np.float32) / 255.0
        img = img.convert("L" if img.mode in ("LA", "La") else "RGB")
    if img.mode == "F":
        arr = _float_pixels(np.asarray(img, dtype=np.float32), info)
    elif img.mode in _SCALE:
        arr = np.asarray(img, dtype=np.float32) / _SCALE[img.mode]
    elif img.mode in _GRAY:
        arr = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    else:
        arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    arr = np.clip(arr, 0.0, 1.0)
    tensor = torch.from_numpy(arr.copy())
    tensor = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    return tensor.contiguous(), info


def _float_pixels(arr: np.ndarray, info: ImageInfo) -> np.ndarray:
    """Float pixels to [0, 1] by a stated rule: values within [0, 1] as they are, within [0, 255] on a
    0-255 scale (and written back on it); NaN, infinities and anything else are refused."""
    if not np.isfinite(arr).all():
        raise ValueError("its pixels include NaN or infinite values")
    low, high = float(arr.min()), float(arr.max())
    if low < 0.0 or high > 255.0:
        raise ValueError(
            f"its float pixels run from {low:g} to {high:g}; lmppm reads float images on a 0-1 or a 0-255 scale"
        )
    if high > 1.0:
        info.scale = 255.0
        info.notes.append("float pixels read on a 0-255 scale and written back on it")
    return arr / info.scale


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(..., C, H, W) -> (..., channels, H, W): RGB to luminance (ITU-R 601-2) or gray replicated."""
    if x.shape[-3] == channels:
        return x
    if channels == 1:
        weights = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return (x * weights).sum(-3, keepdim=True)
    return x.expand(*x.shape[:-3], channels, *x.shape[-2:]).contiguous()


def resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Antialiased bilinear resize of (..., C, H, W), clamped back to [0, 1] (torch's own interpolate, which
    torchvision's resize calls too; torchvision is not imported on the restore path: it slows start-up)."""
    if tuple(x.shape[-2:]) == (height, width):
        return x
    flat = x.reshape(-1, *x.shape[-3:])
    out = F.interpolate(flat, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return out.reshape(*x.shape[:-2], height, width).clamp(0.0, 1.0)


def fit(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Scale so the image covers (height, width), then centre-crop: no distortion (training data)."""
    h, w = x.shape[-2:]
    scale = max(height / h, width / w)
    x = resize(x, max(height, round(h * scale)), max(width, round(w * scale)))
    top, left = (x.shape[-2] - height) // 2, (x.shape[-1] - width) // 2
    return x[..., top : top + height, left : left + width]


def encode(x: torch.Tensor, info: ImageInfo) -> Image.Image | np.ndarray:
    """Colour tensor (C, H, W) at the original size -> PIL image in the input's mode, alpha restored
    (16-bit colour: a uint16 array, as `encode_array`).

    A palette image with transparency comes back as RGBA (a palette cannot hold the restored alpha
    exactly); every other mode comes back as itself.
    """
    return encode_array(to_array(x), info)


def to_array(x: torch.Tensor) -> np.ndarray:
    """Colour tensor (C, H, W) -> float array (H, W, C) in [0, 1]."""
    return x.detach().clamp(0.0, 1.0).cpu().permute(1, 2, 0).numpy()


def encode_array(arr: np.ndarray, info: ImageInfo) -> Image.Image | np.ndarray:
    """`encode` for an array from `to_array` (no torch: safe in forked writer processes). 16-bit colour
    comes back as a uint16 array (H, W, 3 or 4), which `save_image` writes with pypng or tifffile."""
    mode = info.mode
    if info.bits == 16:
        planes = [_rgb(arr)] + ([] if info.alpha is None else [info.alpha[:, :, None]])
        return np.rint(np.concatenate(planes, axis=2) * 65535.0).astype(np.uint16)
    if mode == "F":
        return Image.fromarray((_gray(arr) * info.scale).astype(np.float32), "F")
    if mode in _SCALE:  # 16-bit and 32-bit integer gray, in the input's own byte order
        values = np.rint(_gray(arr) * 65535.0)
        if mode == "I":
            return Image.fromarray(values.astype(np.int32))
        order = {"I;16B": ">u2", "I;16L": "<u2", "I;16": "<u2"}.get(mode, "=u2")
        return Image.frombytes(mode, (values.shape[1], values.shape[0]), values.astype(order).tobytes())
    gray = mode in _GRAY or mode in ("LA", "La")
    base = np.rint((_gray(arr) if gray else _rgb(arr)) * 255.0).astype(np.uint8)
    img = Image.fromarray(base, "L" if gray else "RGB")
    if info.alpha is not None:
        img.putalpha(Image.fromarray(np.rint(info.alpha * 255.0).astype(np.uint8), "L"))
        return img
    if mode == "P":
        return img.convert("P", palette=Image.Palette.ADAPTIVE)
    if mode == "1":
        return img.convert("1", dither=Image.Dither.NONE)
    return img if img.mode == mode else img.convert(mode)


def _gray(arr: np.ndarray) -> np.ndarray:
    if arr.shape[2] == 1:
        return arr[:, :, 0]
    return arr @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _rgb(arr: np.ndarray) -> np.ndarray:
    return np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr


def save_image(img: Image.Image | np.ndarray, path: str | Path, info: ImageInfo | None = None) -> None:
    """Write atomically in the format of the path's suffix, keeping ICC profile and EXIF when present.
    A uint16 colour array (16-bit colour, `encode_array`) goes to PNG or TIFF at 16 bits, to any other
    format at 8."""
    path = Path(path)
    if isinstance(img, np.ndarray):
        if path.suffix.lower() in DEEP_SUFFIXES:
            return _save_deep(img, path, info)
        img = Image.fromarray(np.rint(img / 257.0).astype(np.uint8), "RGBA" if img.shape[2] == 4 else "RGB")
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise LmppmError(f"cannot tell an image format from the name {path.name}; use e.g. .png.")
    params = {}
    if info is not None and info.icc_profile:
        params["icc_profile"] = info.icc_profile
    if info is not None and info.exif:
        params["exif"] = info.exif
    if fmt == "JPEG" and img.mode not in ("L", "RGB", "CMYK"):
        img = img.convert("RGB")
    try:
        with atomic_path(path) as tmp:
            img.save(tmp, format=fmt, **params)
    except (OSError, ValueError, KeyError) as exc:
        raise LmppmError(f"could not write {path} as {fmt} ({exc}).") from exc


def _save_deep(arr: np.ndarray, path: Path, info: ImageInfo | None) -> None:
    """uint16 (H, W, 3 or 4) to a 16-bit PNG (pypng) or TIFF (tifffile, with the ICC profile), atomically."""
    try:
        with atomic_path(path) as tmp:
            if path.suffix.lower() == ".png":
                import png

                writer = png.Writer(arr.shape[1], arr.shape[0], greyscale=False, alpha=arr.shape[2] == 4, bitdepth=16)
                with open(tmp, "wb") as f:
                    writer.write(f, arr.reshape(arr.shape[0], -1))
            else:
                import tifffile

                icc = info.icc_profile if info is not None else None
                tifffile.imwrite(tmp, arr, photometric="rgb", iccprofile=icc)
    except (OSError, ValueError) as exc:
        raise LmppmError(f"could not write {path} as 16-bit colour ({exc}).") from exc


def tensor_to_image(x: torch.Tensor) -> Image.Image:
    """(C, H, W) in [0, 1] -> 8-bit L or RGB image (grids, strips, generated samples)."""
    arr = np.rint(x.detach().clamp(0, 1).cpu().permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)
    return Image.fromarray(arr[:, :, 0], "L") if arr.shape[2] == 1 else Image.fromarray(arr, "RGB")


def grid(images: torch.Tensor, per_row: int) -> torch.Tensor:
    """torchvision's make_grid, kept single-channel for gray images."""
    from torchvision.utils import make_grid  # here: torchvision adds seconds to every start-up

    out = make_grid(images, nrow=per_row, padding=2)
    return out[:1] if images.shape[1] == 1 else out


def pixel_size(path) -> tuple[int, int]:
    """(width, height) from an image file's header, without decoding it; (0, 0) for what cannot be read."""
    try:
        with _no_bomb_warning(), Image.open(path) as img:
            return img.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return 0, 0
