"""Model files: one `.safetensors` file per model (F, G, D_S, bank S; the config in the header metadata).

A model reference resolves as: an existing file path -> a folder holding `model.safetensors` (a Hub-style
repo on disk) -> the name of a bundled model in `weights/` -> a Hugging Face Hub repo id (`owner/name`,
file `model.safetensors`, through the Hub cache).
Nothing is ever unpickled.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from lmppm_cli.core.config import ModelConfig
from lmppm_cli.core.errors import ModelError
from lmppm_cli.files.atomic import atomic_path
from lmppm_cli.methods import build_model

FORMAT_KEY = "lmppm.format"
CONFIG_KEY = "lmppm.config"
HUB_FILENAME = "model.safetensors"
HALF_MAX = 60000.0  # below float16's largest value, 65504
DEFAULT_MODEL = "mnist"
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def save_model(
    model: torch.nn.Module, path: str | Path, extra: dict[str, str] | None = None, half: bool = False
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


def bundled_dir() -> Path:
    """`weights/` inside an installed wheel, or the repository's `weights/` in an editable install."""
    packaged = resources.files("lmppm_cli") / "weights"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "weights"


def bundled_models() -> list[str]:
    return sorted(p.stem for p in bundled_dir().glob("*.safetensors"))


def resolve_model(
    ref: str, *, revision: str | None = None, offline: bool = False, cache_dir: str | None = None
) -> Path:
    """Turn a model reference into a local file path (see the module docstring for the order).
    A `revision` is for Hub models only: with a local file or a bundled name it is refused."""
    path = Path(ref).expanduser()
    local = (
        path if path.is_file() else path / HUB_FILENAME if (path / HUB_FILENAME).is_file() else None
    )  # a Hub-style folder too
    if local is None and (path.suffix == ".safetensors" or path.exists()):
        raise ModelError(f"no model file at {ref}.")
    bundled = bundled_dir() / f"{ref}.safetensors"
    local = local or (bundled if bundled.is_file() else None)
    if local is not None:
        if revision is not None:
            raise ModelError(
                f"--revision {revision} applies to Hugging Face Hub models, and {ref} is a local or bundled model."
            )
        return local
    if _REPO_ID.match(ref):
        return _from_hub(ref, revision=revision, offline=offline, cache_dir=cache_dir)
    names = ", ".join(bundled_models()) or "none"
    raise ModelError(f"unknown model {ref!r}: not a file, not a bundled model ({names}), not a Hub repo id.")


def _from_hub(repo_id: str, *, revision, offline, cache_dir) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}" + (f" at revision {revision}" if revision else "")
    try:
        return Path(
            hf_hub_download(repo_id, HUB_FILENAME, revision=revision, cache_dir=cache_dir, local_files_only=offline)
        )
    except LocalEntryNotFoundError as exc:
        raise ModelError(
            f"the Hub model {where} is not in the local cache and the Hub cannot be reached "
            "(offline); download it once while online or pass a local file."
        ) from exc
    except RevisionNotFoundError as exc:
        raise ModelError(f"the Hub repo {repo_id} has no revision {revision}.") from exc
    except RepositoryNotFoundError as exc:
        raise ModelError(f"there is no Hub repo {repo_id} (or it is private).") from exc
    except EntryNotFoundError as exc:
        raise ModelError(f"the Hub repo {where} has no {HUB_FILENAME}.") from exc
    except (HfHubHTTPError, OSError) as exc:
        raise ModelError(f"could not download {where} from the Hub ({exc}).") from exc
