"""Backtest of `sagsflow forecast` (#16 item 6): from each forum meeting of a simulated history, forecast the next
meeting and score the forecast against what the log then shows.

    python bench/forecast.py [--runs 1000] [--reference PATH]

The history is a kept simulation (`sagsflow simulate --name backtest16-regimes`, under $SAGSFLOW_DATA_DIR) of 61
weeks from 2021-01-01 at 300 applications a week with two regime changes: kommune 329 answers at half speed from
mid-June, and intake runs 30 % higher in the fourth quarter. The forecast knows nothing of them (it reads only the
log). The run is made with the real `sagsflow simulate` if it is missing or was made with other settings (about
25-45 minutes on 2 cores), and reused otherwise.

From each meeting date (1 March, June, September, December) with at least 8 weeks of log behind it and the next
meeting inside the log, the forecast is made as of that date and compared with the log at the next meeting:

- coverage of the 80 % intervals: the share of actual values inside [p10, p90], per figure (in total and for the five
  forum kommuner together) and per forum kommune (all figures); the target is 70-90 %;
- MdAPE (median absolute percentage error over the meetings) of the median of the total waiting backlog, against two
  naive forecasts: the last value carried forward, and the linear trend since the previous meeting (a quarter; from
  the log's start for the first), which the forecast must beat;
- the forecast's time for its runs (1,000 by default; the target is <= 5 s on this machine).

`--reference PATH` also scores another version of domain/forecast.py (e.g. `git show main:domain/forecast.py >
/tmp/forecast_main.py`) on the same states in the same run: its coverage, MdAPE and time, and the time ratio.

The last line of output is one JSON object with every score and timing.
"""

# ruff: noqa: E402 - the path fix below must run before the project imports
from __future__ import annotations

import sys
from pathlib import Path

# `python bench/forecast.py` puts bench/ first on sys.path, where bench/eventlog.py would shadow the eventlog package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import importlib.util
import json
import statistics
import subprocess
import time
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

from domain import forecast as model
from domain.calendar import local_date, start_of_day
from domain.kommuner import FORUM_KOMMUNER
from domain.state import CaseState
from eventlog.forecast import ForecastStore
from eventlog.store import create_pool
from runtime.config import get_settings
from sim.simulation import RUN_FILE, kept_event_log, kept_simulation

NAME = "backtest16-regimes"
START = "2021-01-01"
WEEKS = 61  # to a little past the meeting of 1 March 2022: four meetings to forecast from
RATE = 300.0
SEED = 16
REGIMES = ("2021-06-15:kommune=329:speed=0.5", "2021-10-01..2021-12-31:intake=1.3")
MIN_HISTORY = timedelta(weeks=8)
FORECAST_SEED = 1
TARGET_SECONDS = 5.0
COVERAGE_TARGET = (0.70, 0.90)
FIGURES = ("open_cases", "waiting", "waiting_share", "overdue", "decisions")
PLACES = ("", *FORUM_KOMMUNER)  # "" is the total


def ensure_simulation() -> Path:
    """The kept history, made with the real command if missing or made with other settings."""
    keep_in = kept_simulation(get_settings().data_dir, NAME)
    run_file = keep_in / RUN_FILE
    wanted = {"start": START, "weeks": WEEKS, "rate_per_week": RATE, "seed": SEED, "regimes": list(REGIMES)}
    if run_file.exists():
        run = json.loads(run_file.read_text())
        if all(run.get(k) == v for k, v in wanted.items()):
            print(f"reusing the kept simulation {NAME!r} ({run.get('cases_started')} cases)", flush=True)
            return keep_in
        print(f"the kept simulation {NAME!r} was made with other settings: making it again", flush=True)
    else:
        print(f"no simulation {NAME!r} is kept: making it (25-45 minutes)", flush=True)
    command = [
        str(Path(sys.executable).parent / "sagsflow"),
        "simulate",
        *("--start", START, "--weeks", str(WEEKS), "--rate", str(RATE), "--seed", str(SEED)),
        *("--name", NAME, "--replace", "--json"),
        *(arg for regime in REGIMES for arg in ("--regime", regime)),
    ]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return keep_in


def load_reference(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("forecast_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["forecast_reference"] = module
    spec.loader.exec_module(module)
    return module


def meetings(first: datetime, last: datetime) -> list[datetime]:
    """Forum meetings with 8 weeks of log behind them whose next meeting the log reaches."""
    out, m = [], model.next_forum_meeting(first)
    while model.next_forum_meeting(m) <= last:
        if m - first >= MIN_HISTORY:
            out.append(m)
        m = model.next_forum_meeting(m)
    return out


def _inside(band: dict[str, float], actual: float) -> bool:
    return band["p10"] <= actual <= band["p90"]


def _ape(forecast: float, actual: float) -> float:
    return abs(forecast - actual) / actual if actual else 0.0


def score(points: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Coverage and MdAPE of one model's forecasts (`key` in each point) against the actuals."""
    hits: dict[tuple[str, str], list[bool]] = {}
    for p in points:
        for place in PLACES:
            got = p[key]["total"] if place == "" else p[key]["kommuner"].get(place)
            actual = p["actual"].get(place, {})
            for name in FIGURES:
                if got is not None:
                    hits.setdefault((place, name), []).append(_inside(got[name], actual.get(name, 0)))

    def share(cells: list[bool]) -> float:
        return round(sum(cells) / len(cells), 3) if cells else 0.0

    per_figure_total = {n: share(hits.get(("", n), [])) for n in FIGURES}
    per_figure_forum = {n: share([h for k in FORUM_KOMMUNER for h in hits.get((k, n), [])]) for n in FIGURES}
    per_kommune = {k: share([h for n in FIGURES for h in hits.get((k, n), [])]) for k in FORUM_KOMMUNER}
    overall = share([h for cells in hits.values() for h in cells])
    mdape = statistics.median(_ape(p[key]["total"]["waiting"]["median"], p["actual"][""]["waiting"]) for p in points)
    return {
        "coverage": overall,
        "coverage_total_by_figure": per_figure_total,
        "coverage_forum_kommuner_by_figure": per_figure_forum,
        "coverage_by_forum_kommune": per_kommune,
        "waiting_mdape": round(mdape, 4),
        "seconds": [p[key + "_seconds"] for p in points],
    }


async def backtest(dsn: str, runs: int, reference: ModuleType | None) -> list[dict[str, Any]]:
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        store = ForecastStore(pool)
        async with pool.acquire() as conn:
            first = await conn.fetchval("SELECT min(occurred_at) FROM events")
        last = await store.last_event_at()
        assert first is not None and last is not None
        dates = meetings(first, last)
        folded: dict[datetime, list[CaseState]] = {}

        async def states(at: datetime) -> list[CaseState]:
            if at not in folded:
                folded[at] = (await store.states_as_of(at))[0]
            return folded[at]

        points = []
        for m in dates:
            to = model.next_forum_meeting(m)
            now = await states(m)
            snap, params = model.snapshot(now, m), model.estimate(now, m)
            clock = time.perf_counter()
            result = model.forecast(snap, params, to, runs=runs, seed=FORECAST_SEED)
            seconds = time.perf_counter() - clock
            actual = model.observed(await states(to), m, to)
            # The naive forecasts of the waiting backlog: carried forward, and the trend since the last meeting.
            waiting_now = model.observed(now, m, m).get("", {}).get("waiting", 0)
            before = max(first, _previous_meeting(m))
            waiting_before = model.observed(await states(before), before, before).get("", {}).get("waiting", 0)
            trend = waiting_now + (waiting_now - waiting_before) * ((to - m) / (m - before))
            point: dict[str, Any] = {
                "as_of": local_date(m).isoformat(),
                "to": local_date(to).isoformat(),
                "open_at_start": len(snap.cases),
                "model": result.as_dict(),
                "model_seconds": round(seconds, 3),
                "actual": actual,
                "naive_last": waiting_now,
                "naive_trend": max(0.0, trend),
                "parameters": params.as_dict(),
            }
            if reference is not None:
                ref_snap, ref_params = reference.snapshot(now, m), reference.estimate(now, m)
                clock = time.perf_counter()
                ref = reference.forecast(ref_snap, ref_params, to, runs=runs, seed=FORECAST_SEED)
                point["reference_seconds"] = round(time.perf_counter() - clock, 3)
                point["reference"] = ref.as_dict()
            points.append(point)
            print(f"forecast from {local_date(m)} to {local_date(to)}: {seconds:.2f} s", flush=True)
        return points
    finally:
        await pool.close()


def _previous_meeting(m: datetime) -> datetime:
    """The meeting a quarter before `m` (the first of the month three months earlier)."""
    return start_of_day(local_date(m - timedelta(days=80)).replace(day=1))


def print_table(points: list[dict[str, Any]], scores: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    table = Table(title="Total waiting backlog at the next meeting: forecast median (80 % interval) against actual")
    for column in ("from", "to", "open at start", "forecast", "actual", "last value", "trend", "seconds"):
        table.add_column(column, justify="right")
    for p in points:
        w = p["model"]["total"]["waiting"]
        table.add_row(
            p["as_of"],
            p["to"],
            str(p["open_at_start"]),
            f"{w['median']:g} ({w['p10']:g}-{w['p90']:g})",
            f"{p['actual']['']['waiting']:g}",
            f"{p['naive_last']:g}",
            f"{p['naive_trend']:.0f}",
            f"{p['model_seconds']:.2f}",
        )
    console.print(table)
    cover = Table(title="Coverage of the 80 % intervals (target 70-90 %)")
    cover.add_column("figure")
    cover.add_column("total", justify="right")
    cover.add_column("forum kommuner", justify="right")
    model_scores = scores["model"]
    for name in FIGURES:
        cover.add_row(
            name,
            f"{model_scores['coverage_total_by_figure'][name]:.0%}",
            f"{model_scores['coverage_forum_kommuner_by_figure'][name]:.0%}",
        )
    console.print(cover)
    console.print(
        "per forum kommune: "
        + ", ".join(f"{k} {v:.0%}" for k, v in model_scores["coverage_by_forum_kommune"].items())
        + f"; all: {model_scores['coverage']:.0%}"
    )
    console.print(
        f"MdAPE of the total waiting backlog: forecast {scores['model']['waiting_mdape']:.1%}, last value"
        f" {scores['naive_last_mdape']:.1%}, trend {scores['naive_trend_mdape']:.1%}"
        + (f", reference {scores['reference']['waiting_mdape']:.1%}" if "reference" in scores else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--reference", help="another domain/forecast.py to score beside this one")
    args = parser.parse_args()
    reference = load_reference(args.reference) if args.reference else None
    keep_in = ensure_simulation()

    async def run() -> list[dict[str, Any]]:
        async with kept_event_log(keep_in) as dsn:
            return await backtest(dsn, args.runs, reference)

    points = asyncio.run(run())
    if not points:
        raise SystemExit("no forum meeting with 8 weeks of log behind it and the next inside the log")

    def naive_mdape(key: str) -> float:
        return round(statistics.median(_ape(p[key], p["actual"][""]["waiting"]) for p in points), 4)

    scores: dict[str, Any] = {
        "model": score(points, "model"),
        "naive_last_mdape": naive_mdape("naive_last"),
        "naive_trend_mdape": naive_mdape("naive_trend"),
    }
    if reference is not None:
        scores["reference"] = score(points, "reference")
        ratio = sum(p["reference_seconds"] for p in points) / sum(p["model_seconds"] for p in points)
        scores["reference"]["time_ratio_reference_over_model"] = round(ratio, 2)
    print_table(points, scores)
    model_scores = scores["model"]
    result = {
        "bench": "forecast",
        "simulation": {"name": NAME, "start": START, "weeks": WEEKS, "rate": RATE, "seed": SEED, "regimes": REGIMES},
        "runs": args.runs,
        "meetings": [p["as_of"] for p in points],
        "open_at_start": [p["open_at_start"] for p in points],
        **scores,
        "coverage_in_target": COVERAGE_TARGET[0] <= model_scores["coverage"] <= COVERAGE_TARGET[1],
        "beats_naive": model_scores["waiting_mdape"] < min(scores["naive_last_mdape"], scores["naive_trend_mdape"]),
        "max_seconds": max(model_scores["seconds"]),
        "target_seconds": TARGET_SECONDS,
        "waiting": [
            {
                "as_of": p["as_of"],
                "forecast": p["model"]["total"]["waiting"],
                "actual": p["actual"][""]["waiting"],
                "last": p["naive_last"],
                "trend": round(p["naive_trend"], 1),
            }
            for p in points
        ],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
