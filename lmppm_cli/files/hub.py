"""`lmppm export`: a model as a folder ready for the Hugging Face Hub — `model.safetensors` (its
metadata gains the headline figure), `config.json` and a model card `README.md` whose YAML header holds
the Hub's metadata. Upload it with huggingface_hub (`HfApi().upload_folder`, or
`huggingface-cli upload OWNER/NAME DIR`); `lmppm restore --model OWNER/NAME` then loads it, as it
loads the folder itself."""

from __future__ import annotations

import json
from pathlib import Path

from lmppm_cli.core.config import ModelConfig
from lmppm_cli.core.errors import LmppmError
from lmppm_cli.files.atomic import write_text
from lmppm_cli.files.catalog import HEADLINE_KEY
from lmppm_cli.files.domain import training_summary
from lmppm_cli.files.weights import CONFIG_KEY, HUB_FILENAME, load_model, read_metadata, resolve_model, save_model

FILES = (HUB_FILENAME, "config.json", "README.md")


def export_model(
    source: str,
    out_dir: str | Path,
    *,
    name: str | None = None,
    license: str = "mit",
    bench: str | None = None,
    half: bool = False,
) -> list[Path]:
    """Write the three FILES for `source` (a run folder, a model file or any model reference) into
    `out_dir`, refusing to overwrite any. `bench`: a `lmppm bench` results.json for the card's table;
    `half`: the weights as float16 (save_model)."""
    out = Path(out_dir)
    taken = [f for f in FILES if (out / f).exists()]
    if taken:
        raise LmppmError(f"{out / taken[0]} already exists; export into a new or empty folder.")
    path = resolve_model(source)
    meta = read_metadata(path)
    if CONFIG_KEY not in meta:
        raise LmppmError(f"{path} is not an lmppm model.")
    config, training = ModelConfig.from_json(meta[CONFIG_KEY]), training_summary(meta)
    name = name or (path.parent.name if path.name == HUB_FILENAME else path.stem)
    table, headline = bench_table(bench) if bench else ("", meta.get(HEADLINE_KEY, ""))
    extra = {k: v for k, v in meta.items() if k.startswith("lmppm.") and k not in (CONFIG_KEY, "lmppm.format")}
    save_model(load_model(path), out / HUB_FILENAME, extra | ({HEADLINE_KEY: headline} if headline else {}), half=half)
    write_text(
        out / "config.json",
        json.dumps({"library_name": "lmppm", "lmppm": json.loads(config.to_json())}, indent=2) + "\n",
    )
    write_text(out / "README.md", model_card(name, config, training, license, table, headline))
    return [out / f for f in FILES]


def bench_table(results_json: str) -> tuple[str, str]:
    """A markdown table of a bench run's PSNR / SSIM rows, and its first LMPPM cell as the headline."""
    try:
        cells = json.loads(Path(results_json).read_text())["cells"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LmppmError(f"--bench {results_json} is not a results.json written by `lmppm bench` ({exc}).") from exc
    lines = ["| degradation | method | PSNR | SSIM |", "|---|---|---|---|"]
    headline = ""
    for c in cells:
        if c.get("psnr") is None:
            continue
        lines.append(f"| {c['degradation']} | {c['method']} | {c['psnr']:.2f} | {c['ssim']:.3f} |")
        if not headline and c["method"] == "LMPPM":
            headline = f"{c['degradation']}: {c['psnr']:.2f} dB / SSIM {c['ssim']:.3f}"
    return "\n".join(lines), headline


def model_card(name: str, config: ModelConfig, training: dict, license: str, table: str, headline: str) -> str:
    ae, flow = config.autoencoder, config.flow
    dataset = config.dataset or training.get("dataset", "")
    tcfg = training.get("train_config", {})
    noise = tcfg.get("sigma_range") or tcfg.get("sigma_d")
    front = [
        "---",
        "library_name: lmppm",
        f"license: {license}",
        "pipeline_tag: image-to-image",
        "tags:",
        "- image-restoration",
        "- denoising",
        "- lmppm",
        "- safetensors",
    ]
    front += (["datasets:", f"- {dataset}"] if dataset else []) + ["---", ""]
    body = [
        f"# {name}",
        "",
        f"An `{config.method}` model made with `lmppm train`: a {ae.arch} autoencoder on {ae.channels}-channel "
        f"{ae.width}x{ae.height} images, latent size {ae.latent_dim}, trained on `{dataset or 'unknown data'}`"
        + (
            f" ({training['train_images']} images, {training.get('epochs_run')} epochs)"
            if "train_images" in training
            else ""
        )
        + (f", Gaussian noise {noise}" if noise is not None else "")
        + ".",
        "",
        f"Flow defaults (Alg. 4): alpha {flow.alpha:g}, beta {flow.beta:g}, {flow.steps} steps, sigma_ker {flow.sigma_ker:.4g}.",
        "",
        "## Use",
        "",
        "```bash",
        "pip install lmppm",
        f"lmppm restore noisy.png -o restored.png --model OWNER/{name}",
        "```",
        "",
        "```python",
        "import lmppm_cli",
        f'restored = lmppm_cli.load("OWNER/{name}").restore(image)',
        "```",
        "",
    ]
    if table or headline:
        body += ["## Measured", "", table or headline, ""]
    return "\n".join(front + body)
