"""How training grows with the data (issue 11): seconds per epoch, peak memory and the recall of the
approximate x* for 1k, 4k, 16k and 64k training digits, with exact and with FAISS x* search.

The training sets are mnist-5k's 3,500 training digits under random affine warps (torchvision), as
many as asked; validation is mnist-5k's 500 validation digits. Each row runs `lmppm_cli.core.train.train`
(the Table 8 model, batch 128, one epoch, no calibration) in its own process, so its peak memory
(VmHWM) is its own. Writes train_scale.json and train_scale.md into --out.

    uv run python examples/train_scale.py [--sizes 1000,4000,16000,64000] [--out examples/train_scale]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def augmented_digits(n: int) -> torch.Tensor:
    """n warped copies of mnist-5k's training digits (the same for a given n)."""
    from torchvision.transforms import v2

    from lmppm_cli.files.data import mnist_5k

    base = mnist_5k().train.images
    warp = v2.RandomAffine(degrees=12, translate=(0.08, 0.08), scale=(0.9, 1.1), shear=8)
    torch.manual_seed(n)
    copies = [base[i % len(base)] if i < len(base) else warp(base[i % len(base)]) for i in range(n)]
    return torch.stack(copies)


def child(n: int, mode: str) -> dict:
    """One row, in this process: build the data, train one epoch, report time, memory and recall."""
    from lmppm_cli.core.config import AutoencoderConfig
    from lmppm_cli.core.data import Dataset, Split
    from lmppm_cli.core.train_config import LossWeights, TrainConfig
    from lmppm_cli.files.data import mnist_5k
    from lmppm_cli.training import model_config, train

    torch.set_num_threads(2)
    data = Dataset(f"digits-{n}", Split(augmented_digits(n)), mnist_5k().val)
    config = model_config("lmppm", AutoencoderConfig())
    tcfg = TrainConfig(epochs=1, neighbours=mode, calibrate=False, weights=LossWeights(1, 4, 1, 1, 1, 1))
    with tempfile.TemporaryDirectory() as run:
        start = time.perf_counter()
        summary = train(config, data, tcfg, run, torch.device("cpu"))
        total = time.perf_counter() - start
    peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
    return {
        "images": n,
        "mode": mode,
        "seconds_per_epoch": summary["seconds_per_epoch"],
        "seconds_total": round(total, 1),
        "peak_rss_mib": round(peak / 1024, 1),
        "notes": summary["notes"],
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| training images | x* search | s / epoch | whole run (s) | peak memory (MiB) | recall of exact x* |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        recall = next(
            (n.split("recall of the exact x* on 256 noisy training images: ")[1] for n in r["notes"] if "recall" in n),
            "exact",
        )
        lines.append(
            f"| {r['images']:,} | {r['mode']} | {r['seconds_per_epoch']:.1f} | {r['seconds_total']:.1f} | {r['peak_rss_mib']:,.0f} | {recall} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,4000,16000,64000")
    ap.add_argument("--modes", default="exact,faiss")
    ap.add_argument("--out", default="examples/train_scale")
    ap.add_argument("--child", nargs=2, metavar=("N", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1])))
        return
    rows = []
    for n in (int(v) for v in args.sizes.split(",")):
        for mode in args.modes.split(","):
            run = subprocess.run(
                [sys.executable, __file__, "--child", str(n), mode], capture_output=True, text=True, check=True
            )
            rows.append(json.loads(run.stdout.strip().splitlines()[-1]))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, CPU"
    (out / "train_scale.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    (out / "train_scale.md").write_text(f"# Training time against data size ({machine})\n\n{table(rows)}")


if __name__ == "__main__":
    main()
