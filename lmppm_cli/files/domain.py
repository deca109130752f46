"""Which bundled model suits an image, and how an image sits with respect to a model's data.

`scores` measures an image under one model: D_S(F(x)) (the learned distance of Eq. 20, mean over the
image's views), the model's own reconstruction residual (blurred, so that white noise, which the model
is meant to remove, counts little and content it cannot represent counts fully), and the image's
noise level (Donoho's median-absolute-deviation estimate on the finest diagonal Haar details).

`choose` picks among the bundled domain models by channels and size, sends a colour photo to blind BM3D
where the photo model was more than SPEED_MARGIN behind it on the validation scenes at the photo's
estimated noise (`photo_method`), and warns where the image's noise is beyond anything the model was trained on. D and the residual are reported (`lmppm restore
--report`) but do not pick: on the bundled models neither separates photos, text or noise from each
model's own degraded data (README, "Choosing a model").
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from lmppm_cli.core.models import architecture
from lmppm_cli.core.noise_level import estimate_noise
from lmppm_cli.core.precision import cpu_has_bf16
from lmppm_cli.files.images import resize, to_channels

DOMAIN_MODELS = {
    "mnist": "handwritten digits, 28x28 gray",
    "faces": "face crops, 25x25 gray",
    "photos": "natural photos, colour (where blind BM3D is not measured ahead) or gray, any size (tiled)",
    "photos-camera": "colour photos as cameras write them (JPEG files), where it beats blind BM3D; any size (tiled)",
}
GENERAL = "photos"  # the model for images of no bundled model's size
CAMERA = "photos-camera"  # the model for a camera's JPEGs (choose, by CAMERA_TABLE)
NATIVE_RATIO = 1.5  # an image within this factor of a model's input size is of that model's size
NOISE_MARGIN = 1.25  # warn when the estimated noise exceeds the trained maximum by this factor
BM3D_MIN_SIDE = 32  # pixels: a narrower colour image goes to the learned model (BM3D's blocks find too few matches)
COLOUR_SPREAD = 0.02  # mean |channel - gray| above which a 3-channel image counts as colour
MAX_VIEWS = 64  # tiles scored per image (a spread grid), so scoring a large image stays cheap
BLUR_SIGMA = 2.0  # pixels; the residual's blur
PICK_TABLE = "photos-vs-bm3d.json"  # weights/: `lmppm bench --suite photo-pick` for the bundled photo model
SPEED_MARGIN = 0.25  # dB: BM3D runs 30-170x slower; the pick takes it only where the table has it ahead by more
BF16_TOLERANCE = 0.05  # dB: a picked model runs in bf16 where its table has it this close to fp32 (issue 42)
CAMERA_TABLE = "camera-vs-bm3d.json"  # weights/: `lmppm bench --suite camera` for the bundled camera model


@dataclass
class Scores:
    distance: float | None  # mean D_S(F(x)) over the views (None: the model has no D)
    residual: float  # RMS of the blurred residual x - G(F(x)), mean over the views
    noise: float  # estimated noise standard deviation of the image


@dataclass(frozen=True)
class CameraPick:
    """What sends a photo to the camera model: whether its file is a JPEG, and the bundled camera table."""

    jpeg: bool
    table: dict | None


@dataclass
class Choice:
    name: str  # a bundled model, or a classical method that needs none (bm3d)
    reason: str
    warnings: list[str] = field(default_factory=list)
    method: str | None = None  # bm3d where the learned photo model is not ahead of it (photo_method)
    precision: str | None = None  # bf16 where its table allows it on this device (fast_precision), else fp32


def views(x: torch.Tensor, model) -> torch.Tensor:
    """The model's inputs for an image (C, H, W): a U-Net larger than its input sees up to MAX_VIEWS of
    its tiles, spread over the image; otherwise the whole image resized. -> (V, c, h, w)."""
    ae = model.config.autoencoder
    x = to_channels(x, ae.channels)
    H, W = x.shape[-2:]
    if not architecture(ae.arch).tiles or (H <= ae.height and W <= ae.width):
        return resize(x, ae.height, ae.width).unsqueeze(0)
    side = int(math.sqrt(MAX_VIEWS))
    ys = torch.linspace(0, max(H - ae.height, 0), min(side, max(1, H // ae.height))).long().tolist()
    xs = torch.linspace(0, max(W - ae.width, 0), min(side, max(1, W // ae.width))).long().tolist()
    return torch.stack([resize(x[:, y : y + ae.height, z : z + ae.width], ae.height, ae.width) for y in ys for z in xs])


@torch.no_grad()
def scores(model, x: torch.Tensor) -> Scores:
    """Scores of one image (C, H, W) in [0, 1] under `model` (see the module docstring)."""
    import torchvision.transforms.functional as TF  # here: torchvision slows every start-up (docs/speed.md)

    v = views(x, model).to(model.device)
    z, skips = model.autoencoder.encode(v)
    residual = TF.gaussian_blur(v - model.autoencoder.decode(z, skips), [9, 9], [BLUR_SIGMA, BLUR_SIGMA])
    distance = getattr(model, "distance", None)
    return Scores(
        distance=None if distance is None else float(distance(z).mean()),
        residual=float(residual.flatten(1).pow(2).mean(1).sqrt().mean()),
        noise=estimate_noise(x),
    )


def trained_noise(training: dict) -> float | None:
    """The strongest noise a model met in training, from its saved training summary (None if unknown)."""
    try:
        cfg = training.get("train_config") or {}
        if cfg.get("sigma_range"):
            return float(cfg["sigma_range"][1])
        return float(cfg["sigma_d"]) if "sigma_d" in cfg else None
    except (AttributeError, TypeError, ValueError, KeyError, IndexError):
        return None


def is_colour(x: torch.Tensor) -> bool:
    return x.shape[0] >= 3 and float((x[:3] - x[:3].mean(0, keepdim=True)).abs().mean()) > COLOUR_SPREAD


def size_ratio(x: torch.Tensor, model) -> float:
    """How far the image's size is from the model's input, as a factor >= 1."""
    ae = model.config.autoencoder
    h, w = x.shape[-2:]
    return max(h / ae.height, ae.height / h, w / ae.width, ae.width / w)


def photo_method(
    sigma: float, table: dict | None, name: str = GENERAL, what: str = "colour image"
) -> tuple[str | None, str]:
    """(None, why) to restore a colour image of estimated noise `sigma` with the learned photo model, or
    ("bm3d", why): BM3D only where its mean PSNR over the validation scenes, interpolated at `sigma` on
    the table's estimated-noise axis (bench photo-pick), is more than SPEED_MARGIN dB above the learned
    model's. Near the crossing the two are level on the mean and either wins a scene by a few tenths, so
    the noise estimate cannot tell them apart there, and the faster method is taken. With no table for
    this model (a file changed since it was measured), BM3D, the measured safe choice."""
    if not table:
        return "bm3d", f"{what}; {name} has no measured comparison with BM3D (--model {name} forces it)"
    order = np.argsort(table["estimated_noise"])  # the axis, increasing (np.interp holds the ends beyond it)
    axis = np.asarray(table["estimated_noise"])[order]
    model_db = float(np.interp(sigma, axis, np.asarray(table["model_psnr"])[order]))
    bm3d_db = float(np.interp(sigma, axis, np.asarray(table["bm3d_psnr"])[order]))
    where = f"{what}, estimated noise {sigma:.3f}: on the validation scenes at that noise"
    figures = f"{model_db:.2f} against {bm3d_db:.2f} dB"
    if model_db > bm3d_db:
        return None, f"{where} {name} is ahead of blind BM3D ({figures}; --method bm3d forces BM3D)"
    if model_db > bm3d_db - SPEED_MARGIN:
        return (
            None,
            f"{where} {name} is within {SPEED_MARGIN} dB of blind BM3D ({figures}) and far faster (--method bm3d forces BM3D)",
        )
    return (
        "bm3d",
        f"{where} blind BM3D is ahead of {name} ({bm3d_db:.2f} against {model_db:.2f} dB; --model {name} forces the learned model)",
    )


def fast_precision(table: dict | None, model) -> str | None:
    """bf16 where `table` (bench camera) measured the model under bf16 autocast within BF16_TOLERANCE dB
    of fp32 at every level and the model's device computes bf16 natively (a GPU, a CPU with AMX or
    AVX-512 BF16); else None, fp32."""
    if not table or "bf16_psnr" not in table:
        return None
    loss = max(m - b for m, b in zip(table["model_psnr"], table["bf16_psnr"]))
    device = model.device
    native = device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())
    return "bf16" if native and loss <= BF16_TOLERANCE else None


def pick_table(model_path, name: str = PICK_TABLE) -> dict | None:
    """A bundled pick table (PICK_TABLE, or CAMERA_TABLE), if it was measured on exactly this model file
    (same SHA-256)."""
    import hashlib
    from pathlib import Path

    from lmppm_cli.files.weights import bundled_dir

    path = bundled_dir() / name
    try:
        table = json.loads(path.read_text())
        return table if table.get("sha256") == hashlib.sha256(Path(model_path).read_bytes()).hexdigest() else None
    except (OSError, ValueError, AttributeError):
        return None


def choose(
    x: torch.Tensor,
    models: dict,
    training: dict[str, dict] | None = None,
    photo_table: dict | None = None,
    camera: CameraPick | None = None,
) -> Choice:
    """The model for image x (C, H, W) among `models` {name: model} (DOMAIN_MODELS, GENERAL among them).

    A colour JPEG (`camera.jpeg`: what cameras write) goes to CAMERA where it beats blind BM3D on a
    camera's photos at the image's noise (`camera.table`, bench camera), else to BM3D. Other colour
    images go to the colour model unless blind BM3D is ahead of it by more than SPEED_MARGIN at their
    noise (photo_method, by `photo_table`), else to BM3D. A gray image of about a model's input size (NATIVE_RATIO) goes to
    the model whose size is nearest; any other image to GENERAL, in tiles."""
    training = training or {}
    if is_colour(x):
        colour = [n for n, m in models.items() if m.config.autoencoder.channels == 3]
        name = GENERAL if GENERAL in colour else colour[0]
        precision = None
        if camera is not None and camera.jpeg and CAMERA in models:
            name = CAMERA
            method, reason = photo_method(estimate_noise(x), camera.table, name, "colour JPEG, as cameras write photos")
            if method is None and (precision := fast_precision(camera.table, models[name])):
                reason += f"; in bf16, within {BF16_TOLERANCE} dB of fp32 there"
        else:
            method, reason = photo_method(estimate_noise(x), photo_table, name)
        if method is not None and min(x.shape[-2:]) < BM3D_MIN_SIDE:
            reason += f"; but {x.shape[-1]}x{x.shape[-2]} is too narrow for BM3D's blocks, so {name} restores it"
            method = None
        if method is not None and importlib.util.find_spec(method) is not None:
            return Choice(method, reason, method=method)
        if method is not None:
            reason += f"; but {method} is not installed (pip install 'lmppm[classical]'), so {name} restores it"
        return Choice(name, reason, warnings(x, models[name], training.get(name, {})), precision=precision)
    else:
        native = {n: size_ratio(x, m) for n, m in models.items() if size_ratio(x, m) <= NATIVE_RATIO}
        if native:
            name = min(native, key=lambda n: native[n])
            ae = models[name].config.autoencoder
            reason = f"gray {x.shape[-1]}x{x.shape[-2]} image, nearest to the model's {ae.width}x{ae.height} input"
        else:
            name, reason = GENERAL, f"{x.shape[-1]}x{x.shape[-2]} is no bundled model's size; restored in tiles"
    return Choice(name, reason, warnings(x, models[name], training.get(name, {})))


def warnings(x: torch.Tensor, model, training: dict) -> list[str]:
    """What makes a result doubtful: noise beyond the model's training, a colour image for a gray model."""
    found = []
    top, sigma = trained_noise(training), estimate_noise(x)
    if top is not None and sigma > NOISE_MARGIN * max(top, 1e-3):
        found.append(
            f"its noise (estimated sigma {sigma:.2f}) is far beyond the model's training noise (up to {top:.2f}); the image may be noise or far from the model's data"
        )
    if is_colour(x) and model.config.autoencoder.channels == 1:
        found.append("it is a colour image and the model is gray: colour is lost")
    return found


def training_summary(metadata: dict[str, str]) -> dict:
    """The training summary a model file carries (empty for files written without one, or with one that
    is not a JSON object: it is advice, never a reason to fail)."""
    try:
        summary = json.loads(metadata.get("lmppm.training", "{}"))
    except json.JSONDecodeError:
        return {}
    return summary if isinstance(summary, dict) else {}
