"""`lmppm bench`: the paper's experiments as tables, JSON and figures. Suites are listed in SUITES."""

from lmppm_cli.bench import mnist, noise  # noqa: F401  (each registers its suite)
from lmppm_cli.bench.runner import SUITES, run_suite

__all__ = ["SUITES", "run_suite"]
