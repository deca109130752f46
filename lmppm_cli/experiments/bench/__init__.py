"""`lmppm bench`: the paper's experiments as tables, JSON and figures. Image suites are listed in
SUITES (run by the shared runner); STANDALONE suites train and score their own models (circle) or time
the bundled ones (speed)."""

from lmppm_cli.experiments.bench import faces, mnist, noise  # noqa: F401  (each registers its suite)
from lmppm_cli.experiments.bench.circle import run_circle
from lmppm_cli.experiments.bench.generation import run_generation
from lmppm_cli.experiments.bench.photos import run_photo_pick, run_photos
from lmppm_cli.experiments.bench.runner import SUITES, run_suite
from lmppm_cli.experiments.bench.speed import run_speed

STANDALONE = {
    "circle": run_circle,
    "speed": run_speed,
    "photos": run_photos,
    "photo-pick": run_photo_pick,
    "generation": run_generation,
}
ALL_SUITES = sorted([*SUITES, *STANDALONE])

__all__ = ["ALL_SUITES", "STANDALONE", "SUITES", "run_suite"]
