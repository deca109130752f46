"""`lmppm bench`: the paper's experiments as tables, JSON and figures. Suites are listed in SUITES."""

from lmppm_cli.bench.runner import SUITES, run_suite

__all__ = ["SUITES", "run_suite"]

from lmppm_cli.bench import noise  # noqa: E402,F401  (registers its suite)
