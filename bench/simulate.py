"""Benchmark: `sagsflow simulate` for a few weeks, extrapolated to a year, against bare workflows on the same server.

Ours: WEEKS simulated weeks at RATE applications/week (default 4 x 300) through the real workflows on the
time-skipping server with the real event log (embedded PostgreSQL), as `sagsflow simulate` runs them.
Bare: as many no-op workflows as ours started cases, each with one activity, on the same server, worker settings
and sandbox, in the same run. The ratio is wall seconds per case, ours over bare.

A short run is front-loaded with cheap work (most tasks are still waiting on kommuner after 4 weeks), so the year is
extrapolated by events, not weeks: wall seconds per event written x the events a year writes (cases x events per
closed, non-formal case, measured here, 14 if none closed), besides the naive weeks ratio.

    python bench/simulate.py [WEEKS] [RATE]

The last line is one JSON object with every figure (target: 52 weeks at 300/week in <= 900 s on 2 cores).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

# Only what the sandbox can re-import lives at the top: this module defines the bare workflow.

TARGET_SECONDS = 900.0
YEAR_WEEKS = 52


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


def _cpu_split(root: Any) -> dict[str, float]:
    """CPU seconds so far: this process (worker, activities, driver), the test server, PostgreSQL."""
    import psutil

    out = {"worker": 0.0, "test_server": 0.0, "postgres": 0.0}
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
            name = p.name()
        except psutil.NoSuchProcess:
            continue
        group = "worker" if p.pid == root.pid else "test_server" if "temporal" in name else "postgres"
        out[group] += t.user + t.system
    return out


def _cpu(root: Any) -> float:
    return sum(_cpu_split(root).values())


async def main(weeks: int, rate: float) -> dict[str, Any]:
    from datetime import date

    import psutil
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from sagsflow.crypto import KeyRing
    from sagsflow.embedded import venv_binary
    from sagsflow.temporal import data_converter
    from sim.simulation import SimulationOptions, event_log, summarise
    from workers.simulate_cmd import SIM_WORKER_OPTIONS, simulate_on

    options = SimulationOptions(start=date(2021, 1, 1), weeks=weeks, rate_per_week=rate, seed=1)
    me = psutil.Process()
    async with event_log(None) as dsn:
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=venv_binary("temporal-test-server"),
            test_server_extra_args=os.environ.get("SIM_SERVER_ARGS", "").split(),
            data_converter=data_converter(KeyRing.generate("bench")),
        )
        try:
            split0, t0 = _cpu_split(me), time.perf_counter()
            weekly: list[dict[str, float]] = []
            week_split, week_began = [split0], [t0]

            def progress(days: float) -> None:
                # Per-week CPU shows how the cost grows as the server accumulates workflows.
                if days % 7:
                    return
                now_split, now = _cpu_split(me), time.perf_counter()
                cpu = {k: round(now_split[k] - week_split[0][k], 1) for k in now_split}
                weekly.append(cpu | {"wall": round(now - week_began[0], 1)})
                week_split[0], week_began[0] = now_split, now
                print(f"week {int(days // 7)}: {weekly[-1]}", flush=True)

            summary = await simulate_on(env, dsn, options, progress)
            split1, ours_s = _cpu_split(me), time.perf_counter() - t0
            ours_split = {k: round(split1[k] - split0[k], 1) for k in split1}
            ours_cpu = sum(ours_split.values())
            print(f"ours: {ours_s:.1f}s wall, CPU s {ours_split}", flush=True)
            await summarise(dsn, options, summary)
            closed_lifecycle = await _events_per_closed_case(dsn)

            n = summary.cases_started
            queue = f"bare-{uuid.uuid4().hex[:8]}"
            async with Worker(
                env.client,
                task_queue=queue,
                workflows=[BareSimWorkflow],
                activities=[bare_noop],
                **SIM_WORKER_OPTIONS,
            ):
                await env.client.execute_workflow(BareSimWorkflow.run, "warm", id=f"{queue}-warm", task_queue=queue)
                cpu0, t0 = _cpu(me), time.perf_counter()
                handles = [
                    await env.client.start_workflow(BareSimWorkflow.run, str(i), id=f"{queue}-{i}", task_queue=queue)
                    for i in range(n)
                ]
                # No time to skip, and concurrent result() calls would each unlock and re-lock the server's clock.
                with env.auto_time_skipping_disabled():
                    await asyncio.gather(*(h.result() for h in handles))
                bare_s, bare_cpu = time.perf_counter() - t0, _cpu(me) - cpu0
        finally:
            await env.shutdown()

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
    print(
        f"year (52 x {rate:g}): {year_by_events:.0f}s by events ({events_per_case:.1f} events/case), "
        f"{year_by_weeks:.0f}s by weeks; target {TARGET_SECONDS:.0f}s",
        flush=True,
    )
    return {
        "benchmark": "simulate",
        "weeks": weeks,
        "rate_per_week": rate,
        "cases": n,
        "events_written": summary.events_written,
        "tasks_delivered": summary.tasks_delivered,
        "ours_wall_s": round(ours_s, 2),
        "ours_cpu_s": round(ours_cpu, 2),
        "ours_cpu_s_by_process": ours_split,
        "bare_wall_s": round(bare_s, 2),
        "bare_cpu_s": round(bare_cpu, 2),
        "ours_ms_per_case": round(1000 * ours_s / max(n, 1), 1),
        "bare_ms_per_case": round(1000 * bare_s / max(n, 1), 1),
        "ratio_ours_over_bare": round(ours_s / bare_s, 2) if bare_s else None,
        "ms_per_event": round(1000 * per_event, 2),
        "events_per_closed_case": round(events_per_case, 2),
        "year_estimate_s_by_events": round(year_by_events),
        "year_estimate_s_by_weeks": round(year_by_weeks),
        "target_s": TARGET_SECONDS,
        "meets_target": year_by_events <= TARGET_SECONDS,
        "max_arrival_late_s": summary.max_arrival_late_seconds,
        "weekly": weekly,
    }


async def _events_per_closed_case(dsn: str) -> float | None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        value = await conn.fetchval(
            "SELECT avg(n) FROM (SELECT case_id, count(*) AS n FROM events GROUP BY case_id"
            " HAVING bool_or(type = 'CaseClosed') AND bool_or(type = 'OplysningCompleted')) AS closed"
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
    args = sys.argv[1:]
    figures = asyncio.run(main(int(args[0]) if args else 4, float(args[1]) if len(args) > 1 else 300.0))
    print(json.dumps(figures))
