"""How the command line reports errors: a mistyped command, option or value and every known error are one
sentence on stderr and an exit code (core/errors.EXIT_CODES); a traceback only with --debug."""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from lmppm_cli.core.errors import LmppmError
from lmppm_cli.display import err

DEBUG = {"on": bool(os.environ.get("LMPPM_DEBUG"))}  # --debug (or LMPPM_DEBUG) re-raises with the traceback


class OneSentenceErrors(TyperGroup):
    """The `lmppm` group, run by click's non-standalone main so that a mistyped command, option or value
    is one sentence and exit code 2, as every other error (click's own would add the usage line and a
    hint around it)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra) -> Any:  # type: ignore[override]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except typer.Abort:
            err.print("aborted.")
            sys.exit(1)
        except typer.TyperException as exc:  # click's ClickException and UsageError
            message = escape(exc.format_message())
            err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


def friendly(command):
    """Turn known errors into one sentence and a non-zero exit code; a traceback only with --debug."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except LmppmError as exc:
            if DEBUG["on"]:
                raise
            err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            then = " (rerun with --skip-existing to finish a folder)" if command.__name__ == "restore" else ""
            err.print(f"interrupted; every file written so far is whole{then}.")
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - the edge of the program
            if DEBUG["on"]:
                raise
            err.print(
                f"[red]internal error:[/red] {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                soft_wrap=True,
            )
            raise typer.Exit(70) from None

    return wrapper
