"""A mix of the camera model's output with the file, tried and not shipped (docs/reproduction.md, "Photos
as cameras make them"): at each camera row of the camera bench, on the validation scenes, the PSNR of
w * photos-camera(x) + (1 - w) * x for a grid of weights w, minus the file's own PSNR (mean, the lower end of
the paired 95% interval, and the worst scene). w = 1 is what `lmppm restore` runs; w = 0 is the file.

    uv run python examples/camera_blend.py --extra-photos ~/photos-extra
    uv run python examples/camera_blend.py --quick   # chelsea's centre, 128 pixels, two weights
"""

import argparse

import torch
from pick_trial_pilot import scenes  # the validation scenes, or the quick run's crop of chelsea

from lmppm_cli.experiments.bench.intervals import t_interval
from lmppm_cli.experiments.bench.photos import camera_rows, learned_rows, score_photo
from lmppm_cli.files.weights import load_model, resolve_model


def mixes(weights: list[float]) -> dict:
    """One method per weight; the model runs once per input image, the mixes reuse its output."""
    net = load_model(resolve_model("photos-camera"), torch.device("cpu"))
    model, seen = learned_rows(net, None)["LMPPM"], {}

    def out(x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), float(x.sum()))
        if key not in seen:
            seen[key] = model(x).float().cpu()
        return seen[key]

    return {w: (lambda x, w=w: w * out(x) + (1 - w) * x.float().cpu()) for w in weights}


def main(extra: str | None, weights: list[float], quick: bool) -> None:
    methods = mixes([0.0, *weights])
    psnrs: dict[str, dict[float, list[float]]] = {}
    for clean in scenes(extra, quick).values():
        for cell in score_photo(clean, methods, camera_rows(), seed=0, draws=1):
            psnrs.setdefault(cell["degradation"], {}).setdefault(cell["method"], []).append(cell["psnr"][0])
    print("| row | w | PSNR - file, mean | lower 95% | worst scene |")
    print("|---|---|---|---|---|")
    for row, by in psnrs.items():
        for w in weights:
            gain = [a - b for a, b in zip(by[w], by[0.0])]
            low = f"{t_interval(gain).low:+.2f}" if len(gain) > 1 else "-"
            print(f"| {row} | {w:g} | {sum(gain) / len(gain):+.2f} | {low} | {min(gain):+.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra-photos", default=None)
    parser.add_argument("--weights", default="0.4,0.5,0.6,0.7,0.8,0.9,1.0")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    weights = [0.5, 1.0] if args.quick else [float(w) for w in args.weights.split(",")]
    main(args.extra_photos, weights, args.quick)
