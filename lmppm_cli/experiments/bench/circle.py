"""Suite `circle`: the paper's geometric demonstration (Figs. 4-7). Trains MPPM, a DAE and an ambient
DDPM on points of the unit circle with a truncated normal azimuth, restores a fixed set of noisy points
spread evenly around the whole circle, and reports the deviation from the circle, overall and where
the training data are sparse; writes results.json, results.md, trajectories.png and restored.png."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from lmppm_cli.core.bank import default_sigma_ker
from lmppm_cli.experiments.baselines.ambient import AmbientDiffusion, dae_loss
from lmppm_cli.experiments.bench.plot import Panel, colour_bar, ramp, save_row
from lmppm_cli.experiments.circle import CircleConfig, angular_offset, deviation, embed, sample_points
from lmppm_cli.experiments.fit import FitConfig, fit
from lmppm_cli.experiments.mppm import Mppm, g_bar_samples, mppm_loss, restore
from lmppm_cli.files.atomic import write_text

METHODS = ("noisy input", "DAE", "MPPM", "MPPM, all 60 steps", "DDPM", "DDPM, full chain")


@dataclass(frozen=True)
class CircleBench:
    """Sizes and noise of one run. sigma is both the training noise sigma_d and the test noise."""

    circle: CircleConfig = field(default_factory=CircleConfig)
    sigma: float = 0.1
    n_train: int = 5500  # ten batches of 550 per epoch (Table 10)
    n_val: int = 550
    n_test: int = 360
    sparse_from: float = 2.0  # low-density region: clean angle more than this many angle_std from theta0
    fit: FitConfig = field(default_factory=FitConfig)
    trajectories: int = 12


def run_circle(
    out_dir, *, seed: int, bench: CircleBench | None = None, limit: int | None = None, on_stage=lambda name: None
) -> dict:
    """Train the three models, restore the test points (`limit` of them), write the results; returns
    the rows {method: scores}."""
    bench = bench or CircleBench()
    bench = dataclasses.replace(bench, n_test=limit) if limit else bench
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    train, val = sample_points(bench.n_train, bench.circle, gen), sample_points(bench.n_val, bench.circle, gen)
    models, fits = _train(bench, train, val, seed, on_stage)
    theta = torch.arange(bench.n_test) * (2 * math.pi / bench.n_test) - math.pi
    clean = embed(theta)
    noisy = clean + bench.sigma * torch.randn(clean.shape, generator=gen)
    on_stage("restore")
    outputs, trajectories, seconds, info = _restore(bench, models, train, noisy, seed)
    k = torch.linspace(0, len(noisy) - 1, bench.trajectories).round().long()  # the points whose paths are drawn
    sparse = angular_offset(theta, bench.circle) > bench.sparse_from * bench.circle.angle_std
    rows = {m: _scores(outputs[m], clean, sparse) | {"ms_per_point": 1000 * seconds[m] / len(noisy)} for m in METHODS}
    out_dir = Path(out_dir)
    payload = {
        "suite": "circle",
        "seed": seed,
        "config": asdict(bench),
        "fits": fits,
        "flow": info,
        "rows": rows,
        "sparse_points": int(sparse.sum()),
    }
    write_text(out_dir / "results.json", json.dumps(payload, indent=2))
    write_text(out_dir / "results.md", markdown(payload))
    _figures(out_dir, train, noisy, outputs, {m: path[k] for m, path in trajectories.items()}, k)
    return rows


def _train(bench: CircleBench, train, val, seed: int, on_stage):
    def noisy(x, g):
        return x + bench.sigma * torch.randn(x.shape, generator=g)

    mppm, dae, ddpm = Mppm(), Mppm(), AmbientDiffusion(3)
    losses = {
        "MPPM": (mppm, lambda x, g: mppm_loss(mppm, x, noisy(x, g))[0]),
        "DAE": (dae, lambda x, g: dae_loss(dae, x, noisy(x, g))),
        "DDPM": (ddpm, lambda x, g: ddpm.loss(x, g)),
    }
    fits = {}
    for i, (name, (model, loss_fn)) in enumerate(losses.items()):
        on_stage(f"train {name}")
        start = time.perf_counter()
        fits[name] = fit(model, loss_fn, train, val, bench.fit, seed + 10 * i) | {
            "seconds": time.perf_counter() - start
        }
    return {"MPPM": mppm, "DAE": dae, "DDPM": ddpm}, fits


def _restore(bench: CircleBench, models, train, noisy, seed: int):
    mppm, dae, ddpm = models["MPPM"], models["DAE"], models["DDPM"]
    gen = torch.Generator().manual_seed(seed + 100)
    bank = mppm.encoder(train).detach()
    sigma_ker = default_sigma_ker(bank)
    samples = g_bar_samples(mppm, bank, sigma_ker, gen)
    start_step = ddpm.matched_step(bench.sigma)
    trajectories: dict[str, list] = {"MPPM": [], "DDPM": []}
    runs = {
        "noisy input": lambda: noisy,
        "DAE": lambda: dae.project(noisy).detach(),
        "MPPM": lambda: _mppm(mppm, noisy, samples, bench.sigma, None, trajectories["MPPM"]),
        "MPPM, all 60 steps": lambda: _mppm(mppm, noisy, samples, bench.sigma, 0.0, []),
        "DDPM": lambda: ddpm.restore(noisy, start_step, gen, trajectories["DDPM"]),
        "DDPM, full chain": lambda: ddpm.full_chain(noisy, gen),
    }
    outputs, seconds = {}, {}
    for name, run in runs.items():
        t0 = time.perf_counter()
        outputs[name] = run()
        seconds[name] = time.perf_counter() - t0
    paths = {name: torch.stack(steps, 1) for name, steps in trajectories.items()}  # (n, steps, 3)
    c = mppm.cfg
    info = {
        "sigma_ker": sigma_ker,
        "mc_samples": c.mc_samples,
        "alpha": c.alpha,
        "beta": c.beta,
        "tol": c.tol,
        "max_steps": c.max_steps,
        "ddpm_start_step": start_step,
    }
    return outputs, paths, seconds, info


def _mppm(net, noisy, samples, sigma_d, tol, trajectory: list):
    result = restore(net, noisy, samples, sigma_d, tol=tol, keep_trajectory=True)
    trajectory.extend(result.trajectory)
    return result.z


def _scores(x: torch.Tensor, clean: torch.Tensor, sparse: torch.Tensor) -> dict:
    dev = deviation(x)
    return {
        "mse": float(dev.pow(2).mean()),
        "max": float(dev.max()),
        "mse_sparse": float(dev[sparse].pow(2).mean()),
        "max_sparse": float(dev[sparse].max()),
        "mse_to_clean": float((x - clean).pow(2).sum(1).mean()),
    }


def markdown(payload: dict) -> str:
    cfg, rows = payload["config"], payload["rows"]
    lines = [
        "# lmppm bench: circle\n",
        "| method | MSE | max error | MSE, sparse | max error, sparse | mean squared distance to the clean point | ms / point |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, r in rows.items():
        lines.append(
            f"| {m} | {r['mse']:.5f} | {r['max']:.3f} | {r['mse_sparse']:.5f} | {r['max_sparse']:.3f} | "
            f"{r['mse_to_clean']:.4f} | {r['ms_per_point']:.3f} |"
        )
    c, f = cfg["circle"], payload["flow"]
    lines += [
        "",
        f"- MSE and max error: the deviation of the restored points from the unit circle (Euclidean distance "
        f"in R^3); {cfg['n_test']} test points at evenly spaced angles around the whole circle, Gaussian noise "
        f"sigma {cfg['sigma']} in R^3; seed {payload['seed']}.",
        f"- Training: {cfg['n_train']} points, azimuth ~ N({c['theta0']:.3f}, {c['angle_std']}^2) truncated to "
        f"+-{c['span']:.3f}; the same sigma is the training noise. Sparse: the {payload['sparse_points']} test "
        f"points more than {cfg['sparse_from']} angle_std from the dense centre.",
        f"- MPPM: Table 10, alpha {f['alpha']}, beta {f['beta']}, tolerance {f['tol']} (relative update), at most "
        f"{f['max_steps']} steps; 'all 60 steps' has no tolerance stop; "
        f"G_bar from {f['mc_samples']} Monte Carlo latents per training point, sigma_ker {f['sigma_ker']:.4g}.",
        f"- DDPM: T = 1000; restored from step {f['ddpm_start_step']} (noise-matched); 'full chain' runs all "
        "1000 reverse steps from the noisy point as x_T (the paper's setting).",
        "- Epochs (best / run): "
        + ", ".join(f"{m} {v['best_epoch']}/{v['epochs']} ({v['seconds']:.0f} s)" for m, v in payload["fits"].items())
        + ".",
        "- Figures: trajectories.png (Figs. 4 and 6) and restored.png (Figs. 5 and 7).",
    ]
    return "\n".join(lines) + "\n"


def _figures(out_dir: Path, train, noisy, outputs, trajectories, k) -> None:
    """Trajectories start at the blue noisy points and end at the black ones (DDPM's first iterate is
    the noisy point noised to its start step)."""
    traj = []
    for name, title in (("DDPM", "DDPM (noise-matched start): trajectories"), ("MPPM", "MPPM: trajectories")):
        panel = Panel(title)
        panel.points(train[:: max(1, len(train) // 600), :2], (200, 200, 200), 1.2)
        for path in trajectories[name]:
            panel.path(path[:: max(1, path.shape[0] // 60), :2])
        panel.points(noisy[k, :2], (30, 60, 200), 2.5)
        panel.points(trajectories[name][:, -1, :2], (0, 0, 0), 2.5)
        traj.append(panel.image)
    save_row(traj, out_dir / "trajectories.png")
    errors = {m: deviation(outputs[m]) for m in ("DAE", "MPPM", "DDPM", "DDPM, full chain")}
    top = max(float(e.max()) for e in errors.values())
    panels = []
    for name, err in errors.items():
        panel = Panel(f"{name}: MSE {float(err.pow(2).mean()):.4f}, max {float(err.max()):.3f}")
        panel.points(outputs[name][:, :2], ramp(err, top), 2.5)
        panels.append(panel.image)
    save_row(panels + [colour_bar(top, "deviation")], out_dir / "restored.png")
