"""Model references, resolved without torch (so that a wrong name is refused before torch loads): an
existing file path -> a folder holding `model.safetensors` (a Hub-style repo on disk) -> the name of a
bundled model in `weights/` -> a Hugging Face Hub repo id (`owner/name`, file `model.safetensors`,
through the Hub cache)."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from lmppm_cli.core.errors import ModelError

HUB_FILENAME = "model.safetensors"
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


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


def check_reference(ref: str) -> None:
    """Refuse, before torch loads, a reference that is no local file, no bundled model and no Hub repo id
    (a Hub id is looked up when the model is loaded)."""
    path = Path(ref).expanduser()
    if _REPO_ID.match(ref) and not path.exists() and not (bundled_dir() / f"{ref}.safetensors").is_file():
        return
    resolve_model(ref)


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
