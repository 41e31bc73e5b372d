"""`sagsflow forget-subject`: erase one person (the right to erasure, GDPR art. 17) from everything we store.

The person is named by their CPR number, read from a hidden prompt or from stdin, never from the command line:
process arguments are visible to every user of the machine (`ps`) and end up in shell history. `--subject` takes
the pseudonymous subject id instead (as `sagsflow access-log` shows it), which is no personal data.

What is erased, in one transaction of the event store (`EventStore.erase_subject`), with an access-log entry: the
subject's event-log key (crypto-shredding: every personal field of their events becomes unreadable for good, the
events and so the figures stay), the documents kommuner submitted for their cases, and their intake records.
Temporal keeps its own (encrypted) copies until its namespace retention removes closed workflows: see the README.
"""

from __future__ import annotations

import sys

import typer

from cli.eventlog import DATABASE_URL_HELP, database_url, erasure_report, with_stores
from domain.application import parse_cpr
from runtime.config import get_settings
from runtime.crypto import KeyRingError, load_or_create_secret, subject_id_for


def _subject_from_cpr(cpr: str) -> str:
    try:
        digits = parse_cpr(cpr.strip()).replace("-", "")
    except ValueError as exc:
        # parse_cpr's messages name the rule, never the number.
        typer.echo(f"CPR number: {exc}", err=True)
        raise typer.Exit(2) from None
    settings = get_settings()
    path = settings.subject_pepper_file or settings.data_dir / "subject-pepper"
    try:
        # Never created here: a new pepper would give a subject id no case has, and erase nothing.
        pepper = load_or_create_secret(path, create=False)
    except KeyRingError:
        typer.echo(
            f"no subject pepper at {path} (SAGSFLOW_SUBJECT_PEPPER_FILE / SAGSFLOW_DATA_DIR): the API's pepper is"
            " needed to find the person; or give --subject",
            err=True,
        )
        raise typer.Exit(2) from None
    return subject_id_for(digits, pepper)


def register(app: typer.Typer) -> None:
    @app.command("forget-subject")
    def forget_subject(
        actor: str = typer.Option(..., "--actor", help="Who orders the erasure (written to the access log)"),
        subject: str | None = typer.Option(
            None, "--subject", help="The subject id (subj-…, as `sagsflow access-log` shows it) instead of a CPR number"
        ),
        cpr_stdin: bool = typer.Option(
            False, "--cpr-stdin", help="Read the CPR number from the first line of stdin instead of a hidden prompt"
        ),
        yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation"),
        purpose: str = typer.Option("erasure request", "--purpose", help="Why (written to the access log)"),
        url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
    ) -> None:
        """Erase a person: their event-log key, stored documents and intake records, in one transaction.

        The CPR number is asked for with a hidden prompt (or read with --cpr-stdin), never taken as an argument."""
        if subject is not None and cpr_stdin:
            typer.echo("give --subject or --cpr-stdin, not both", err=True)
            raise typer.Exit(2)
        if subject is not None:
            subject_id = subject.strip()
            if not subject_id.startswith("subj-"):
                typer.echo("--subject: a subject id starts with subj- (a CPR number goes to the prompt)", err=True)
                raise typer.Exit(2)
        elif cpr_stdin:
            subject_id = _subject_from_cpr(sys.stdin.readline())
        else:
            subject_id = _subject_from_cpr(typer.prompt("CPR number", hide_input=True))
        if not yes:
            typer.confirm(
                f"Erase subject {subject_id}: their event-log key, stored documents and intake records, for good?",
                abort=True,
            )
        erasure = with_stores(
            database_url(url),
            lambda stores: stores.events.erase_subject(subject_id, actor=actor, purpose=purpose),
        )
        typer.echo(erasure_report(subject_id, erasure))
