"""`sagsflow access-log` and `sagsflow eventlog migrate|project|rebuild|forget-subject`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer

from eventlog.access import AccessLogError, AccessRecord, access_log
from eventlog.migrate import migrate_dsn
from eventlog.projections import ProjectionRunner, rebuild
from eventlog.store import EventStore, create_pool
from sagsflow.ids import parse_case_id
from workers import services

T = TypeVar("T")

DATABASE_URL_HELP = "PostgreSQL URL; default DATABASE_URL, else the embedded dev stack's server"


def database_url(explicit: str | None) -> str:
    return services.database_url(explicit=explicit)


def _with_pool(url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    async def main() -> T:
        pool = await create_pool(url, min_size=1, max_size=4)
        try:
            return await work(pool)
        finally:
            await pool.close()

    return asyncio.run(main())


def _render(records: list[AccessRecord], as_json: bool) -> None:
    if as_json:
        rows = [{**dataclasses.asdict(r), "at": r.at.isoformat()} for r in records]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Access log ({len(records)} entries)")
    for col in ("at", "actor", "case", "subject", "purpose", "what"):
        table.add_column(col)
    for r in records:
        table.add_row(
            r.at.isoformat(timespec="seconds"), r.actor, r.case_id or "", r.subject_id or "", r.purpose, r.what
        )
    Console(width=160).print(table)


def register(app: typer.Typer) -> None:
    @app.command("access-log")
    def access_log_cmd(
        case: str | None = typer.Option(None, "--case", help="Case id: its uuid, or case-<uuid> as the Web UI shows"),
        subject: str | None = typer.Option(None, "--subject", help="Data subject id (all their cases)"),
        json_output: bool = typer.Option(False, "--json", help="JSON instead of a table"),
        url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
    ) -> None:
        """Who read a case's (or a person's) personal data, when and why. Shows ids and purposes only."""
        if (case is None) == (subject is None):
            typer.echo("give exactly one of --case and --subject", err=True)
            raise typer.Exit(2)
        if case is not None:
            try:
                case = parse_case_id(case)
            except ValueError as exc:
                typer.echo(f"--case: {exc}", err=True)
                raise typer.Exit(2) from None
        try:
            records = _with_pool(database_url(url), lambda pool: access_log(pool, case_id=case, subject_id=subject))
        except AccessLogError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        _render(records, json_output)

    eventlog = typer.Typer(help="Event log maintenance.", no_args_is_help=True)
    app.add_typer(eventlog, name="eventlog")

    @eventlog.command("migrate")
    def migrate_cmd(url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP)) -> None:
        """Apply the SQL migrations that are missing (idempotent)."""
        applied = asyncio.run(migrate_dsn(database_url(url)))
        typer.echo(f"applied: {', '.join(applied)}" if applied else "up to date")

    @eventlog.command("rebuild")
    def rebuild_cmd(url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP)) -> None:
        """Refold the case views from position 0 into fresh tables and swap them in."""
        position = _with_pool(database_url(url), rebuild)
        typer.echo(f"case views rebuilt up to global position {position}")

    @eventlog.command("project")
    def project_cmd(
        follow: bool = typer.Option(False, "--follow", help="Keep following new events until interrupted"),
        url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
    ) -> None:
        """Bring the case views up to date (and with --follow keep them so)."""

        async def work(pool: Any) -> int:
            runner = ProjectionRunner(pool)
            if not follow:
                return await runner.catch_up()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await runner.run(stop)
            return await runner.catch_up()

        position = _with_pool(database_url(url), work)
        typer.echo(f"case views at global position {position}")

    @eventlog.command("forget-subject")
    def forget_cmd(
        subject: str = typer.Argument(..., help="Data subject id"),
        actor: str = typer.Option(..., "--actor", help="Who orders the erasure"),
        purpose: str = typer.Option("erasure request", "--purpose"),
        url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
    ) -> None:
        """Delete a person's data key: their personal fields become unreadable for good; figures stay."""
        deleted = _with_pool(
            database_url(url),
            lambda pool: EventStore(pool).forget_subject(subject, actor=actor, purpose=purpose),
        )
        typer.echo("key deleted" if deleted else "no key to delete (already forgotten or never stored)")
