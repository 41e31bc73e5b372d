"""`sagsflow`: the command line.

Each command group lives in its own module under `workers/` and exposes `register(app)`; they are found here by
scanning the package, so adding a command never touches this file.

A command that cannot reach PostgreSQL, Temporal or the API ends here in one line on stderr that names the address
and the setting to fix (workers/services.py), with exit code 1: that is an expected failure, not a traceback.
"""

from __future__ import annotations

import atexit
import importlib
import os
import pkgutil
import sys
from typing import Any

import typer
from typer.core import TyperGroup

import workers
from workers.services import unreachable_message

UNREACHABLE_EXIT = 1
_reported_unreachable = False


class SagsflowGroup(TyperGroup):
    def invoke(self, ctx: Any) -> Any:  # typer vendors click; its Context type is private
        global _reported_unreachable
        try:
            return super().invoke(ctx)
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

for info in sorted(pkgutil.iter_modules(workers.__path__), key=lambda m: m.name):
    if info.name == "cli":
        continue
    module = importlib.import_module(f"workers.{info.name}")
    register = getattr(module, "register", None)
    if callable(register):
        register(app)


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
