"""Benchmark: N cases through the whole lifecycle on the Temporal dev server, against a bare workflow pair of the
same shape in the same run.

Ours: CaseWorkflow + OplysningTaskWorkflow with the real event log (embedded PostgreSQL), pre-screening, delivery,
notices and Digital Post (test doubles); the kommune answers (final submission) as soon as the task is delivered,
and the caseworker decides as soon as the case is ready.
Bare: a parent/child pair with the same activities (the same ones local and remote), the same updates and the same
child, doing nothing. Same server, same worker settings, same drivers.

    python bench/lifecycle.py [N]        (default N=100)

The last line is one JSON object with both rates and the ratio (target: ours >= 0.8 x bare).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import activity, workflow

from workflows.search_attributes import REGISTRATION

# Only what the sandbox can re-import lives at the top: this module defines workflows (the bare pair), and the
# sandbox imports it again for every run. Servers, drivers and our workflows are imported in main().

NOOP_LOCAL = "bare_noop_local"
NOOP = "bare_noop"
BARE_DELIVER = "bare_deliver"


class BareTaskInput(BaseModel):
    case_id: str
    task_id: str


class BareSubmit(BaseModel):
    submission_id: str
    final: bool = True


class BareDecision(BaseModel):
    request_id: str


@activity.defn(name=NOOP_LOCAL)
async def bare_noop_local(arg: str) -> str:
    return arg


@activity.defn(name=NOOP)
async def bare_noop(arg: str) -> str:
    return arg


BARE_DELIVERIES: asyncio.Queue[str] = asyncio.Queue()


@activity.defn(name=BARE_DELIVER)
async def bare_deliver(case_and_task: str) -> str:
    BARE_DELIVERIES.put_nowait(case_and_task)
    return case_and_task


def _local(arg: str) -> Awaitable[str]:
    return workflow.execute_local_activity(
        NOOP_LOCAL, arg, result_type=str, start_to_close_timeout=timedelta(seconds=30)
    )


def _remote(name: str, arg: str) -> Awaitable[str]:
    return workflow.execute_activity(name, arg, result_type=str, start_to_close_timeout=timedelta(seconds=30))


@workflow.defn(name="BareTaskWorkflow")
class BareTaskWorkflow:
    """Mirrors the task: delivery + its append in the background, one update with one append (all remote)."""

    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self, inp: BareTaskInput) -> str:
        async def deliver() -> None:
            await _remote(BARE_DELIVER, f"{inp.case_id} {inp.task_id}")
            await _remote(NOOP, "append delivered")

        delivery = asyncio.create_task(deliver())
        await workflow.wait_condition(lambda: self.done)
        await delivery
        await workflow.wait_condition(workflow.all_handlers_finished)
        return "completed"

    @workflow.update
    async def submit_part(self, request: BareSubmit) -> str:
        await _remote(NOOP, request.submission_id)  # append
        self.done = True
        return "ok"

    @submit_part.validator
    def _check(self, request: BareSubmit) -> None:
        if self.done:
            raise ValueError("done")


@workflow.defn(name="BareCaseWorkflow")
class BareCaseWorkflow:
    """Mirrors the case: prescreen (local) + append, a child, one update with one append, Digital Post and kommune
    notice, a last append (all but the prescreen remote, as ours)."""

    def __init__(self) -> None:
        self.ready = False
        self.decided = False

    @workflow.run
    async def run(self, case_id: str) -> str:
        await _local("prescreen")
        await _remote(NOOP, "append")
        task_id = str(workflow.uuid4())
        await workflow.execute_child_workflow(
            BareTaskWorkflow.run, BareTaskInput(case_id=case_id, task_id=task_id), id=f"bare-task-{task_id}"
        )
        self.ready = True
        await workflow.wait_condition(lambda: self.decided)
        await _remote(NOOP, "letter")
        await _remote(NOOP, "notice")
        await _remote(NOOP, "append")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return "closed"

    @workflow.update
    async def decide(self, request: BareDecision) -> str:
        await _remote(NOOP, request.request_id)  # append
        self.decided = True
        return "ok"

    @decide.validator
    def _check(self, request: BareDecision) -> None:
        if not self.ready:
            raise ValueError("cannot decide: the case is awaiting_kommune")


@dataclass
class Phase:
    name: str
    n: int
    seconds: float
    cpu: dict[str, float]  # CPU seconds per process group during the phase

    @property
    def rate(self) -> float:
        return self.n / self.seconds


ROUNDS = 4
REFUSED: dict[str, int] = {"bare": 0, "ours": 0}
RETRIED: dict[str, int] = {"bare": 0, "ours": 0}
histories: dict[str, tuple[str, str]] = {}


async def retry_while_not_ready(call: Callable[[], Awaitable[Any]], phase: str) -> Any:
    from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
    from temporalio.service import RPCError

    while True:
        try:
            return await call()
        except WorkflowUpdateFailedError as exc:
            # Refused while the case is still on its way to ready_for_decision (new, received, prescreened,
            # awaiting_kommune): the caseworker tries again, as a worklist would.
            if "cannot decide: the case is" not in str(exc.cause):
                raise
            REFUSED[phase] += 1
        except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError):
            # Under load the server may drop the workflow task that carries an update (WorkflowNotReady) or the
            # call times out: a client retries, and the idempotency key makes that safe.
            RETRIED[phase] += 1
        await asyncio.sleep(0.05)


async def main(n: int) -> dict[str, Any]:
    import shutil
    import tempfile
    from datetime import UTC, datetime
    from pathlib import Path

    from temporalio.client import Client

    from domain.application import Application
    from eventlog.migrate import migrate_dsn
    from eventlog.store import EventStore, create_pool
    from runtime.crypto import KeyRing
    from runtime.embedded import EmbeddedPostgres, TemporalDevServer, free_port
    from runtime.temporal import data_converter
    from tests.doubles import FakeDigitalPost, FakeKommuneChannel
    from workers.worker import build_worker
    from workflows.case import CaseWorkflow
    from workflows.client import start_case
    from workflows.models import CaseInput, DecisionRequest, SubmitPartRequest, task_workflow_id
    from workflows.task import OplysningTaskWorkflow

    app = Application.model_validate(
        {
            "case_type": "seniorpension",
            "applicant": {"cpr": "010357-1234", "name": "Benchmark"},
            "kommune_kode": "329",
            "received_on": "2021-09-24",
            "employment": [{"start": "1985-01-01", "end": None, "weekly_hours": 37}],
            "current_attachment": {"status": "working", "since": "1985-01-01"},
            "declared_weekly_work_capacity_hours": 10,
            "latest_job_months": 60,
        }
    )

    history_events: dict[str, int] = {}
    root = Path(tempfile.mkdtemp(prefix="sagsflow-bench-"))
    postgres = EmbeddedPostgres(root / "pg", free_port(), log_file=root / "postgres.log")
    temporal = TemporalDevServer(search_attributes=REGISTRATION, port=free_port(), log_file=root / "temporal.log")
    postgres.start()
    temporal.start()
    try:
        await migrate_dsn(postgres.url)
        client = await Client.connect(temporal.address, data_converter=data_converter(KeyRing.generate("bench")))
        pool = await create_pool(postgres.url, max_size=10)
        kommune = FakeKommuneChannel()
        queue = "bench"
        worker = build_worker(
            client,
            pool,
            task_queue=queue,
            kommune=kommune,
            digital_post=FakeDigitalPost(),
            workflows=[BareCaseWorkflow, BareTaskWorkflow],
            activities=[bare_noop_local, bare_noop, bare_deliver],
        )

        async def run_phase(
            name: str,
            count: int,
            start: Callable[[str], Awaitable[Any]],
            deliveries: Callable[[], Awaitable[tuple[str, str]]],
            answer: Callable[[str], Awaitable[Any]],
            decide: Callable[[Any], Awaitable[Any]],
        ) -> Phase:
            """Start `count` cases at once. The kommune answers each task as soon as it is delivered; the caseworker
            decides once the kommune has answered (retrying while the case takes the stream back)."""
            answered: dict[str, asyncio.Event] = {}
            task_of: dict[str, str] = {}

            async def kommune() -> None:
                async def one_answer(case_id: str, task_id: str) -> None:
                    task_of[case_id] = task_id
                    await retry_while_not_ready(lambda: answer(task_id), name)
                    answered[case_id].set()

                async with asyncio.TaskGroup() as group:
                    for _ in range(count):
                        group.create_task(one_answer(*(await deliveries())))

            async def one_case() -> None:
                case_id = str(uuid.uuid4())
                answered[case_id] = asyncio.Event()
                handle = await start(case_id)
                await answered[case_id].wait()
                await retry_while_not_ready(lambda: decide(handle), name)
                await handle.result()
                histories[name] = (handle.id, task_of[case_id])

            began = time.perf_counter()
            async with asyncio.TaskGroup() as group:
                group.create_task(kommune())
                for _ in range(count):
                    group.create_task(one_case())
            return Phase(name, count, time.perf_counter() - began, {})

        # Business time 2021, when the applicant below is in the seniorpension window.
        offset = (datetime(2021, 9, 24, 7, 0, tzinfo=UTC) - datetime.now(UTC)).total_seconds()

        async def start_ours(case_id: str) -> Any:
            inp = CaseInput(case_id=case_id, subject_id="bench", application=app, business_clock_offset_seconds=offset)
            return await start_case(client, inp, task_queue=queue)

        async def ours_delivery() -> tuple[str, str]:
            task = await kommune.deliveries.get()
            return task.case_id, task.task_id

        async def ours_answer(task_id: str) -> Any:
            task = client.get_workflow_handle_for(OplysningTaskWorkflow.run, task_workflow_id(task_id))
            final = SubmitPartRequest(kommune_kode="329", submission_id="s", document_ids=("d",), final=True)
            return await task.execute_update(OplysningTaskWorkflow.submit_part, final)

        async def ours_decide(handle: Any) -> Any:
            decision = DecisionRequest(request_id="d", outcome="granted", decided_by="bench")
            return await handle.execute_update(CaseWorkflow.decide, decision)

        async def ours(count: int) -> Phase:
            return await run_phase("ours", count, start_ours, ours_delivery, ours_answer, ours_decide)

        async def start_bare(case_id: str) -> Any:
            return await client.start_workflow(
                BareCaseWorkflow.run, case_id, id=f"bare-case-{case_id}", task_queue=queue
            )

        async def bare_delivery() -> tuple[str, str]:
            case_id, task_id = (await BARE_DELIVERIES.get()).split(" ")
            return case_id, task_id

        async def bare_answer(task_id: str) -> Any:
            task = client.get_workflow_handle_for(BareTaskWorkflow.run, f"bare-task-{task_id}")
            return await task.execute_update(BareTaskWorkflow.submit_part, BareSubmit(submission_id="s"))

        async def bare_decide(handle: Any) -> Any:
            return await handle.execute_update(BareCaseWorkflow.decide, BareDecision(request_id="d"))

        async def bare(count: int) -> Phase:
            return await run_phase("bare", count, start_bare, bare_delivery, bare_answer, bare_decide)

        from bench.processes import cpu_seconds

        assert temporal.proc is not None
        assert postgres.proc is not None
        # The worker runs in this process; the servers are its children and count in their own groups.
        groups = {"worker": [os.getpid()], "temporal": [temporal.proc.pid], "postgres": [postgres.proc.pid]}

        def cpu() -> dict[str, float]:
            return cpu_seconds(groups)

        async def measured(run: Callable[[int], Awaitable[Phase]], count: int) -> Phase:
            before = cpu()
            phase = await run(count)
            after = cpu()
            phase.cpu = {k: round(after[k] - before[k], 2) for k in after}
            return phase

        async with worker:
            await bare(5)  # warm-up: imports, sandbox, connections
            await ours(5)
            # Interleaved rounds (alternating which goes first), so load from elsewhere on the machine falls on
            # both alike; the rates are total cases over total time.
            totals = {"bare": Phase("bare", 0, 0.0, {}), "ours": Phase("ours", 0, 0.0, {})}
            per_round = max(1, n // ROUNDS)
            for r in range(ROUNDS):
                for run in (bare, ours) if r % 2 == 0 else (ours, bare):
                    phase = await measured(run, per_round)
                    total = totals[phase.name]
                    total.n += phase.n
                    total.seconds += phase.seconds
                    total.cpu = {k: total.cpu.get(k, 0.0) + v for k, v in phase.cpu.items()}
            bare_phase, ours_phase = totals["bare"], totals["ours"]
            for name, (case_wf, task_id) in histories.items():
                task_wf = f"bare-task-{task_id}" if name == "bare" else task_workflow_id(task_id)
                for wf in (case_wf, task_wf):
                    history = await client.get_workflow_handle(wf).fetch_history()
                    history_events[name] = history_events.get(name, 0) + len(history.events)
            # The event log must hold every event exactly once (a benchmark that loses events proves nothing).
            events = await EventStore(pool).read_all(limit=1_000_000)
            ids = [e.event.event_id for e in events]
            assert len(ids) == len(set(ids))
        await pool.close()
    finally:
        temporal.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)

    for phase in (bare_phase, ours_phase):
        print(
            f"{phase.name}: {phase.n} cases in {phase.seconds:.1f}s = {phase.rate:.2f} cases/s; CPU s: {phase.cpu}",
            flush=True,
        )
    return {
        "benchmark": "lifecycle",
        "n": bare_phase.n,
        "rounds": ROUNDS,
        "bare_cases_per_s": round(bare_phase.rate, 3),
        "ours_cases_per_s": round(ours_phase.rate, 3),
        "ratio": round(ours_phase.rate / bare_phase.rate, 3),
        "target_ratio": 0.8,
        "cpu_ms_per_case": {
            phase.name: {k: round(1000 * v / phase.n, 1) for k, v in phase.cpu.items()}
            for phase in (bare_phase, ours_phase)
        },
        "refused_decide_calls": REFUSED,
        "retried_update_calls": RETRIED,
        "history_events_per_case": history_events,
        "events_in_log": len(ids),
        "events_per_case": round(len(ids) / (ours_phase.n + 5), 2),
    }


if __name__ == "__main__":
    import logging
    import signal
    from pathlib import Path

    # Run as a script, bench/ comes first on sys.path, where bench/eventlog.py would shadow the eventlog package.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.path.insert(0, str(here.parent))

    logging.basicConfig(level=logging.WARNING)
    # SIGTERM unwinds like Ctrl-C, so the servers this run started are stopped (the finally in main()).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    figures = asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100))
    print(json.dumps(figures))
