"""The strongest LDM on the shared DAE (issue 32, item 1), searched on the 500 validation digits.

Each variant is an LDM (methods/ldm.py: a DDPM on `mnist-dae`'s latents, standardised to unit variance
per dimension as latent diffusion scales its latents) trained by `lmppm train`'s own code, one choice
changed at a time against the shipped recipe: the noise predictor's widths, an EMA of its weights, a
cosine schedule over a longer budget. Each is scored on the validation digits (never the test digits):
restoration at Table 6's noise and downsampling rows, from SDEdit's start step (the model's own) and from
every start step of ldm.START_STEPS (the best for each row by `ldm.best_start`), the classifier-feature FID
and accuracy; and generation by the full
chain (500 samples: FID against the validation digits, the classifier's mean confidence).

    uv run python examples/ldm_search.py --variants shipped,wide-512,ema,cosine-long [--threads 1]
    uv run python examples/ldm_search.py --table                     # the table so far
"""

import argparse
import json
import time
from pathlib import Path

import torch

from lmppm_cli.core.config import DiffusionConfig
from lmppm_cli.core.degradations import strength
from lmppm_cli.core.metrics import classifier_outputs, frechet_distance
from lmppm_cli.core.train_config import TrainConfig
from lmppm_cli.experiments.bench.runner import at_strength
from lmppm_cli.files.data import mnist_5k
from lmppm_cli.files.weights import load_model, resolve_model
from lmppm_cli.methods import ldm
from lmppm_cli.training import model_config, train

BASE_TRAIN = dict(epochs=2000, patience=100, seed=0)  # the shipped mnist-ldm's recipe (weights/README.md)
VARIANTS = {  # name: (noise predictor's widths, training changes); "shipped" is the bundled file itself
    "shipped": None,
    "retrained": ((256, 256, 256), {}),
    "wide-512": ((512, 512, 512), {}),
    "deep-4x512": ((512, 512, 512, 512), {}),
    "ema": ((256, 256, 256), {"ema": 0.999}),
    "cosine-long": ((256, 256, 256), {"lr_schedule": "cosine", "epochs": 1500, "patience": 1500, "ema": 0.999}),
    "wide-cosine-long": ((512, 512, 512), {"lr_schedule": "cosine", "epochs": 1500, "patience": 1500, "ema": 0.999}),
}
ROWS = [(kind, sev) for kind in ("noise", "downsample") for sev in ("mild", "severe")]
QUICK = dict(epochs=2, patience=2)


def trained(name: str, args, dae) -> tuple[object, float]:
    """The variant's LDM, trained into OUT/NAME (or the bundled file for `shipped`), and its seconds."""
    if VARIANTS[name] is None:
        return load_model(resolve_model("mnist-ldm"), torch.device("cpu")), 0.0
    hidden, change = VARIANTS[name]
    config = model_config("ldm", dae.config.autoencoder, DiffusionConfig(hidden=hidden))
    tcfg = TrainConfig(**{**BASE_TRAIN, **change, **(QUICK if args.quick else {})})
    run = Path(args.out) / name
    start = time.perf_counter()
    train(config, mnist_5k(), tcfg, run, torch.device("cpu"), base=dae)
    return load_model(run / "model.safetensors", torch.device("cpu")), time.perf_counter() - start


def evaluate(model, args) -> dict:
    """Per row: the scores from each start step (SDEdit's included); and the full chain's samples."""
    val = mnist_5k().val
    clean, labels = val.images[: args.limit], val.labels[: args.limit]
    classifier = load_model(resolve_model("mnist-classifier"), torch.device("cpu"))
    clean_feats = classifier_outputs(classifier, clean)[0]
    sdedit = model.config.diffusion.start_step
    out = {"sdedit_start": sdedit, "rows": {}}
    for kind, severity in ROWS:
        value = strength(kind, severity, "digits")
        degraded = at_strength(kind, value)(clean, torch.Generator().manual_seed(args.seed))
        steps = {sdedit, *ldm.START_STEPS}
        out["rows"][f"{kind} {value:g}"] = ldm.start_scores(
            model, degraded, clean, labels, classifier, args.seed + 1, steps
        )
    samples = ldm.generate(model, list(range(args.seed, args.seed + len(clean))))
    feats, _ = classifier_outputs(classifier, samples)
    logits = classifier.head(feats.to(classifier.device))
    out["generation"] = {
        "fid": round(frechet_distance(clean_feats, feats), 2),
        "confidence": round(logits.softmax(1).max(1).values.mean().item(), 4),
    }
    return out


def table(out: Path) -> None:
    results = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}
    if not results:
        return
    rows = list(next(iter(results.values()))["rows"])
    print(
        "| variant | train s | "
        + " | ".join(f"{r}: SDEdit / best start" for r in rows)
        + " | generation FID / confidence |"
    )
    print("|---" * (len(rows) + 3) + "|")
    dae = next(iter(results.values()))["rows"]  # step 0: the DAE within noise (ldm.best_start)
    print(
        "| DAE (the LDM from step 0) | | "
        + " | ".join(f"{dae[r]['0']['fid']:.1f} ({dae[r]['0']['acc']:.3f})" for r in rows)
        + " | |"
    )
    for name, res in results.items():
        cells = []
        for row in rows:
            by_start = res["rows"][row]
            sd = by_start[str(res["sdedit_start"])]
            step = ldm.best_start(by_start)
            best = by_start[str(step)]
            cells.append(f"{sd['fid']:.1f} ({sd['acc']:.3f}) / {best['fid']:.1f} ({best['acc']:.3f}) at {step}")
        gen = res["generation"]
        print(
            f"| {name} | {res['train_seconds']:.0f} | "
            + " | ".join(cells)
            + f" | {gen['fid']:.1f} / {gen['confidence']:.3f} |"
        )


parser = argparse.ArgumentParser()
parser.add_argument("--variants", default="shipped")
parser.add_argument("--out", default="runs/ldm-search")
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--seed", type=int, default=100)
parser.add_argument("--limit", type=int, default=500, help="validation digits scored")
parser.add_argument("--quick", action="store_true", help="2 epochs: a check that the script runs")
parser.add_argument("--table", action="store_true")
args = parser.parse_args()
torch.set_num_threads(args.threads)
out = Path(args.out)
if not args.table:
    dae = load_model(resolve_model("mnist-dae"), torch.device("cpu"))
    for name in args.variants.split(","):
        model, seconds = trained(name, args, dae)
        result = {"train_seconds": round(seconds, 1), **evaluate(model, args)}
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.json").write_text(json.dumps(result, indent=1))
        print(name, "done", flush=True)
table(out)
