"""Start-up cost of the command line, as whole processes (issue 14): `python -c pass`, `lmppm --help`,
`python -c "import torch"` and `lmppm restore` of one digit, run in interleaved rounds so that a change
in the machine's load hits all four alike; prints the median wall time of each and the two ratios.

    uv run python examples/startup_times.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def commands(out: Path) -> dict[str, list[str]]:
    lmppm = shutil.which("lmppm") or sys.exit("the lmppm console script is not on PATH (run through `uv run`).")
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "lmppm --help": [lmppm, "--help"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "lmppm restore (one digit)": [
            lmppm,
            "restore",
            str(HERE / "noisy_digit.png"),
            "-o",
            str(out / "digit.png"),
            "--device",
            "cpu",
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cmds = commands(Path(tmp))
        times: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(args.rounds):
            for name, cmd in cmds.items():
                (Path(tmp) / "digit.png").unlink(missing_ok=True)
                start = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True)
                times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, t in med.items():
        print(f"{name:28s} {t:6.3f} s  (median of {args.rounds})")
    print(
        f"lmppm --help minus python -c pass: {med['lmppm --help'] - med['python -c pass']:.3f} s (target: within 0.5 s)"
    )
    ratio = med["lmppm restore (one digit)"] / med["python -c 'import torch'"]
    print(f"lmppm restore / import torch: {ratio:.2f}x (target: within 1.5x)")


if __name__ == "__main__":
    main()
