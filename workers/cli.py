"""`sagsflow`: the command line. Each command group lives in its own module and registers itself here."""

from __future__ import annotations

import typer

from workers import devstack, prescreen_cmd

app = typer.Typer(
    name="sagsflow",
    help="Sagsflow: seniorpension cases between Seniorpension and the kommuner.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for module in (devstack, prescreen_cmd):
    module.register(app)


if __name__ == "__main__":
    app()
