"""Suite `generation` (Fig. 9): digits made from pure noise by the default generator (the
LMPPM flow from a latent Gaussian, restoration.generate) beside the LDM's full reverse chain (2000
steps of Alg. 3) and the DAE's kernel-only flow, scored by the bundled digit classifier.

Per method, `draws` seed sets of `n` samples each (sample i of set k has its own seed, so every method
sees the same seeds): FID of the classifier's features against the 1,000 test digits, the classifier's
mean confidence (its top softmax probability), the class balance (total-variation distance of the
predicted classes from uniform: 0 is balanced), the consensus (the share of samples whose class the
classifier and a second, independent reader agree on: the nearest of the 3,500 training digits in
pixels; a legible digit is one both read alike) and seconds per sample; and an 8x8 grid of each
method's first 64 samples (grid_*.png). The row "validation digits"
scores `n` real held-out digits the same way: the floor a perfect generator would reach at this n.
Intervals: bootstrap over samples and seed sets (intervals.py); differences paired with LMPPM.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.core.metrics import classifier_outputs
from lmppm_cli.core.restoration import generate, sample_seeds
from lmppm_cli.experiments.bench.intervals import (
    FID_RESAMPLES,
    RESAMPLES,
    Interval,
    Resamples,
    _percentiles,
    fid_interval,
    mean_interval,
)
from lmppm_cli.experiments.bench.runner import slug
from lmppm_cli.files.atomic import write_text
from lmppm_cli.files.data import mnist_5k
from lmppm_cli.files.devices import pick_device
from lmppm_cli.files.images import grid, save_image, tensor_to_image
from lmppm_cli.files.weights import load_model, resolve_model
from lmppm_cli.methods import ldm

SAMPLES, DRAWS = 500, 3
MODELS = {"lmppm": "mnist", "dae": "mnist-dae", "ldm": "mnist-ldm", "classifier": "mnist-classifier"}
REFERENCE = "LMPPM flow (mnist, 16 steps)"


def run_generation(
    out_dir,
    *,
    seed: int,
    limit: int | None = None,
    on_stage=lambda s: None,
    draws: int = DRAWS,
    device: str = "auto",
    models: dict | None = None,
) -> dict:
    """Write results.json and results.md into out_dir; returns {method: {metric: mean}}. `models`: the
    lmppm, dae, ldm and classifier models by kind (--model, --dae, --ldm, --classifier; default MODELS)."""
    unknown = set(models or {}) - set(MODELS)
    if unknown:
        raise LmppmError(f"the generation suite takes --model, --dae, --ldm and --classifier, not --{min(unknown)}.")
    dev = pick_device(device)
    nets = {k: load_model(resolve_model(v), dev) for k, v in {**MODELS, **(models or {})}.items()}
    n = limit or SAMPLES
    data = mnist_5k()
    real = classifier_outputs(nets["classifier"], data.held_out().images)[0]
    methods = {
        REFERENCE: lambda seeds: generate(nets["lmppm"], seeds).images,
        "LDM full chain (2000 steps)": lambda seeds: ldm.generate(nets["ldm"], seeds),
        "DAE kernel flow (mnist-dae, 16 steps)": lambda seeds: generate(nets["dae"], seeds).images,
    }
    scored = {}
    assert data.train.labels is not None  # mnist-5k's digits carry their classes
    reader = NearestDigit(data.train.images, data.train.labels)
    for name, make in methods.items():
        on_stage(name)
        seed_sets = [sample_seeds(seed + k, 0, n) for k in range(draws)]
        scored[name] = _score(nets["classifier"], reader, make, seed_sets, Path(out_dir) / f"grid_{slug(name)}.png")
    val = data.val.images
    scored["validation digits (real)"] = _score(
        nets["classifier"],
        reader,
        lambda idx: val[idx],
        [torch.randperm(len(val), generator=torch.Generator().manual_seed(seed + k))[:n] for k in range(draws)],
    )
    res = Resamples.of(draws, n, RESAMPLES, seed)
    rows = {name: _row(real, s, res, scored[REFERENCE]) for name, s in scored.items()}
    write_text(
        Path(out_dir) / "results.json",
        json.dumps({"suite": "generation", "seed": seed, "samples": n, "draws": draws, "rows": rows}, indent=2),
    )
    write_text(Path(out_dir) / "results.md", markdown(rows, n, draws))
    return {
        name: {k: v["mean"] for k, v in row.items() if isinstance(v, dict) and "mean" in v}
        for name, row in rows.items()
    }


class NearestDigit:
    """The second reader of the consensus: the label of the nearest training digit in pixels (1-NN),
    which shares nothing with the classifier but the training digits."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.flat, self.labels = images.flatten(1).float(), labels

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        distances = torch.cdist(images.flatten(1).float().cpu(), self.flat)
        return self.labels[distances.argmin(1)]


def _score(classifier, reader, make, seed_sets, grid_path: Path | None = None) -> dict:
    feats: list[torch.Tensor] = []
    conf: list[torch.Tensor] = []
    pred: list[torch.Tensor] = []
    agree: list[torch.Tensor] = []
    seconds = 0.0
    for seeds in seed_sets:
        start = time.perf_counter()
        images = make(seeds).clamp(0.0, 1.0)
        seconds += time.perf_counter() - start
        if grid_path is not None and not feats:  # the first set's first 64 samples, as `lmppm generate` draws them
            save_image(tensor_to_image(grid(images[:64].cpu(), 8)), grid_path)
        f, p = classifier_outputs(classifier, images)
        with torch.no_grad():
            conf.append(classifier.head(f.to(classifier.device)).softmax(1).amax(1).cpu())
        feats.append(f)
        pred.append(p)
        agree.append((reader(images) == p.cpu()).float())
    return {
        "features": torch.stack(feats),
        "confidence": torch.stack(conf),
        "consensus": torch.stack(agree),
        "predicted": torch.stack(pred),
        "seconds_per_sample": seconds / sum(len(s) for s in seed_sets),
    }


def imbalance(predicted: torch.Tensor, classes: int = 10) -> float:
    """Total-variation distance of the predicted-class histogram from uniform (0: balanced, 0.9: one class)."""
    share = torch.bincount(predicted, minlength=classes).double() / len(predicted)
    return 0.5 * (share - 1.0 / classes).abs().sum().item()


def imbalance_interval(predicted: torch.Tensor, res: Resamples, minus: torch.Tensor | None = None) -> Interval:
    """Mean imbalance over the seed sets, with its bootstrap interval (samples and sets resampled);
    with `minus`, the difference to another method's on the same resamples."""

    def stat(draws, samples):
        value = sum(imbalance(predicted[d][samples]) for d in draws.tolist()) / len(draws)
        return value - (
            0.0 if minus is None else sum(imbalance(minus[d][samples]) for d in draws.tolist()) / len(draws)
        )

    point = stat(torch.arange(predicted.shape[0]), torch.arange(predicted.shape[1]))
    rs = res.head(FID_RESAMPLES)
    return _percentiles(point, torch.tensor([stat(d, i) for d, i in zip(rs.draws, rs.images)]), centre=True)


def _row(real, s: dict, res: Resamples, ref: dict) -> dict:
    own = {
        "fid": fid_interval(real, s["features"], res, paired=False),
        "confidence": mean_interval(s["confidence"], res),
        "consensus": mean_interval(s["consensus"], res),
        "imbalance": imbalance_interval(s["predicted"], res),
    }
    row = {k: vars(v) for k, v in own.items()} | {"seconds_per_sample": s["seconds_per_sample"]}
    if s is not ref:  # LMPPM minus this row (FID, imbalance: this row minus LMPPM), so > 0: LMPPM ahead
        versus = {
            "fid": fid_interval(real, s["features"], res, minus=ref["features"], paired=False),
            "confidence": mean_interval(ref["confidence"] - s["confidence"], res),
            "consensus": mean_interval(ref["consensus"] - s["consensus"], res),
            "imbalance": imbalance_interval(s["predicted"], res, minus=ref["predicted"]),
        }
        row["versus"] = {k: vars(v) | {"verdict": v.verdict} for k, v in versus.items()}
    return row


def markdown(rows: dict, n: int, draws: int) -> str:
    lines = [
        f"# lmppm bench: generation\n\n{draws} seed sets of {n} samples per method; 95% bootstrap intervals (samples and sets resampled). "
        "FID: the classifier's features against the 1,000 test digits. Consensus: the share of samples whose class the classifier and the "
        "nearest training digit (in pixels) agree on. Imbalance: total-variation distance of the predicted classes from uniform. "
        "Grids: grid_*.png, each method's first 64 samples.\n",
        "| method | FID | confidence | consensus | imbalance | s / sample | LMPPM vs row: FID | confidence | consensus | imbalance |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        metrics = (("fid", 2), ("confidence", 3), ("consensus", 3), ("imbalance", 3))
        cells = [Interval(**r[k]).text(d) for k, d in metrics]
        vs = r.get("versus", {})
        cells += [f"{r['seconds_per_sample']:.4f}"] + [
            f"{Interval(**{k: vs[m][k] for k in ('mean', 'low', 'high')}).text(d, signed=True)} {vs[m]['verdict']}"
            if m in vs
            else ""
            for m, d in metrics
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return (
        "\n".join(lines)
        + "\n\nLMPPM vs row: positive means LMPPM is ahead (lower FID and imbalance, higher confidence and consensus); win / loss only when the interval excludes 0.\n"
    )
