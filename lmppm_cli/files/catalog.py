"""`lmppm models`: every model a user can pick — bundled, in the Hugging Face Hub cache, or local files
and Hub-style folders — with what each is for and one measured figure."""

from __future__ import annotations

import json
from pathlib import Path

from lmppm_cli.core.config import ModelConfig
from lmppm_cli.core.errors import LmppmError
from lmppm_cli.files.domain import DOMAIN_MODELS, training_summary
from lmppm_cli.files.weights import CONFIG_KEY, HUB_FILENAME, bundled_dir, read_metadata
from lmppm_cli.methods.registry import cannot_generate

HEADLINE_KEY = "lmppm.headline"
COLUMNS = (
    "name",
    "source",
    "method",
    "auto-pick for",
    "arch",
    "input CxHxW",
    "training data",
    "headline",
    "MB",
    "generates",
)


def entry(path: Path, name: str, source: str, headlines: dict | None = None) -> dict | None:
    """One row for a model file (None when the file is not an lmppm model)."""
    try:
        meta = read_metadata(path)
    except LmppmError:
        return None
    if CONFIG_KEY not in meta:
        return None
    try:
        config = ModelConfig.from_json(meta[CONFIG_KEY])
    except LmppmError as exc:  # listed, not fatal: the listing is where a user looks for what is wrong
        return dict.fromkeys(COLUMNS, "") | {
            "name": name,
            "source": source,
            "method": "unreadable",
            "headline": str(exc),
        }
    ae, training = config.autoencoder, training_summary(meta)
    data = config.dataset or str(training.get("dataset") or "?")
    if "train_images" in training:
        data += f" ({training['train_images']} images)"
    return {
        "name": name,
        "source": source,
        "method": config.method,
        "auto-pick for": DOMAIN_MODELS.get(name, "").split(",")[0] if source == "bundled" else "",
        "arch": ae.arch,
        "input CxHxW": f"{ae.channels}x{ae.height}x{ae.width}",
        "training data": data,
        "headline": meta.get(HEADLINE_KEY) or (headlines or {}).get(name, ""),
        "MB": round(path.stat().st_size / 2**20, 2),
        "generates": "no" if cannot_generate(config) else "yes",
    }


def bundled_entries() -> list[dict]:
    folder = bundled_dir()
    headlines_file = folder / "headlines.json"
    headlines = json.loads(headlines_file.read_text()) if headlines_file.is_file() else {}
    rows = [entry(p, p.stem, "bundled", headlines) for p in sorted(folder.glob("*.safetensors"))]
    return [r for r in rows if r]


def hub_entries(cache_dir: str | None = None) -> list[dict]:
    """lmppm models among the Hub cache's model repos (newest revision holding model.safetensors)."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        cache = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return []
    rows = []
    for repo in sorted(cache.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        revisions = sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True)
        files = [f.file_path for rev in revisions for f in rev.files if f.file_name == HUB_FILENAME]
        row = entry(files[0], repo.repo_id, "hub cache") if files else None
        rows += [row] if row else []
    return rows


def local_entries(paths: list[str]) -> list[dict]:
    """Model files among `paths` (files, or folders searched recursively)."""
    rows = []
    for item in paths:
        path = Path(item)
        if not path.exists():
            raise LmppmError(f"{item} does not exist.")
        files = [path] if path.is_file() else sorted(path.rglob("*.safetensors"))
        for f in files:
            name = f.parent.name if f.name == HUB_FILENAME else f.stem
            row = entry(f, name, str(f))
            rows += [row] if row else []
    return rows
