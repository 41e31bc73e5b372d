"""`sagsflow`: the command line.

Each command group lives in its own module under `workers/` and exposes `register(app)`; they are found here by
scanning the package, so adding a command never touches this file.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

import workers

app = typer.Typer(
    name="sagsflow",
    help="Sagsflow: seniorpension cases between Seniorpension and the kommuner.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for info in sorted(pkgutil.iter_modules(workers.__path__), key=lambda m: m.name):
    if info.name == "cli":
        continue
    module = importlib.import_module(f"workers.{info.name}")
    register = getattr(module, "register", None)
    if callable(register):
        register(app)


if __name__ == "__main__":
    app()
