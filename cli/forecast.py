"""`sagsflow forecast`: the backlog at the next forum meeting, forecast from the event log as of a date (issue #16)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from cli.report import on_log

if TYPE_CHECKING:
    from domain.forecast import Figures, Forecast
    from eventlog.forecast import ForecastInput


def register(app: typer.Typer) -> None:
    @app.command("forecast")
    def forecast_command(
        as_of: str | None = typer.Option(
            None,
            "--as-of",
            help="Forecast from the log as it stood then (a day, 2021-03-01, or an instant with an offset); default"
            " now, or the end of a kept simulation's log",
        ),
        to: str | None = typer.Option(
            None, "--to", help="The date to forecast (default: the next forum meeting, 1 March/June/Sept/Dec)"
        ),
        runs: int = typer.Option(1000, "--runs", min=1, max=100_000, help="Simulated futures"),
        seed: int = typer.Option(1, "--seed", help="The same seed gives the same forecast"),
        what_if: list[str] = typer.Option(
            [],
            "--what-if",
            help="A change to forecast beside the baseline: intake=1.3, kommune=329:speed=1.5, decision-capacity=0.8"
            " (repeat to combine them into one scenario)",
        ),
        json_out: bool = typer.Option(False, "--json", help="One JSON object instead of tables"),
        simulation: str | None = typer.Option(
            None, "--simulation", help="From the log of this kept simulation run (`sagsflow simulate --list`)"
        ),
    ) -> None:
        """Open cases, cases waiting on a kommune, the waiting share, overdue tasks and decisions at a future date,
        per kommune and in total, as a median and an 80 % interval, with the weekly path there."""
        from domain.forecast import parse_what_if
        from eventlog.forecast import TargetNotAfterStart, run_forecast

        start = _when("--as-of", as_of)
        target = _when("--to", to)
        try:
            scenario = parse_what_if(what_if) if what_if else None
        except ValueError as exc:
            typer.echo(f"--what-if: {exc}", err=True)
            raise typer.Exit(2) from None
        # Now for the live log; a kept simulation's default is the end of its log.
        as_of_default = start or (datetime.now(UTC) if simulation is None else None)
        data: ForecastInput = on_log(simulation, lambda dsn: forecast_input(dsn, as_of_default))
        try:
            run = run_forecast(data, target, runs=runs, seed=seed, what_if=scenario)
        except TargetNotAfterStart as exc:
            typer.echo(f"--to: {exc}", err=True)
            raise typer.Exit(2) from None
        if json_out:
            typer.echo(json.dumps(run.as_dict()))
            return
        print_forecast([run.baseline] if run.what_if is None else [run.baseline, run.what_if], data)

    _ = forecast_command


def _when(option: str, text: str | None) -> datetime | None:
    from domain.forecast import parse_day_or_instant

    if text is None:
        return None
    try:
        return parse_day_or_instant(text)
    except ValueError:
        typer.echo(f"{option}: expected a day (2021-03-01) or an instant with an offset", err=True)
        raise typer.Exit(2) from None


async def forecast_input(dsn: str, as_of: datetime | None) -> ForecastInput:
    """The forecast's input from the log at `dsn` as of an instant (None: the log's last event, so that a finished
    simulated history is forecast from where it stops)."""
    from eventlog.forecast import ForecastStore
    from eventlog.store import create_pool

    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        store = ForecastStore(pool)
        if as_of is None:
            as_of = await store.last_event_at() or datetime.now(UTC)
        return await store.read(as_of)
    finally:
        await pool.close()


def _cell(figures: Figures, name: str) -> str:
    b = getattr(figures, name)
    if name == "waiting_share":
        return f"{100 * b.median:.0f} % ({100 * b.p10:.0f}–{100 * b.p90:.0f})"
    return f"{b.median:g} ({b.p10:g}–{b.p90:g})"


def print_forecast(results: list[Forecast], data: ForecastInput) -> None:
    from rich.console import Console
    from rich.table import Table

    from domain.calendar import local_date
    from domain.forecast import FIGURES
    from domain.kommuner import FORUM_KOMMUNER

    base = results[0]
    console = Console()
    console.print(
        f"Forecast from {base.as_of.isoformat()} to {base.to.isoformat()}: {base.runs} runs, seed {base.seed},"
        f" {data.events_read} events read. Median (10th–90th percentile)."
    )
    caution = data.caution()
    if caution is not None:
        console.print(f"[yellow]Caution: {caution}.[/yellow]")
    totals = Table(title="In total")
    totals.add_column("figure")
    totals.add_column("now", justify="right")
    for result in results:
        totals.add_column(result.what_if.label, justify="right")
    for name in FIGURES:
        now = base.start.get(name)
        shown = "" if now is None else (f"{100 * now:.0f} %" if name == "waiting_share" else f"{now:g}")
        totals.add_row(name.replace("_", " "), shown, *(_cell(r.total, name) for r in results))
    console.print(totals)

    kommuner = Table(title="Per kommune (the forum kommuner and the five with the largest waiting backlog)")
    kommuner.add_column("kommune")
    for result in results:
        for name in ("waiting", "open_cases", "overdue"):
            kommuner.add_column(f"{name.replace('_', ' ')} [{result.what_if.label}]", justify="right")
    largest = sorted(base.kommuner, key=lambda k: -base.kommuner[k].waiting.median)[:5]
    for kode in [*FORUM_KOMMUNER, *(k for k in largest if k not in FORUM_KOMMUNER)]:
        kommuner.add_row(
            kode,
            *(_cell(r.kommuner[kode], n) for r in results for n in ("waiting", "open_cases", "overdue")),
        )
    console.print(kommuner)

    path = Table(title="Weekly path (in total)")
    path.add_column("week ending")
    for result in results:
        for name in ("waiting", "waiting_share"):
            path.add_column(f"{name.replace('_', ' ')} [{result.what_if.label}]", justify="right")
    for i, (at, _) in enumerate(base.path):
        path.add_row(
            local_date(at).isoformat(), *(_cell(r.path[i][1], n) for r in results for n in ("waiting", "waiting_share"))
        )
    console.print(path)
