"""`sagsflow prescreen APPLICATION.json [--json]`: the formal pre-screening of one application, explained.

The file holds personal data, so nothing read from it is ever echoed in an error: a bad file gets the field's path
and what is wrong with it (e.g. `applicant.cpr: CPR number must be 10 digits`), exit code 2, no traceback.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from domain import prescreen as rules
from domain.application import Application
from domain.boundary import describe
from domain.prescreen import PreScreening
from runtime.logs import mask_cpr

EXIT_BAD_INPUT = 2
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_OUTCOME_STYLE = {"met": "green", "not_met": "red", "needs_assessment": "yellow"}
_VERDICT_TEXT = {
    "dispatch": "dispatch: formal conditions look met; send to the kommune",
    "formal_rejection": "formal_rejection: a formal condition is not met",
    "needs_assessment": "needs_assessment: dispatch, and a caseworker must weigh the factors below",
}


class BadInput(Exception):
    """A problem with the input file, described without any of its content."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def _loc_text(loc: tuple[int | str, ...]) -> str:
    # Keys come from the file: show them only when they look like field names, never a value-like key.
    parts = [str(p) if isinstance(p, int) or _FIELD_NAME.match(p) else "<key>" for p in loc]
    return ".".join(parts) or "(document)"


def _message(error: Any) -> str:
    msg = describe(error) if "msg" in error else "invalid"
    value = error.get("input")
    # Belt and braces: pydantic's messages do not quote the input, but a message that somehow does must not leak.
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value)
        if len(text) >= 2 and text in msg:
            msg = msg.replace(text, "<value>")
    return str(mask_cpr(msg))


def field_errors(exc: ValidationError) -> list[str]:
    return [f"{_loc_text(e['loc'])}: {_message(e)}" for e in exc.errors(include_url=False)]


def load_application(path: Path) -> Application:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadInput([f"{path}: no such file"]) from None
    except IsADirectoryError:
        raise BadInput([f"{path}: is a directory, expected an application JSON file"]) from None
    except OSError as exc:
        raise BadInput([f"{path}: cannot be read ({exc.strerror or 'I/O error'})"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput([f"{path}: not UTF-8 text"]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # exc.msg is the parser's own wording ("Expecting ',' delimiter"); the document is never quoted.
        raise BadInput([f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"]) from None
    except RecursionError:
        raise BadInput([f"{path}: malformed JSON: nested too deeply"]) from None
    try:
        return Application.model_validate(data)
    except ValidationError as exc:
        raise BadInput([f"{path}: not a valid application:", *(f"  {line}" for line in field_errors(exc))]) from None


def render(result: PreScreening, console: Console) -> None:
    verdict = result.verdict.value
    style = {"dispatch": "green", "formal_rejection": "red"}.get(verdict, "yellow")
    console.print(f"Verdict: [bold {style}]{_VERDICT_TEXT[verdict]}[/]")
    console.print(f"Case type: {result.case_type.value}; screened as of {result.screened_on.isoformat()}")
    table = Table(show_lines=True)
    table.add_column("rule", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    table.add_column("reason", ratio=3)
    table.add_column("source", ratio=2)
    table.add_column("factors to weigh", ratio=2)
    for r in result.results:
        outcome = r.outcome if r.formal else f"{r.outcome}\n(not formal)"
        table.add_row(
            r.rule,
            f"[{_OUTCOME_STYLE[r.outcome]}]{outcome}[/]",
            r.reason,
            r.source,
            "\n".join(f"- {f}" for f in r.factors),
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    @app.command()
    def prescreen(
        path: Path = typer.Argument(..., metavar="APPLICATION.json", help="The application as JSON"),
        json_output: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table"),
        on: str | None = typer.Option(
            None, "--on", metavar="YYYY-MM-DD", help="Screen as of this day (default: the day received)"
        ),
    ) -> None:
        """Formal pre-screening of one application: the verdict and every rule with its reason and source."""
        err = Console(stderr=True)
        try:
            as_of = date.fromisoformat(on) if on is not None else None
        except ValueError:
            err.print("--on: must be a date, YYYY-MM-DD", markup=False, highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        try:
            application = load_application(path)
        except BadInput as exc:
            for line in exc.lines:
                err.print(line, markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        result = rules.prescreen(application, on=as_of)
        if json_output:
            typer.echo(json.dumps(result.model_dump(mode="json"), ensure_ascii=False, indent=2))
        else:
            render(result, Console())
