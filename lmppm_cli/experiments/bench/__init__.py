"""`lmppm bench`: the paper's experiments as tables, JSON and figures. Image suites are listed in
SUITES (run by the shared runner); STANDALONE suites train and score their own models (circle), time
the bundled ones (speed) or score whole photos (photos, photo-pick). Each suite declares the options it
takes by its own keyword parameters; `run_bench` hands it those and refuses any other that was set."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.experiments.bench import faces, mnist, noise  # noqa: F401  (each registers its suite)
from lmppm_cli.experiments.bench.camera_pick import run_camera_pick
from lmppm_cli.experiments.bench.circle import run_circle
from lmppm_cli.experiments.bench.generation import run_generation
from lmppm_cli.experiments.bench.photo_pick import run_photo_pick
from lmppm_cli.experiments.bench.photos import run_photos
from lmppm_cli.experiments.bench.runner import KIND_METHOD, SUITES, run_suite
from lmppm_cli.experiments.bench.speed import run_speed
from lmppm_cli.files.bench_page import write_bench_page

STANDALONE: dict[str, Callable[..., Any]] = {
    "circle": run_circle,
    "speed": run_speed,
    "photos": run_photos,
    "photo-pick": run_photo_pick,
    "camera": run_camera_pick,
    "generation": run_generation,
}
ALL_SUITES = sorted([*SUITES, *STANDALONE])


@dataclass(frozen=True)
class BenchOptions:
    """The options of `lmppm bench`; a suite takes those its runner (or factory) names."""

    seed: int = 0
    limit: int | None = None
    draws: int = 3
    degradations: tuple[str, ...] | None = None
    classical: bool = True
    split: str = "test"
    device: str = "auto"
    models: dict = field(default_factory=dict)  # kind (lmppm, ablation, dae, ldm, classifier) -> reference
    extra_photos: str | None = None
    revision: str | None = None
    offline: bool = False
    quick: bool = False  # QUICK's settings for the options the suite takes: a run of about a minute


QUICK: dict[str, Any] = {"limit": 50, "draws": 1, "classical": False}  # images (scenes, points), draws, classical rows


def accepted(suite: str) -> set[str]:
    """The options a suite takes: its runner's keyword parameters (an image suite: its factory's and
    the runner's), and `models` as the kinds it needs."""
    run = SUITES[suite].factory if suite in SUITES else STANDALONE[suite]
    names = set(inspect.signature(run).parameters) | {"seed"}
    return names | ({"draws", "device", "revision", "offline"} if suite in SUITES else set())


def check_options(suite: str, options: BenchOptions) -> set[str]:
    """The options `suite` takes; a suite that does not exist, or an option it does not take set away
    from its default, is refused in one sentence."""
    if suite not in ALL_SUITES:
        raise LmppmError(f"unknown bench suite {suite!r}; available: {', '.join(ALL_SUITES)}.")
    takes = accepted(suite)
    defaults = BenchOptions()
    for f in fields(BenchOptions):
        if f.name not in takes and f.name != "quick" and getattr(options, f.name) != getattr(defaults, f.name):
            raise LmppmError(f"--{f.name.replace('_', '-')} is not an option of the {suite} suite.")
    if options.split not in ("test", "validation"):
        raise LmppmError(f"--split must be test or validation, not {options.split!r}.")
    return takes


def run_bench(
    suite: str,
    out_dir,
    options: BenchOptions,
    on_cell=lambda cell: None,
    on_stage=lambda s: None,
    on_start=lambda n: None,
):
    """Run one suite with the options it takes; an option it does not take, set away from its default,
    is refused in one sentence. -> the image suite's cells, or a standalone suite's rows."""
    takes = check_options(suite, options)
    if options.quick:
        options = dataclasses.replace(options, **{k: v for k, v in QUICK.items() if k in takes})
        if "limit" in takes and options.limit and suite in ("photo-pick", "photos", "camera"):
            options = dataclasses.replace(options, limit=None if suite == "photos" else 2)
    if suite in STANDALONE:
        given = {k: getattr(options, k) for k in takes if k in {f.name for f in fields(BenchOptions)}}
        result = STANDALONE[suite](out_dir, on_stage=on_stage, **given)
    else:
        models = _models(suite, options)
        kinds = {k: getattr(options, k) for k in takes if k in ("limit", "degradations", "classical", "split")}
        result = run_suite(
            suite,
            out_dir,
            seed=options.seed,
            draws=options.draws,
            models=models,
            on_cell=on_cell,
            on_start=on_start,
            **kinds,
        )
    write_bench_page(out_dir, suite)  # results.html: the tables and figures as one page
    return result


def _models(suite: str, options: BenchOptions) -> dict:
    """The loaded models an image suite needs, by kind: the ones given, else the suite's bundled ones."""
    from lmppm_cli.files.devices import pick_device
    from lmppm_cli.files.weights import load_model, resolve_model

    unknown = set(options.models) - set(SUITES[suite].needs)
    if unknown:
        raise LmppmError(f"--{sorted(unknown)[0]} is not a model of the {suite} suite.")
    device = pick_device(options.device)
    load = lambda kind, ref: load_model(  # noqa: E731
        resolve_model(ref, revision=options.revision, offline=options.offline), device, KIND_METHOD.get(kind, kind)
    )
    return {kind: load(kind, options.models.get(kind) or default) for kind, default in SUITES[suite].needs.items()}


__all__ = ["ALL_SUITES", "STANDALONE", "SUITES", "BenchOptions", "accepted", "check_options", "run_bench", "run_suite"]
