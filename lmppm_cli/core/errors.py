"""The error types the core raises for what a user can fix; the CLI turns each into one sentence and its
exit code (EXIT_CODES, listed in `lmppm --help` and the README)."""


class LmppmError(Exception):
    """A user-facing problem (bad file, bad option, missing input). Its message is one sentence."""

    exit_code = 2


class ModelError(LmppmError):
    """A model file that cannot be found, read or used for what was asked."""

    exit_code = 3


class TrainingError(LmppmError):
    """A training run that had to stop (its loss diverged)."""

    exit_code = 4


class Interrupted(LmppmError):
    """Ctrl-C, with what was kept and how to go on."""

    exit_code = 130


EXIT_CODES = {
    0: "done",
    1: "some files failed (each named), the others were written",
    2: "usage or input error, nothing written",
    3: "model error (missing, unreadable or the wrong kind)",
    4: "training stopped (its loss diverged), its last good checkpoint kept",
    70: "internal error (a bug: please report it with the traceback of --debug)",
    130: "interrupted (Ctrl-C)",
}
