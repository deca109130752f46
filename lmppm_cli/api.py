"""The Python API, for notebooks and programs that should not shell out to the CLI.

    import lmppm_cli
    model = lmppm_cli.load("photos")          # a bundled name, a file, a Hub-style folder or a Hub repo id
    clean = model.restore(image)              # a PIL image, a numpy array or a tensor; the same type back
    model.scores(image)                       # learned distance D, residual and noise level (domain.Scores)
    model, choice = lmppm_cli.pick(image)     # the bundled model for the image, and why
    lmppm_cli.train(lmppm_cli.TrainRequest(lmppm_cli.DataSource("mnist-5k"), lmppm_cli.RunOptions("run")))

Images of any size: U-Net models restore large images in tiles, conv models resize to their input and
back, exactly as `lmppm restore` does. Arrays are (H, W) or (H, W, C), uint8 or floats in [0, 1];
tensors (C, H, W) or (B, C, H, W) in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from lmppm_cli import methods, service
from lmppm_cli.core.config import FlowOverride
from lmppm_cli.core.errors import LmppmError
from lmppm_cli.core.restoration import generate, sample_seeds
from lmppm_cli.core.train import Progress
from lmppm_cli.core.train_config import DataSource, RunOptions, TrainRequest  # noqa: F401 - the API's
from lmppm_cli.files import domain
from lmppm_cli.files.devices import pick_device
from lmppm_cli.files.images import decode, encode
from lmppm_cli.files.weights import load_model, model_metadata, resolve_model
from lmppm_cli.methods.ldm import LdmOptions
from lmppm_cli.names import AUTO


class Model:
    """A loaded model file with image-level entry points."""

    def __init__(
        self, net, name: str, training: dict | None = None, method: str | None = None, precision: str | None = None
    ):
        self.net, self.name, self.training, self.method = net, name, training or {}, method  # method: restore's default
        self.precision = precision  # restore's under "auto": the pick's (bf16 where measured close), else fp32

    def __repr__(self) -> str:
        if self.method is not None and methods.get(self.method).model is None:
            return f"Model({self.name!r}, {self.method}: classical, needs no network)"
        ae = self.net.config.autoencoder
        return f"Model({self.name!r}, {self.method or self.net.config.method}, {ae.channels}x{ae.height}x{ae.width}, {self.net.device})"

    def restore(
        self,
        image,
        method: str | None = None,
        precision: str = "auto",
        start_step: int | None = None,
        seed: int = 0,
        batch_size: int = 64,
        tile: int | None = None,
        tile_overlap: int | None = None,
        alpha: float | None = None,
        beta: float | None = None,
        steps: int | None = None,
        tol: float | None = None,
        sigma_ker: float | None = None,
        schedule: str | None = None,
        adaptive: bool | None = None,
        top_k: int | None = None,
    ):
        """The restored image, of the input's type, size and channels: the keywords are those options of
        `lmppm restore` (same names, same defaults) that change pixels, and go through the same service."""
        flow = FlowOverride(alpha, beta, steps, tol, sigma_ker, schedule, adaptive, top_k)
        tiling = service.Tiling(tile, tile_overlap, batch_size)
        precision = self.precision if precision == AUTO and self.precision else precision
        settings = service.RestoreSettings(method or self.method, flow, LdmOptions(seed, start_step), precision, tiling)
        restoring = service.restorer(self.net, settings)
        return _convert(image, lambda x: restoring([x])[0].image)

    def scores(self, image) -> domain.Scores | list[domain.Scores]:
        """domain.scores of the image (a list for a batch tensor)."""
        xs = _tensors(image)
        found = [domain.scores(self.net, x) for x in xs]
        return found if isinstance(image, torch.Tensor) and image.ndim == 4 else found[0]

    def generate(self, n: int, seed: int = 0) -> torch.Tensor:
        """n samples from noise (Fig. 9), (n, C, H, W) in [0, 1]."""
        return generate(self.net, sample_seeds(seed, 0, n)).images.cpu()


def load(ref: str = "mnist", device: str = "auto", revision: str | None = None, offline: bool = False) -> Model:
    """A model ready to restore, score or generate: `ref` is a bundled name (`lmppm models`), a
    .safetensors file, a Hub-style folder holding model.safetensors, or a Hub repo id (`owner/name`,
    `revision` a branch, tag or commit; `offline` reads only the Hub cache). `device` is "auto" (CUDA,
    then MPS, then the CPU), "cpu", "cuda", "cuda:N" or "mps"."""
    path = resolve_model(ref, revision=revision, offline=offline)
    return Model(load_model(path, pick_device(device)), ref, domain.training_summary(model_metadata(path)))


def train(request: TrainRequest, progress: Progress | None = None, say=lambda text: None) -> dict | None:
    """One training run, whole, as `lmppm train` runs it (the CLI builds the same request from its
    options): checks, data, Eq. 20 (or the method's objective), the run folder. -> its summary (None
    on torchrun's ranks other than 0). `progress`: core.train.Progress hooks; `say`: its notes."""
    from lmppm_cli import training

    return training.run(request, progress, say)


def pick(image, device: str = "auto") -> tuple[Model, domain.Choice]:
    """The bundled domain model for one image and the choice with its reason: the pick of `lmppm
    restore` (service.DomainModels.choose). Where the choice is blind BM3D (a colour photo at a noise
    where it is measured ahead of the photo model by more than domain.SPEED_MARGIN), the model is named "bm3d" with `method` "bm3d" (it holds the photo
    model's network for `scores`), so its `restore` runs BM3D, as `lmppm restore` would."""
    bundle = service.DomainModels.load(pick_device(device))
    choice = bundle.choose(_tensors(image)[0], jpeg=isinstance(image, Image.Image) and image.format == "JPEG")
    net = domain.GENERAL if choice.method is not None else choice.name
    return Model(bundle.nets[net], choice.name, bundle.training[net], choice.method, choice.precision), choice


def _tensors(image) -> list[torch.Tensor]:
    """Any supported image -> list of (C, H, W) float tensors in [0, 1]."""
    if isinstance(image, Image.Image):
        return [decode(image)[0]]
    if isinstance(image, np.ndarray):
        return [_from_array(image)]
    if isinstance(image, torch.Tensor) and image.ndim in (3, 4):
        batch = image if image.ndim == 4 else image.unsqueeze(0)
        return [b.float().cpu() for b in batch]
    raise LmppmError(
        f"cannot restore a {type(image).__name__}: give a PIL image, a numpy array (H, W[, C]) or a tensor (C, H, W) / (B, C, H, W)."
    )


def _convert(image, fn):
    """Apply fn (C, H, W) -> (C, H, W) and return the result in the input's type."""
    if isinstance(image, Image.Image):
        x, info = decode(image)
        return encode(fn(x), info)
    if isinstance(image, np.ndarray):
        out = fn(_from_array(image)).permute(1, 2, 0).numpy()
        out = out[..., 0] if image.ndim == 2 else out
        return np.rint(out * 255).astype(np.uint8) if image.dtype == np.uint8 else out.astype(image.dtype)
    xs = _tensors(image)
    out = torch.stack([fn(x) for x in xs])
    return out if image.ndim == 4 else out[0]


def _from_array(a: np.ndarray) -> torch.Tensor:
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise LmppmError(f"an image array must be (H, W) or (H, W, 1|3|4), not {a.shape}.")
    x = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32) / (255.0 if a.dtype == np.uint8 else 1.0))
    x = x.unsqueeze(0) if x.ndim == 2 else x[..., :3].permute(2, 0, 1)
    return x.clamp(0.0, 1.0).contiguous()
