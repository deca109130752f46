"""The one error type the core raises for bad input; the CLI turns it into one sentence and an exit code."""


class LmppmError(Exception):
    """A user-facing problem (bad file, bad option, missing model). Its message is one sentence."""

    exit_code = 2
