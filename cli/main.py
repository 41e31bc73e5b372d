"""`sagsflow`: the command line.

Each command group lives in its own module under `cli/` and exposes `register(app)`; `COMMANDS` below lists them,
so what the command line offers is read in one place (a new command: a module here and one line in `COMMANDS`).

A command that cannot reach PostgreSQL, Temporal or the API ends here in one line on stderr that names the address
and the setting to fix (runtime/services.py), with exit code 1: that is an expected failure, not a traceback.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from cli import (
    api,
    dev,
    eventlog,
    forecast,
    forget,
    kommune,
    prescreen,
    replay,
    report,
    schedules,
    search_attributes,
    simulate,
    staff,
    worker,
)
from cli.unreachable import unreachable_message
from runtime.config import ProductionSettingsMissing, SettingFileMissing

UNREACHABLE_EXIT = 1
CONFIGURATION_EXIT = 2
_reported_unreachable = False


class SagsflowGroup(TyperGroup):
    def invoke(self, ctx: Any) -> Any:  # typer vendors click; its Context type is private
        global _reported_unreachable
        try:
            return super().invoke(ctx)
        except (ProductionSettingsMissing, SettingFileMissing) as exc:
            # A configuration mistake, not a crash: the line says what to set, and nothing started.
            typer.echo(str(exc), err=True)
            raise typer.Exit(CONFIGURATION_EXIT) from None
        except Exception as exc:
            message = unreachable_message(exc)
            if message is None:
                raise
            typer.echo(message, err=True)
            _reported_unreachable = True
            raise typer.Exit(UNREACHABLE_EXIT) from None


app = typer.Typer(
    name="sagsflow",
    help="Sagsflow: seniorpension cases between Seniorpension and the kommuner.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=SagsflowGroup,
)

COMMANDS = (
    api,
    dev,
    eventlog,
    forecast,
    forget,
    kommune,
    prescreen,
    replay,
    report,
    schedules,
    search_attributes,
    simulate,
    staff,
    worker,
)
for command in COMMANDS:
    command.register(app)


def main() -> None:
    """The `sagsflow` script."""
    try:
        app()
    except SystemExit as done:
        if _reported_unreachable:
            # A Temporal client's Rust threads can outlive the event loop and abort the interpreter's teardown
            # with "Fatal Python error: PyGILState_Release" (temporalio/sdk-python#300). After a failed connect the
            # process ends once the exit handlers have run, so the one line stays the whole story.
            sys.stdout.flush()
            sys.stderr.flush()
            atexit._run_exitfuncs()
            os._exit(done.code if isinstance(done.code, int) else 1)
        raise


if __name__ == "__main__":
    main()
