"""Behaviour unchanged, measured (issue 30): a fixed list of commands whose outputs are digested, so that
two trees can be compared output by output.

    uv run python examples/behaviour_check.py OUT [--tree DIR]     # writes OUT/digests.json
    uv run python examples/behaviour_check.py --compare A/digests.json B/digests.json

`--tree DIR` runs the package of another checkout (a git worktree of an earlier commit) with this
environment's libraries. Images, strips and grids are compared byte for byte; a --report by its rows
less the seconds column; a trained model by its tensors (its metadata holds timings); a bench by every
figure of its cells less the timings.
"""

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

TIMINGS = {"seconds", "seconds_per_image", "seconds_per_mp", "ms_per_image", "time_per_sample"}


def commands(out: Path, examples: Path) -> dict[str, list[str]]:
    o = lambda name: str(out / name)  # noqa: E731
    digit, photo, face = str(examples / "noisy_digit.png"), o("inputs/photo.png"), o("inputs/face.png")
    return {
        "restore a digit": ["restore", digit, "-o", o("digit.png")],
        "restore a face": ["restore", face, "-o", o("face.png")],
        "restore a photo (the pick)": ["restore", photo, "-o", o("photo-pick.png")],
        "restore a photo (photos)": ["restore", photo, "-o", o("photo-model.png"), "--model", "photos"],
        "restore a folder with a report": [
            "restore",
            str(examples / "noisy_digits"),
            "-o",
            o("folder"),
            "--report",
            o("report.csv"),
            "--save-trajectory",
        ],
        "restore --method ldm": ["restore", digit, "-o", o("ldm.png"), "--method", "ldm"],
        "restore --method bm3d": ["restore", digit, "-o", o("bm3d.png"), "--method", "bm3d"],
        "restore with flow options": ["restore", digit, "-o", o("flow.png"), "--alpha", "0.1", "--steps", "4"],
        "generate": ["generate", "--n", "16", "-o", o("generated"), "--progression"],
        "degrade": ["degrade", digit, "-o", o("degraded.png"), "--kind", "scribbles", "--severity", "mild"],
        "train one epoch": [
            "train",
            "mnist-5k",
            "-o",
            o("train"),
            "--epochs",
            "1",
            "--batch-size",
            "256",
            "--seed",
            "0",
            "--device",
            "cpu",
        ],
        "small bench": [
            "bench",
            "--suite",
            "mnist-noise",
            "-o",
            o("bench"),
            "--limit",
            "20",
            "--draws",
            "1",
            "--no-classical",
            "--device",
            "cpu",
        ],
    }


def make_inputs(out: Path) -> None:
    """A noisy face (lfw test face 80) and a 96x128 crop of the noisy example photo."""
    import skimage.data
    from PIL import Image

    (out / "inputs").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    face = skimage.data.lfw_subset()[80]
    noisy = np.clip(face + 0.2 * rng.standard_normal(face.shape), 0, 1)
    Image.fromarray(np.rint(noisy * 255).astype(np.uint8)).save(out / "inputs/face.png")
    photo = Image.open(Path(__file__).parent / "noisy_photo.png").convert("RGB")
    photo.crop((100, 60, 228, 156)).save(out / "inputs/photo.png")


def digest(path: Path, out: Path) -> str:
    if path.suffix == ".csv":
        rows = [
            {k: v.replace(str(out), "OUT") for k, v in r.items() if k not in TIMINGS}
            for r in csv.DictReader(path.open())
        ]
        text = json.dumps(rows, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        tensors = load_file(path)
        h = hashlib.sha256()
        for key in sorted(tensors):
            h.update(key.encode() + tensors[key].tobytes())
        return h.hexdigest()
    if path.name == "results.json":
        return hashlib.sha256(json.dumps(_strip(json.loads(path.read_text())), sort_keys=True).encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


KEEP = {".png", ".csv", ".json", ".safetensors"}
SKIP = {"summary.json", "checkpoint.safetensors", "digests.json"}  # timings; the model file holds the same weights


def run(out: Path, tree: str | None, quick: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    make_inputs(out)
    env = dict(os.environ, PYTHONPATH=tree or "")
    codes = {}
    listed = commands(out, Path(__file__).parent)
    for label, args in listed.items() if not quick else list(listed.items())[:1]:
        done = subprocess.run([sys.executable, "-m", "lmppm_cli", *args], env=env, capture_output=True, text=True)
        codes[label] = done.returncode
        print(f"{label}: exit {done.returncode}", flush=True)
    write_digests(out, codes)


def write_digests(out: Path, codes: dict) -> None:
    files = sorted(
        p for p in out.rglob("*") if p.is_file() and p.suffix in KEEP and p.name not in SKIP and "inputs" not in p.parts
    )
    found = {str(p.relative_to(out)): digest(p, out) for p in files}
    (out / "digests.json").write_text(json.dumps({"exit_codes": codes, "files": found}, indent=1))
    print(f"{len(found)} outputs digested into {out / 'digests.json'}")


def compare(a: Path, b: Path) -> int:
    x, y = json.loads(a.read_text()), json.loads(b.read_text())
    differ = [k for k in sorted(set(x["files"]) | set(y["files"])) if x["files"].get(k) != y["files"].get(k)]
    codes = [k for k in x["exit_codes"] if x["exit_codes"][k] != y["exit_codes"].get(k)]
    for k in differ:
        print(f"differs: {k}")
    for k in codes:
        print(f"exit code differs: {k} ({x['exit_codes'][k]} then {y['exit_codes'].get(k)})")
    print(f"{len(x['files'])} outputs, {len(differ)} differ; {len(codes)} exit codes differ")
    return 1 if differ or codes else 0


parser = argparse.ArgumentParser()
parser.add_argument("out", nargs="?")
parser.add_argument("--tree", default=None)
parser.add_argument("--compare", nargs=2, default=None)
parser.add_argument("--digest-only", action="store_true", help="digest OUT's files again, running nothing")
parser.add_argument("--quick", action="store_true", help="the first command only: checks that the script runs")
args = parser.parse_args()
if args.digest_only:
    write_digests(Path(args.out), json.loads((Path(args.out) / "digests.json").read_text())["exit_codes"])
elif args.compare:
    sys.exit(compare(Path(args.compare[0]), Path(args.compare[1])))
else:
    run(Path(args.out), args.tree, args.quick)
