"""Benchmark: `sagsflow simulate` (default: the whole year, 52 weeks at 300/week), against bare workflows.

Ours: WEEKS simulated weeks at RATE applications/week through the real workflows on time-skipping servers (SHARDS
of them, JOBS at a time; 0: `sagsflow simulate`'s defaults) with the real event log (embedded PostgreSQL), exactly as
`sagsflow simulate` runs them. Bare: as many no-op workflows as ours started cases, each with one activity, on one
fresh time-skipping server with the same worker settings, in the same run. The ratio is wall seconds, ours over bare.

A run shorter than a year is front-loaded with cheap work (most tasks still wait on kommuner after a few weeks), so
its year is extrapolated by events: wall seconds per event written x the events a year writes (cases x events per
closed, non-formal case, measured here, 14 if none closed); the naive weeks ratio is printed beside it.

    python bench/simulate.py [WEEKS] [RATE] [SHARDS] [JOBS]

Then, apart from the timed run, a short one (PROBE_WEEKS at PROBE_RATE, one shard in this process, its test server
kept open afterwards) counts from the histories what each closed case cost the server and the worker: workflow
tasks, activities, updates, signals and timers, for the case workflow and its task workflows (`per_closed_case`).
Those are the round trips the simulated year is made of (issue #18, item 3).

The last line is one JSON object with every figure (target: 52 weeks at 300/week in <= 600 s on 2 cores).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

# Only what the sandbox can re-import lives at the top: this module defines the bare workflow.

TARGET_SECONDS = 600.0
YEAR_WEEKS = 52
PROBE_WEEKS = 8
PROBE_RATE = 150.0


@activity.defn(name="bare_sim_noop")
async def bare_noop(arg: str) -> str:
    return arg


@workflow.defn(name="BareSimWorkflow")
class BareSimWorkflow:
    @workflow.run
    async def run(self, arg: str) -> str:
        result: str = await workflow.execute_activity(
            "bare_sim_noop", arg, result_type=str, start_to_close_timeout=timedelta(seconds=30)
        )
        return result


def _cpu_seconds() -> float:
    """CPU of this process and of every process it started and has reaped (shard processes and their test
    servers), so call it after the run. The embedded PostgreSQL runs apart and is not counted."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


async def main(weeks: int, rate: float, shards: int, jobs: int) -> dict[str, Any]:
    from datetime import date

    from temporalio.worker import Worker

    from sim.shards import SIM_WORKER_OPTIONS, run_simulation, start_test_server
    from sim.simulation import SimulationOptions, event_log
    from workers.worker import build_worker

    options = SimulationOptions(
        start=date(2021, 1, 1), weeks=weeks, rate_per_week=rate, seed=1, shards=shards, jobs=jobs
    )
    marks = [0.0]
    began = time.perf_counter()

    def progress(days: float) -> None:
        if days >= marks[-1] + 7 * 4:
            marks.append(days)
            print(f"week {days / 7:.0f}: {time.perf_counter() - began:.0f}s", flush=True)

    async with event_log(None) as dsn:
        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        summary = await run_simulation(options, worker=build_worker, database_url=dsn, progress=progress)
        ours_s, ours_cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
        print(f"ours: {ours_s:.1f}s wall, {ours_cpu:.1f}s CPU, {summary.shards} shards", flush=True)
        closed_lifecycle = await _events_per_closed_case(dsn)

    n = summary.cases_started
    env = await start_test_server("bench")
    try:
        queue = f"bare-{uuid.uuid4().hex[:8]}"
        async with Worker(
            env.client, task_queue=queue, workflows=[BareSimWorkflow], activities=[bare_noop], **SIM_WORKER_OPTIONS
        ):
            await env.client.execute_workflow(BareSimWorkflow.run, "warm", id=f"{queue}-warm", task_queue=queue)
            cpu0, t0 = _cpu_seconds(), time.perf_counter()
            handles = [
                await env.client.start_workflow(BareSimWorkflow.run, str(i), id=f"{queue}-{i}", task_queue=queue)
                for i in range(n)
            ]
            # No time to skip, and concurrent result() calls would each unlock and re-lock the server's clock.
            with env.auto_time_skipping_disabled():
                await asyncio.gather(*(h.result() for h in handles))
            bare_s = time.perf_counter() - t0
    finally:
        await env.shutdown()
    bare_cpu = _cpu_seconds() - cpu0  # the bare server has been reaped now

    events_per_case = closed_lifecycle or 14.0
    year_cases = rate * YEAR_WEEKS
    per_event = ours_s / max(summary.events_written, 1)
    year_by_events = per_event * year_cases * events_per_case
    year_by_weeks = ours_s * YEAR_WEEKS / weeks
    print(
        f"ours: {weeks} weeks x {rate:g}/week = {n} cases, {summary.events_written} events in {ours_s:.1f}s "
        f"(CPU {ours_cpu:.1f}s); bare: {n} workflows in {bare_s:.1f}s (CPU {bare_cpu:.1f}s)",
        flush=True,
    )
    if weeks < YEAR_WEEKS:
        print(
            f"year (52 x {rate:g}): {year_by_events:.0f}s by events ({events_per_case:.1f} events/case), "
            f"{year_by_weeks:.0f}s by weeks; target {TARGET_SECONDS:.0f}s",
            flush=True,
        )
    year_s = ours_s if weeks >= YEAR_WEEKS else year_by_events
    per_case = await _history_per_closed_case(PROBE_WEEKS, PROBE_RATE)
    print(f"per closed case (probe, {PROBE_WEEKS} weeks x {PROBE_RATE:g}/week): {per_case}", flush=True)
    return {
        "benchmark": "simulate",
        "weeks": weeks,
        "rate_per_week": rate,
        "shards": summary.shards,
        "jobs": options.job_count,
        "cases": n,
        "events_written": summary.events_written,
        "tasks_delivered": summary.tasks_delivered,
        "decided": summary.decided,
        "open_waiting_on_kommune_share": summary.as_dict()["open_waiting_on_kommune_share"],
        "ours_wall_s": round(ours_s, 2),
        "ours_cpu_s": round(ours_cpu, 2),
        "bare_wall_s": round(bare_s, 2),
        "bare_cpu_s": round(bare_cpu, 2),
        "ours_ms_per_case": round(1000 * ours_s / max(n, 1), 1),
        "bare_ms_per_case": round(1000 * bare_s / max(n, 1), 1),
        "ratio_ours_over_bare": round(ours_s / bare_s, 2) if bare_s else None,
        "ms_per_event": round(1000 * per_event, 2),
        "events_per_closed_case": round(events_per_case, 2),
        "year_s": round(year_s),
        "year_measured": weeks >= YEAR_WEEKS,
        "target_s": TARGET_SECONDS,
        "meets_target": year_s <= TARGET_SECONDS,
        "max_late_s": summary.max_late_seconds,
        "weeks_at_s": marks,
        "per_closed_case": per_case,
    }


# Cases closed after a completed task (the common path), grouped by case_id: what both per-case figures average over.
_DECIDED_AFTER_A_TASK = "HAVING bool_or(type = 'CaseClosed') AND bool_or(type = 'OplysningCompleted')"

# What the probe counts, by history event: workflow tasks (completed), activities (scheduled), accepted updates,
# signals received and timers fired. A local activity (pre-screening) is a marker, not an activity.
_COUNTED = {
    "WORKFLOW_TASK_COMPLETED": "workflow_tasks",
    "ACTIVITY_TASK_SCHEDULED": "activities",
    "WORKFLOW_EXECUTION_UPDATE_ACCEPTED": "updates",
    "WORKFLOW_EXECUTION_SIGNALED": "signals",
    "TIMER_FIRED": "timers",
}


async def _history_per_closed_case(weeks: int, rate: float) -> dict[str, Any]:
    """Per case that was decided after a completed task (the common path), averaged: what its case workflow and its
    task workflows cost, from their histories on a small run's test server."""
    from collections import Counter
    from datetime import date

    import asyncpg
    from temporalio.api.enums.v1 import EventType

    from sim.shards import simulate_shard, start_test_server
    from sim.simulation import SimulationOptions, claim_run, event_log
    from workers.worker import build_worker
    from workflows.models import case_workflow_id, task_workflow_id

    options = SimulationOptions(start=date(2021, 1, 1), weeks=weeks, rate_per_week=rate, seed=2, shards=1, jobs=1)
    totals: Counter[str] = Counter()
    cases = 0
    async with event_log(None) as dsn:
        await claim_run(dsn, options)
        env = await start_test_server("bench-probe")
        try:
            await simulate_shard(options, dsn, worker=build_worker, env=env)
            conn = await asyncpg.connect(dsn)
            try:
                rows = await conn.fetch(
                    "SELECT case_id, array_agg(data->>'task_id') FILTER (WHERE type = 'OplysningRequested') AS tasks"
                    f" FROM events GROUP BY case_id {_DECIDED_AFTER_A_TASK}"
                )
            finally:
                await conn.close()
            for row in rows:
                workflows = [("case", case_workflow_id(row["case_id"]))]
                workflows += [("task", task_workflow_id(t)) for t in row["tasks"]]
                for kind, workflow_id in workflows:
                    history = await env.client.get_workflow_handle(workflow_id).fetch_history()
                    for event in history.events:
                        name = _COUNTED.get(EventType.Name(event.event_type).removeprefix("EVENT_TYPE_"))
                        if name:
                            totals[f"{kind}_{name}"] += 1
                totals["tasks"] += len(row["tasks"])
                cases += 1
        finally:
            await env.shutdown()
    out: dict[str, Any] = {"cases": cases}
    out.update({k: round(v / max(cases, 1), 2) for k, v in sorted(totals.items())})
    out["workflow_tasks"] = round(out.get("case_workflow_tasks", 0) + out.get("task_workflow_tasks", 0), 2)
    out["activities"] = round(out.get("case_activities", 0) + out.get("task_activities", 0), 2)
    return out


async def _events_per_closed_case(dsn: str) -> float | None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        value = await conn.fetchval(
            f"SELECT avg(n) FROM (SELECT case_id, count(*) AS n FROM events GROUP BY case_id {_DECIDED_AFTER_A_TASK})"
            " AS closed"
        )
    finally:
        await conn.close()
    return float(value) if value is not None else None


if __name__ == "__main__":
    import logging
    from pathlib import Path

    # Run as a script, bench/ comes first on sys.path, where bench/eventlog.py would shadow the eventlog package.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.path.insert(0, str(here.parent))

    logging.basicConfig(level=logging.ERROR)
    args = [*sys.argv[1:], "", "", "", ""]
    figures = asyncio.run(main(int(args[0] or 52), float(args[1] or 300.0), int(args[2] or 0), int(args[3] or 0)))
    print(json.dumps(figures))
