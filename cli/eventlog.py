"""`sagsflow access-log` and `sagsflow eventlog migrate|project|rebuild|forget-subject`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import typer

from domain.calendar import COPENHAGEN
from domain.ids import parse_case_id
from eventlog.access import AccessLogError, AccessRecord
from eventlog.migrate import migrate_dsn
from eventlog.projections import ProjectionRunner, rebuild
from eventlog.store import Erasure
from eventlog.stores import Stores
from runtime import services

T = TypeVar("T")

DATABASE_URL_HELP = "PostgreSQL URL; default DATABASE_URL, else the embedded dev stack's server"


def database_url(explicit: str | None) -> str:
    return services.database_url(explicit=explicit)


def with_stores(url: str, work: Callable[[Stores], Awaitable[T]]) -> T:
    async def main() -> T:
        stores = await Stores.connect(url, min_size=1, max_size=4)
        try:
            return await work(stores)
        finally:
            await stores.close()

    return asyncio.run(main())


def erasure_report(subject_id: str, erasure: Erasure) -> str:
    """What was erased, in counts: the subject id is a pseudonym, nothing here is personal data."""
    key = "key deleted" if erasure.key_deleted else "no key to delete (already forgotten or never stored)"
    return (
        f"subject {subject_id}: {key}; {erasure.documents} documents and {erasure.intake_records} intake records"
        f" erased, over {erasure.cases} cases; the erasure is in the access log"
    )


def _render(records: list[AccessRecord], as_json: bool) -> None:
    if as_json:
        rows = [{**dataclasses.asdict(r), "at": r.at.isoformat()} for r in records]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Access log ({len(records)} entries)")
    for col in ("at", "actor", "case", "subject", "namespace", "purpose", "what"):
        # An auditor copies ids out of this table: an id is never cut short (an ellipsis) or broken across lines;
        # the subject (a long hash) and the texts fold instead.
        table.add_column(col, no_wrap=col in ("at", "actor", "case"), overflow="fold")
    for r in records:
        table.add_row(
            r.at.isoformat(timespec="seconds"),
            r.actor,
            r.case_id or "",
            r.subject_id or "",
            r.namespace or "",
            r.purpose,
            r.what,
        )
    Console(width=200).print(table)


def _instant(option: str, value: str | None) -> datetime | None:
    """An ISO date or date and time; without an offset it is Copenhagen time, where the operators are."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        typer.echo(f"{option}: {value!r} is not an ISO date or time, e.g. 2021-04-01 or 2021-04-01T09:30", err=True)
        raise typer.Exit(2) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=COPENHAGEN)


def register(app: typer.Typer) -> None:
    @app.command("access-log")
    def access_log_cmd(
        case: str | None = typer.Option(None, "--case", help="Case id: its uuid, or case-<uuid> as the Web UI shows"),
        subject: str | None = typer.Option(None, "--subject", help="Data subject id (all their cases)"),
        actor: str | None = typer.Option(None, "--actor", help="Who read, e.g. codec-token or an ops key id"),
        since: str | None = typer.Option(
            None, "--since", help="From this ISO date/time (Copenhagen time unless +hh:mm)"
        ),
        until: str | None = typer.Option(None, "--until", help="Before this ISO date/time"),
        json_output: bool = typer.Option(False, "--json", help="JSON instead of a table"),
        url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
    ) -> None:
        """Who read a case's (or a person's) personal data, when and why. Shows ids and purposes only.

        Reads that name no case (e.g. a decoded summary in the Web UI) are listed under their namespace: find them
        with --actor and --since/--until."""
        if case is not None and subject is not None:
            typer.echo("give --case or --subject, not both", err=True)
            raise typer.Exit(2)
        if case is None and subject is None and actor is None and since is None and until is None:
            typer.echo("give --case, --subject, --actor or --since/--until", err=True)
            raise typer.Exit(2)
        start, end = _instant("--since", since), _instant("--until", until)
        if case is not None:
            try:
                case = parse_case_id(case)
            except ValueError as exc:
                typer.echo(f"--case: {exc}", err=True)
                raise typer.Exit(2) from None
        try:
            records = with_stores(
                database_url(url),
                lambda stores: stores.access.find(
                    case_id=case, subject_id=subject, actor=actor, since=start, until=end
                ),
            )
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
        # The projections are the event log's own: they take the pool the stores share.
        position = with_stores(database_url(url), lambda stores: rebuild(stores.pool))
        typer.echo(f"case views rebuilt up to global position {position}")

    @eventlog.command("project")
    def project_cmd(
        follow: bool = typer.Option(False, "--follow", help="Keep following new events until interrupted"),
        url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
    ) -> None:
        """Bring the case views up to date (and with --follow keep them so)."""

        async def work(stores: Stores) -> int:
            runner = ProjectionRunner(stores.pool)
            if not follow:
                return await runner.catch_up()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await runner.run(stop)
            return await runner.catch_up()

        position = with_stores(database_url(url), work)
        typer.echo(f"case views at global position {position}")

    @eventlog.command("forget-subject")
    def forget_cmd(
        subject: str = typer.Argument(..., help="Data subject id"),
        actor: str = typer.Option(..., "--actor", help="Who orders the erasure"),
        purpose: str = typer.Option("erasure request", "--purpose"),
        url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
    ) -> None:
        """Erase a person by subject id, as `sagsflow forget-subject --subject` does (the same erasure: data key,
        stored documents, intake records); their personal fields become unreadable for good; figures stay."""
        erasure = with_stores(
            database_url(url),
            lambda stores: stores.events.erase_subject(subject, actor=actor, purpose=purpose),
        )
        typer.echo(erasure_report(subject, erasure))
