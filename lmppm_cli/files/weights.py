"""Model files: one `.safetensors` file per model (F, G, D_S, bank S; the config in the header metadata).
A model reference resolves to a file as files/references.py says. Nothing is ever unpickled.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from lmppm_cli.core.config import ModelConfig
from lmppm_cli.core.errors import ModelError
from lmppm_cli.core.models import LMPPM, DigitClassifier, LatentDiffusion
from lmppm_cli.files.atomic import atomic_path
from lmppm_cli.files.references import HUB_FILENAME, bundled_dir, bundled_models, resolve_model  # noqa: F401
from lmppm_cli.methods import build_model

FORMAT_KEY = "lmppm.format"
CONFIG_KEY = "lmppm.config"
HALF_MAX = 60000.0  # below float16's largest value, 65504
DEFAULT_MODEL = "mnist"


def save_model(
    model: LMPPM | LatentDiffusion | DigitClassifier,
    path: str | Path,
    extra: dict[str, str] | None = None,
    half: bool = False,
) -> Path:
    """Write the whole model atomically; `extra` adds string metadata (e.g. training scores). `half`
    stores floating-point tensors as float16 where they fit (half the file; loading turns them back into float32)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if half:  # a tensor beyond float16's range (e.g. a batch-norm variance) stays float32
        fits = lambda v: v.is_floating_point() and bool(v.abs().max() < HALF_MAX) if v.numel() else False  # noqa: E731
        tensors = {k: v.half() if fits(v) else v for k, v in tensors.items()}
    metadata = {FORMAT_KEY: "1", CONFIG_KEY: model.config.to_json(), **(extra or {})}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return Path(path)


def read_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors and the metadata of a safetensors file, or one clear error."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"{path} is not a readable safetensors model file ({exc}).") from exc


def load_model(path: str | Path, device: torch.device | str = "cpu", method: str | None = None):
    """Rebuild the model from its saved config, load its weights with strict=True, in eval mode.
    With `method`, a file holding another kind of model is refused in one sentence."""
    tensors, meta = read_tensors(path)
    if CONFIG_KEY not in meta:
        raise ModelError(f"{path} is a safetensors file but not an lmppm model (no {CONFIG_KEY} metadata).")
    config = ModelConfig.from_json(meta[CONFIG_KEY])
    broken = next((k for k, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()), None)
    if broken is not None:
        raise ModelError(f"{path} holds NaN or infinite weights (in {broken}); it cannot restore or generate anything.")
    if method is not None and config.method != method:
        raise ModelError(f"{path} holds a {config.method} model, not a {method} model.")
    bank = tensors.get("bank")
    model = build_model(config, bank_size=0 if bank is None else bank.shape[0])
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise ModelError(f"{path} does not match the architecture it declares: {first}") from exc
    return model.to(device).eval()


def read_metadata(path: str | Path) -> dict[str, str]:
    """The header metadata of a safetensors file, without reading its tensors."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"{path} is not a readable safetensors model file ({exc}).") from exc


def model_metadata(path: str | Path) -> dict[str, str]:
    return read_metadata(path)
