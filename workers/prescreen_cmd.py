"""`sagsflow prescreen APPLICATION.json`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def prescreen(path: str, json_output: bool = typer.Option(False, "--json")) -> None:
        """Formal pre-screening of one application (not yet implemented)."""
        typer.echo("prescreen: not implemented yet", err=True)
        raise typer.Exit(2)
