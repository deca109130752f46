"""Validation PSNR of a photo-crops training run against CPU hours, from its summary.json: the
validation loss of every epoch (the same draws every epoch) as PSNR: an L2 run's loss is the squared
error summed over a crop, a `--loss psnr` run's is minus the crops' mean PSNR (and its training PSNR
is drawn beside it). Writes docs/photo_training.png and prints the table.

    uv run python examples/photo_training_curve.py runs/photos-dae [--times T --start S --pauses P]
    uv run python examples/photo_training_curve.py runs/photos-dae3 runs/photos-dae4   # one run continued by the next

`--times`: lines "EPOCHS UNIX_SECONDS" sampled while the run went (for runs whose history has no
per-epoch seconds), `--start` the run's start (unix seconds), `--pauses` lines "STOP|CONT UNIX_SECONDS"
of the times the run was stopped (not counted); otherwise each record's own "seconds".
"""

import argparse
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("runs", nargs="+", help="runs in order, each continued from the one before (end to end)")
parser.add_argument("--times", default=None)
parser.add_argument("--start", type=int, default=None)
parser.add_argument("--pauses", default=None)
parser.add_argument("--out", default="docs/photo_training.png")
parser.add_argument("--title", default=None, help="what the validation was [default: from the first run's summary]")
args = parser.parse_args()


def curve(summary: dict, times: str | None) -> tuple[list[dict], list[float], list[float]]:
    """(history, hours, validation PSNR) of one run from its summary."""
    values = summary["model_config"]["autoencoder"]
    pixels = values["channels"] * values["height"] * values["width"]
    history = summary["history"]
    if times:
        first_seen, start = {}, args.start
        for line in Path(times).read_text().split("\n"):
            if line.strip():
                epochs, stamp = (int(v) for v in line.split())
                start = stamp if start is None else start
                first_seen.setdefault(epochs, stamp)
        marks = (
            [line.split() for line in Path(args.pauses).read_text().split("\n") if line.strip()] if args.pauses else []
        )
        stops = [(int(a[1]), int(b[1])) for a, b in zip(marks[::2], marks[1::2])]
        paused = lambda t: sum(max(0, min(t, b) - a) for a, b in stops)  # noqa: E731
        seconds = [
            first_seen.get(h["epoch"], math.nan) - start - paused(first_seen.get(h["epoch"], 0)) for h in history
        ]
    else:
        seconds = [h["seconds"] for h in history]
    if summary["train_config"]["loss"] == "psnr":
        return history, [s / 3600 for s in seconds], [-h["val"]["recon"] for h in history]
    return history, [s / 3600 for s in seconds], [10 * math.log10(pixels / h["val"]["recon"]) for h in history]


summaries = [json.loads((Path(run) / "summary.json").read_text()) for run in args.runs]
names, history, hours, psnr, offset = [], [], [], [], 0.0
for i, (run, summary) in enumerate(zip(args.runs, summaries)):
    h, t, p = curve(summary, args.times if i == 0 else None)
    names, history, hours, psnr = (
        names + [Path(run).name] * len(h),
        history + h,
        hours + [offset + v for v in t],
        psnr + p,
    )
    offset = hours[-1]

for name, h, t, p in zip(names, history, hours, psnr):
    print(f"{name} epoch {h['epoch']:>3}  {t:5.2f} h  validation PSNR {p:.2f} dB")
plt.figure(figsize=(6, 3.5))
plt.plot(hours, psnr, marker=".", label="validation (fixed draws)")
if all(summary["train_config"]["loss"] == "psnr" for summary in summaries):
    plt.plot(hours, [-h["train"]["recon"] for h in history], alpha=0.6, label="training (new crops every epoch)")
    plt.legend()
    plt.ylabel("mean crop PSNR (dB)")
else:
    plt.ylabel("validation PSNR (dB)")
plt.xlabel("hours on 2 CPU cores")
first = summaries[0]
plt.title(args.title or f"{first['dataset']}: {first['val_images']} validation crops, the training noise")
plt.grid(alpha=0.3)
plt.tight_layout()
plt.savefig(args.out, dpi=120)
print(f"wrote {args.out}")
