"""Chaos soak: N cases (default 1,000) through the real system on this machine while its parts are killed.

    .venv/bin/python bench/chaos.py [--cases N] [--seed S] [--arrival-seconds T] [--worker-kills K] ...

What runs, each a process of its own except the kommune simulator: a Temporal dev server on its SQLite file (a
restart keeps its state, as a cluster's persistence does), a PostgreSQL server, `sagsflow api`, two `sagsflow
worker`s, and the simulator of the 98 kommune systems (`sim.server`, served over HTTP in this process so its records
can be read at the end; most kommuner take pushes, a few poll their inbox). New cases run under the `chaos-1` SLA
policy (three months are twelve seconds), so reminders, escalations, extensions, returns and questions happen;
Seniorpension's side (here) decides cases (some go back for a supplementary round), answers the kommuner's
questions, decides extensions beyond the policy, and withdraws and moves some cases.

While it runs, a fault schedule drawn from the seed kills (SIGKILL) a worker at random moments and restarts it after
a random pause, and kills and restarts PostgreSQL and the Temporal server. Kommune systems answer 30% of pushes with
a 5xx, let 10% time out, send 5% of their answers twice with the same idempotency key and 2% twice with a new key
and the same content. Every caller (intake, Seniorpension, the kommune systems) retries 5xx and timeouts with the
same idempotency key.

At the end the checks (`check_*`, shared with tests/workflows/test_chaos.py) look from the outside: the event log,
the workflows' own state in Temporal, the projections and the backlog API against a fresh fold, and the simulator's
records. The last line printed is one JSON object; the exit code is non-zero if any case was lost, any event written
twice, or any invariant broken.
"""

# ruff: noqa: E402 - the path fix below must run before the project imports
from __future__ import annotations

import sys
from pathlib import Path

# `python bench/chaos.py` puts bench/ first on sys.path, where bench/eventlog.py would shadow the eventlog package;
# the repo root goes first instead, for the naive fold in tests/ (not an installed package).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import asyncpg
import httpx
import uvicorn
from temporalio.api.enums.v1 import EventType, WorkflowExecutionStatus
from temporalio.client import Client
from temporalio.service import RPCError

from domain.events import (
    CaseTransferred,
    DecisionMade,
    Event,
    ExtensionRequested,
    OplysningCancelled,
    OplysningPartReceived,
    OplysningRequested,
    OplysningReturned,
    OplysningTaskDelivered,
    QuestionAsked,
)
from eventlog import queries
from eventlog.migrate import migrate_dsn
from eventlog.store import EventStore, create_pool
from runtime.crypto import KeyRing
from runtime.embedded import EmbeddedPostgres, TemporalDevServer, free_port, venv_binary, wait_for_port
from runtime.identity import LOCAL_KEY_FILE, LocalIssuer
from runtime.kommune_config import derive_push_secret
from runtime.logs import configure_logging, contains_cpr
from runtime.temporal import data_converter
from sim.behaviour import rng_for
from sim.client import SagsflowApiClient
from sim.keys import provision_sim_keys
from sim.load import ApplicationFactory
from sim.profiles import default_profiles
from sim.server import ActionRecord, KommuneSimulator, SimSettings, create_sim_app
from tests.eventlog.naive import NaiveLog
from workflows.models import case_workflow_id
from workflows.replay import from_cluster, replay
from workflows.search_attributes import REGISTRATION

POLICY = "chaos-1"
# Model seconds per real second: the policy's twelve seconds stand for three months (about 91 days).
COMPRESSION = 91 * 86400 / 12
PUSH_TIMEOUT_SECONDS = 2.0
# Kommuner that poll their inbox (large ones, so a good share of the cases go that way); all others take pushes.
INBOX_KOMMUNER = ("101", "751", "461")
MOVE_TO = ("147", "851", "561", "101")  # where a moved citizen goes (a case is never moved to its own kommune)
RETRY_WITHIN = 300.0  # seconds a caller keeps retrying one request (same idempotency key) before it gives up
QUESTION_WORKLIST_EVERY = 10.0  # seconds between looks at the open kommune questions
QUESTION_WORKLIST_AFTER = 30.0  # a question open this long (recorded, unanswered, task open) is on the worklist
OPEN_KOMMUNE_QUESTIONS = """
SELECT q.data->>'task_id' AS task_id, q.data->>'question_id' AS question_id
FROM events q
WHERE q.type = 'QuestionAsked' AND q.data->>'asked_by' = 'kommune'
  AND q.recorded_at < now() - make_interval(secs => $1)
  AND NOT EXISTS (
    SELECT 1 FROM events a
    WHERE a.case_id = q.case_id AND a.type = 'QuestionAnswered' AND a.data->>'question_id' = q.data->>'question_id')
  AND NOT EXISTS (
    SELECT 1 FROM events t
    WHERE t.case_id = q.case_id AND t.type IN ('OplysningCompleted', 'OplysningReturned', 'OplysningCancelled')
      AND t.data->>'task_id' = q.data->>'task_id')
"""
P_SUPPLEMENTARY = 0.08
P_GRANTED = 0.65
P_GRANT_EXTENSION = 0.8
FaultKind = Literal["worker", "postgres", "temporal"]


@dataclass(frozen=True)
class ChaosOptions:
    cases: int = 1000
    seed: int = 1
    arrival_seconds: float = 0.0  # 0: cases / 3 (three applications a second)
    worker_kills: int = 20
    postgres_kills: int = 3
    temporal_kills: int = 3
    # After the last arrival and fault: how long the cases may take to close (the wait ends when all have). An hour:
    # a kommune message retries with backoff up to ten minutes, and with 40% of pushes failing one in a few thousand
    # is refused a dozen times in a row (seen at 1,000 cases: a decision notice that needed 13 tries, ~37 minutes).
    settle_seconds: float = 3600.0
    p_withdraw: float = 0.03
    p_move: float = 0.03
    push_5xx_rate: float = 0.30
    push_timeout_rate: float = 0.10
    repeat_same_key_rate: float = 0.05
    repeat_new_key_rate: float = 0.02
    as_of_samples: int = 20
    log_level: str = "INFO"

    @property
    def arrivals(self) -> float:
        return self.arrival_seconds or self.cases / 3

    @property
    def fault_window(self) -> tuple[float, float]:
        """Faults fall between the first seconds and a little after the last arrival, while cases are in flight."""
        return 2.0, self.arrivals + 10.0


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the start of the run
    kind: FaultKind
    pause: float  # seconds down before the restart
    target: int = 0  # which worker


def fault_schedule(options: ChaosOptions) -> list[Fault]:
    """Worker kills at random moments over the window; PostgreSQL and Temporal kills one at a time in slots of their
    own (never both down at once, so each restart is its own fault), in a seeded order."""
    rng = rng_for(options.seed, "faults")
    start, end = options.fault_window
    faults = [
        Fault(rng.uniform(start, end), "worker", rng.uniform(0.2, 3.0), rng.randrange(2))
        for _ in range(options.worker_kills)
    ]
    servers: list[FaultKind] = ["postgres"] * options.postgres_kills
    servers += ["temporal"] * options.temporal_kills
    rng.shuffle(servers)
    slot = (end - start) / max(1, len(servers))
    for i, kind in enumerate(servers):
        faults.append(Fault(start + slot * i + rng.uniform(0, slot * 0.5), kind, rng.uniform(0.5, 3.0)))
    return sorted(faults, key=lambda f: f.at)


# ---- what the parties outside the system recorded ----------------------------------------------------------------


@dataclass
class Outside:
    """Everything the callers know: the cases they filed, Seniorpension's calls and the simulator's records."""

    cases: dict[str, int] = field(default_factory=dict)  # case id -> application number
    intake_failed: int = 0
    decisions: dict[str, list[tuple[str, str, int | None]]] = field(default_factory=lambda: defaultdict(list))
    withdrawals: dict[str, int | None] = field(default_factory=dict)
    transfers: dict[str, int | None] = field(default_factory=dict)
    answers: dict[str, int | None] = field(default_factory=dict)  # question id -> status
    extension_decisions: dict[str, int | None] = field(default_factory=dict)
    retries: Counter[str] = field(default_factory=Counter)
    gave_up: Counter[str] = field(default_factory=Counter)
    sim_received: dict[str, str] = field(default_factory=dict)  # task id -> how it arrived (push / inbox)
    sim_plans: Counter[str] = field(default_factory=Counter)  # message id -> plans started
    sim_actions: list[ActionRecord] = field(default_factory=list)
    sim_retries: int = 0
    worker_deaths: int = 0  # workers that died without being killed, once up
    worker_start_refusals: int = 0  # restarts refused while a server was down (started again)
    database_down: list[tuple[float, float]] = field(default_factory=list)  # time.monotonic() kill .. restart began
    answered_from_worklist: int = 0  # kommune questions Seniorpension found open in its worklist, not told of


# ---- the system under test ---------------------------------------------------------------------------------------


class Proc:
    """`sagsflow <args>` in a process of its own, output appended to its log, killed without warning on demand."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_from = 0  # where this run's lines begin in the log

    def started(self, line: str) -> bool:
        """Whether this run of the process has logged `line` (e.g. that it is up)."""
        with self.log.open("rb") as fh:
            fh.seek(self.log_from)
            return line.encode() in fh.read()

    def start(self) -> None:
        self.log_from = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [venv_binary("sagsflow"), *self.args], env=self.env, stdout=out, stderr=out, start_new_session=True
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


class Stack:
    def __init__(self, root: Path, options: ChaosOptions) -> None:
        self.root = root
        self.options = options
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.postgres = EmbeddedPostgres(root / "pg", free_port(), log_file=self.logs / "postgres.log")
        self.temporal = TemporalDevServer(
            search_attributes=REGISTRATION,
            port=free_port(),
            db_file=root / "temporal.db",
            log_file=self.logs / "temporal.log",
        )
        self.ring = KeyRing.generate("chaos-1")
        self.api_port = free_port()
        self.sim_port = free_port()
        self.master = uuid.uuid4().hex + uuid.uuid4().hex
        self.api: Proc | None = None
        self.workers: list[Proc] = []

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self) -> dict[str, str]:
        key_file = self.root / "codec-keys.json"
        if not key_file.exists():
            key_file.write_text(self.ring.to_json())
        (self.root / "sim-push-secret").write_text(self.master)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGSFLOW_", "TEMPORAL_"))}
        env.pop("DATABASE_URL", None)
        env.update(
            TEMPORAL_ADDRESS=self.temporal.address,
            DATABASE_URL=self.postgres.url,
            SAGSFLOW_ENV="development",
            SAGSFLOW_DATA_DIR=str(self.root),
            SAGSFLOW_CODEC_KEY_FILE=str(key_file),
            SAGSFLOW_TASK_QUEUE="chaos",
            SAGSFLOW_SLA_POLICY=POLICY,
            SAGSFLOW_INBOX_KOMMUNER=",".join(INBOX_KOMMUNER),
            SAGSFLOW_SIM_URL=f"http://127.0.0.1:{self.sim_port}",
            SAGSFLOW_PUSH_TIMEOUT_SECONDS=str(PUSH_TIMEOUT_SECONDS),
            SAGSFLOW_PUSH_RATE_PER_SECOND="100",
            SAGSFLOW_PUSH_BURST="100",
            SAGSFLOW_API_PORT=str(self.api_port),
            SAGSFLOW_LOG_LEVEL=self.options.log_level,
            SAGSFLOW_LOG_FORMAT="json",
            SAGSFLOW_WORKER_METRICS_PORT="0",
        )
        return env

    async def start_servers(self) -> None:
        await asyncio.to_thread(self.postgres.start)
        await migrate_dsn(self.postgres.url)
        await asyncio.to_thread(self.temporal.start)

    async def start_processes(self, workers: int = 2) -> None:
        env = self.env()
        self.api = Proc(["api"], env, self.logs / "api.log")
        self.api.start()
        assert self.api.proc is not None
        await asyncio.to_thread(wait_for_port, self.api_port, self.api.proc, "sagsflow api", 90)
        self.workers = [Proc(["worker"], env, self.logs / f"worker-{i}.log") for i in range(workers)]
        for w in self.workers:
            w.start()
        # Applications wait for both workers to poll: a first case that waits half a minute for a worker still
        # importing on a loaded machine would only measure the start-up.
        deadline = time.monotonic() + 120
        while not all(w.started("worker started") for w in self.workers):
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not start within two minutes")
            await asyncio.sleep(0.5)

    def stop(self) -> None:
        for p in [*self.workers, *([self.api] if self.api else [])]:
            with contextlib.suppress(Exception):
                p.stop()
        for server in (self.temporal, self.postgres):
            with contextlib.suppress(Exception):
                server.stop()


# ---- the run -----------------------------------------------------------------------------------------------------


@dataclass
class ChaosResult:
    cases: int
    seed: int
    faults: dict[str, int]
    retries: dict[str, int]
    wall_seconds: float
    cases_lost: int
    events_duplicated: int
    invariant_violations: int
    violations: list[str]
    events: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    paths: dict[str, int] = field(default_factory=dict)
    histories_replayed: int = 0
    updates_refused_busy: int = 0
    questions_answered_from_worklist: int = 0

    @property
    def ok(self) -> bool:
        return self.cases_lost == 0 and self.events_duplicated == 0 and self.invariant_violations == 0

    def line(self) -> str:
        out = asdict(self)
        out["violations"] = self.violations[:20]
        return json.dumps(out, sort_keys=True)


class ChaosRun:
    def __init__(self, options: ChaosOptions, root: Path) -> None:
        self.options = options
        self.stack = Stack(root, options)
        self.outside = Outside()
        self.faults_done: Counter[str] = Counter()
        self.rng = random.Random(options.seed)
        self._tasks: set[asyncio.Task[None]] = set()
        self._deciding: set[str] = set()
        self._answering: set[str] = set()  # question ids Seniorpension has answered or is answering
        self._killed: set[int] = set()  # workers down by our hand, until their restart
        self.client: Client | None = None
        self.http: httpx.AsyncClient | None = None
        self.sim: KommuneSimulator | None = None
        self.staff_token = ""
        self.intake_token = ""

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- callers retry on 5xx and timeouts with the same idempotency key ----------------------------------------

    async def call(self, what: str, send: Callable[[], Awaitable[httpx.Response]]) -> int | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RETRY_WITHIN
        delay = 0.25
        while True:
            try:
                response = await send()
                if response.status_code < 500:
                    return response.status_code
            except httpx.TransportError:
                pass
            if loop.time() > deadline:
                self.outside.gave_up[what] += 1
                return None
            self.outside.retries[what] += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def ops(self, what: str, path: str, body: dict[str, Any]) -> int | None:
        assert self.http is not None
        http = self.http
        return await self.call(what, lambda: http.post(path, json=body))

    # -- citizens --------------------------------------------------------------------------------------------------

    async def intake(self) -> None:
        factory = ApplicationFactory(self.options.seed)
        gap = self.options.arrivals / max(1, self.options.cases)
        rng = rng_for(self.options.seed, "arrivals")
        loop = asyncio.get_running_loop()
        start = loop.time()
        at = 0.0
        for n in range(1, self.options.cases + 1):
            at += rng.expovariate(1.0 / gap)
            await asyncio.sleep(max(0.0, start + at - loop.time()))
            self._spawn(self._apply(factory, n))

    async def _apply(self, factory: ApplicationFactory, n: int) -> None:
        assert self.http is not None
        generated = factory.generate(n, date.today())
        body = {
            "idempotency_key": generated.idempotency_key,
            "application": generated.application.model_dump(mode="json"),
        }
        headers = {"Authorization": f"Bearer {self.intake_token}"}
        http = self.http
        case_id: list[str] = []

        async def send() -> httpx.Response:
            response = await http.post("/v1/applications", json=body, headers=headers)
            if response.status_code in (200, 201):
                case_id.append(response.json()["case_id"])
            return response

        status = await self.call("intake", send)
        if not case_id:
            self.outside.intake_failed += 1
            print(f"chaos: application {n} not taken (HTTP {status})", file=sys.stderr)
            return
        self.outside.cases[case_id[0]] = n
        rng = rng_for(self.options.seed, "seniorpension", str(n))
        u_withdraw, u_move, after, to = rng.random(), rng.random(), rng.uniform(1.0, 20.0), rng.choice(MOVE_TO)
        if u_withdraw < self.options.p_withdraw:
            await asyncio.sleep(after)
            key = f"chaos-withdraw-{case_id[0]}"
            status = await self.ops("withdraw", f"/v1/ops/cases/{case_id[0]}/withdrawal", {"idempotency_key": key})
            self.outside.withdrawals[case_id[0]] = status
        elif u_move < self.options.p_move:
            await asyncio.sleep(after)
            kommune = generated.application.kommune_kode
            target = next(k for k in (to, *MOVE_TO) if k != kommune)
            body_move = {"idempotency_key": f"chaos-move-{case_id[0]}", "to_kommune_kode": target}
            status = await self.ops("transfer", f"/v1/ops/cases/{case_id[0]}/transfer", body_move)
            self.outside.transfers[case_id[0]] = status

    # -- Seniorpension: decisions, answers to questions, extensions beyond the policy ----------------------------

    async def caseworkers(self, stop: asyncio.Event) -> None:
        query = 'WorkflowType="CaseWorkflow" AND CaseStatus="ready_for_decision" AND ExecutionStatus="Running"'
        loop = asyncio.get_running_loop()
        next_questions = loop.time() + QUESTION_WORKLIST_EVERY
        while not stop.is_set():
            assert self.client is not None
            try:
                async for wf in self.client.list_workflows(query, limit=500):
                    case_id = wf.id.removeprefix("case-")
                    if case_id not in self._deciding:
                        self._deciding.add(case_id)
                        self._spawn(self._decide(case_id))
            except RPCError:
                pass  # the Temporal server is down: the worklist is looked at again in a moment
            if loop.time() >= next_questions:
                next_questions = loop.time() + QUESTION_WORKLIST_EVERY
                await self._answer_open_questions()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    async def _answer_open_questions(self) -> None:
        """A caseworker's worklist: kommune questions on open tasks left unanswered for a while. Most are answered
        when the kommune's call is confirmed (`observe`); one whose confirmation never reached the kommune system
        (its retries ran out while a part was down) is still in the log, and a real caseworker finds it here."""
        try:
            conn = await asyncpg.connect(self.stack.postgres.url, timeout=5)
            try:
                rows = await conn.fetch(OPEN_KOMMUNE_QUESTIONS, QUESTION_WORKLIST_AFTER)
            finally:
                await conn.close()
        except (
            OSError,
            TimeoutError,
            asyncpg.CannotConnectNowError,
            asyncpg.PostgresConnectionError,
            asyncpg.InterfaceError,
        ):
            return  # the database is down: looked at again next round (a wrong query fails the run instead)
        for row in rows:
            key = row["question_id"]
            if key not in self._answering:
                self._answering.add(key)
                self.outside.answered_from_worklist += 1
                self._spawn(self._answer(ActionRecord(row["task_id"], "", "ask_question", 200, key, "", None)))

    async def _decide(self, case_id: str) -> None:
        try:
            made = self.outside.decisions[case_id]
            round_no = sum(1 for _, _, status in made if status == 200) + 1
            rng = rng_for(self.options.seed, "decision", case_id, str(round_no))
            u = rng.random()
            outcome = (
                "supplementary"
                if round_no == 1 and u < P_SUPPLEMENTARY
                else "granted"
                if u < P_SUPPLEMENTARY + P_GRANTED
                else "rejected"
            )
            key = f"chaos-decide-{case_id}-{round_no}"
            body = {
                "idempotency_key": key,
                "outcome": outcome,
                "reason_codes": ["arbejdsevne"] if outcome == "rejected" else [],
                "requested_documents": ["supplerende-oplysninger"] if outcome == "supplementary" else [],
            }
            status = await self.ops("decide", f"/v1/ops/cases/{case_id}/decision", body)
            made.append((key, outcome, status))
        finally:
            self._deciding.discard(case_id)

    def observe(self, record: ActionRecord) -> None:
        """The simulator tells of each kommune action: Seniorpension answers questions and extension requests."""
        ok = record.status_code is not None and record.status_code < 300
        if ok and record.kind == "ask_question" and record.repeat != "same_key" and record.key not in self._answering:
            self._spawn(self._answer(record))
        if ok and record.extension == "pending" and record.repeat != "same_key":
            self._spawn(self._decide_extension(record))

    async def _answer(self, record: ActionRecord) -> None:
        self._answering.add(record.key)
        await asyncio.sleep(self.rng.uniform(0.1, 1.0))
        body = {"question_id": record.key, "text": "Ja, indhent dem; samtykke foreligger."}
        status = await self.ops("answer", f"/v1/ops/tasks/{record.task_id}/answers", body)
        self.outside.answers[record.key] = status

    async def _decide_extension(self, record: ActionRecord) -> None:
        await asyncio.sleep(self.rng.uniform(0.1, 1.0))
        grant = rng_for(self.options.seed, "extension", record.key).random() < P_GRANT_EXTENSION
        body = {"request_id": record.key, "grant": grant}
        path = f"/v1/ops/tasks/{record.task_id}/extension-decision"
        self.outside.extension_decisions[record.key] = await self.ops("extension", path, body)

    # -- faults ------------------------------------------------------------------------------------------------------

    async def faults(self, t0: float) -> None:
        loop = asyncio.get_running_loop()
        for fault in fault_schedule(self.options):
            await asyncio.sleep(max(0.0, t0 + fault.at - loop.time()))
            if fault.kind == "worker":
                # The drawn worker, or the other one if it is still down from a kill before (or, both down, the
                # first to come back): each kill in the schedule kills a running process.
                for _ in range(600):
                    if len(self._killed) < len(self.stack.workers):
                        break
                    await asyncio.sleep(0.2)
                target = next(i for i in (fault.target, 1 - fault.target) if i not in self._killed)
                self._killed.add(target)
                self.stack.workers[target].kill()
                self._spawn(self._restart_worker(target, fault.pause))
            elif fault.kind == "postgres":
                self.stack.postgres.kill()
                killed_at = time.monotonic()
                await asyncio.sleep(fault.pause)
                self.outside.database_down.append((killed_at, time.monotonic()))
                await asyncio.to_thread(self.stack.postgres.start)
            else:
                self.stack.temporal.kill()
                await asyncio.sleep(fault.pause)
                await asyncio.to_thread(self.stack.temporal.start)
            self.faults_done[fault.kind] += 1

    async def _restart_worker(self, target: int, pause: float) -> None:
        await asyncio.sleep(pause)
        self.stack.workers[target].start()
        self._killed.discard(target)

    # -- waiting for the end ---------------------------------------------------------------------------------------

    async def wait_closed(self, within: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        wanted = set(self.outside.cases)
        while loop.time() < deadline:
            try:
                conn = await asyncpg.connect(self.stack.postgres.url, timeout=5)
                try:
                    closed = await conn.fetchval(
                        "SELECT count(DISTINCT case_id) FROM events WHERE type = 'CaseClosed' AND case_id = ANY($1)",
                        list(wanted),
                    )
                finally:
                    await conn.close()
                if closed == len(wanted):
                    return True
            except (OSError, asyncpg.PostgresError):
                pass
            await asyncio.sleep(2.0)
        return False

    async def explain_unclosed(self, limit: int = 10) -> None:
        """For a case still open at the end, while the system is still up: what its log, its task workflow and the
        callers outside say (ids, types and statuses only), on stderr and in logs/unclosed.txt."""
        assert self.client is not None and self.sim is not None
        conn = await asyncpg.connect(self.stack.postgres.url, timeout=10)
        try:
            rows = await conn.fetch(
                "SELECT case_id, type, data->>'task_id' AS task_id FROM events WHERE case_id = ANY($1) "
                "AND case_id NOT IN (SELECT case_id FROM events WHERE type = 'CaseClosed') "
                "ORDER BY case_id, stream_version",
                list(self.outside.cases),
            )
        finally:
            await conn.close()
        by_case: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
        for row in rows:
            by_case[row["case_id"]].append((row["type"], row["task_id"]))
        lines: list[str] = [f"{len(by_case)} case(s) not closed"]
        for case_id, events in list(by_case.items())[:limit]:
            counts = Counter(t for t, _ in events)
            lines.append(f"case {case_id}: {len(events)} events, last {events[-5:]}, counts {dict(counts)}")
            await self._describe_workflow(case_workflow_id(case_id), lines)
            tasks = {task for _, task in events if task}
            for task_id in sorted(tasks):
                actions = [
                    (a.key.removeprefix(f"sim:{task_id}:"), a.status_code, a.repeat)
                    for a in self.sim.actions
                    if a.task_id == task_id
                ]
                lines.append(f"  task {task_id}: kommune actions {actions}")
                answers = {k: v for k, v in self.outside.answers.items() if task_id in k}
                lines.append(f"  task {task_id}: answers {answers}")
                await self._describe_workflow(f"task-{task_id}", lines)
        text = "\n".join(lines)
        print(text, file=sys.stderr, flush=True)
        (self.stack.logs / "unclosed.txt").write_text(text + "\n")

    async def _describe_workflow(self, workflow_id: str, lines: list[str]) -> None:
        """Status, history and what it waits for (activity types and attempts; their failures are encrypted, the
        worker logs name them)."""
        assert self.client is not None
        try:
            handle = self.client.get_workflow_handle(workflow_id)
            described = await handle.describe()
            raw = described.raw_description
            pending_wft = raw.pending_workflow_task.state if raw.HasField("pending_workflow_task") else None
            activities = [(a.activity_type.name, a.attempt, a.state) for a in raw.pending_activities]
            lines.append(
                f"  {workflow_id}: {described.status}, history {raw.workflow_execution_info.history_length}, "
                f"pending activities {activities}, pending workflow task {pending_wft}"
            )
            kinds: Counter[str] = Counter()
            async for event in handle.fetch_history_events():
                kinds[EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")] += 1
            lines.append(f"  {workflow_id} history: {dict(kinds)}")
        except RPCError as exc:
            lines.append(f"  {workflow_id}: {exc.status} {exc.message}")

    async def drain(self, within: float) -> None:
        """Let every call in flight end (the kommune systems' last answers, Seniorpension's last calls and their
        retries) before the checks compare what the callers were told with the log."""
        assert self.sim is not None
        deadline = time.monotonic() + within
        poller = 1 if INBOX_KOMMUNER else 0
        while time.monotonic() < deadline:
            if not self._tasks and self.sim.snapshot()["pending_plans"] <= poller:
                return
            await asyncio.sleep(0.5)

    async def watch_workers(self, stop: asyncio.Event) -> None:
        """A worker that dies when we did not kill it (say, of a lost database or Temporal server) is a finding."""
        while not stop.is_set():
            for i, worker in enumerate(self.stack.workers):
                if worker.proc is not None and worker.proc.poll() is not None and i not in self._killed:
                    # One restarted while the Temporal server or the database is down refuses to start (its
                    # orchestrator starts it again, as here); one that was up and then died is a finding.
                    if worker.started("worker started"):
                        self.outside.worker_deaths += 1
                    else:
                        self.outside.worker_start_refusals += 1
                    worker.start()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    # -- the whole run -----------------------------------------------------------------------------------------------

    async def run(self) -> ChaosResult:
        started = time.monotonic()
        stack = self.stack
        await stack.start_servers()
        issuer = LocalIssuer(stack.root / LOCAL_KEY_FILE)
        day = timedelta(days=1)
        self.intake_token = issuer.mint("Chaos intake", ["intake"], subject="chaos-intake", ttl=day)
        self.staff_token = issuer.mint(
            "Chaos sagsbehandler", ["caseworker", "team-lead", "reader"], subject="chaos-caseworker", ttl=day
        )
        pool = await create_pool(stack.postgres.url, min_size=1, max_size=2)
        try:
            keys = await provision_sim_keys(pool, stack.root / "sim-keys.json")
        finally:
            await pool.close()
        await stack.start_processes()
        self.client = await Client.connect(stack.temporal.address, data_converter=data_converter(stack.ring))
        self.http = httpx.AsyncClient(
            base_url=stack.api_url, timeout=10, headers={"Authorization": f"Bearer {self.staff_token}"}
        )
        overrides = {
            kode: {
                "push_5xx_rate": self.options.push_5xx_rate,
                "push_timeout_rate": self.options.push_timeout_rate,
                "p_question": 0.15,
                "p_return": 0.04,
            }
            for kode in default_profiles()
        }
        settings = SimSettings(
            seed=self.options.seed,
            compression=COMPRESSION,
            extension_unit="seconds",
            timeout_hang_seconds=PUSH_TIMEOUT_SECONDS + 1,
            poll_interval_seconds=1.0,
            api_attempts=200,
            api_retry_delay=0.25,
            repeat_same_key_rate=self.options.repeat_same_key_rate,
            repeat_new_key_rate=self.options.repeat_new_key_rate,
            question_waits=300,
        )
        api = SagsflowApiClient(stack.api_url, keys=keys, timeout=10)
        self.sim = KommuneSimulator(
            default_profiles(overrides=overrides),
            lambda kode: derive_push_secret(stack.master, kode),
            api=api,
            settings=settings,
            inbox_kommuner=frozenset(INBOX_KOMMUNER),
        )
        self.sim.observers.append(self.observe)
        server = uvicorn.Server(
            uvicorn.Config(create_sim_app(self.sim), host="127.0.0.1", port=stack.sim_port, log_level="warning")
        )
        serving = asyncio.ensure_future(server.serve())
        stop = asyncio.Event()
        try:
            t0 = asyncio.get_running_loop().time()
            caseworkers = asyncio.ensure_future(self.caseworkers(stop))
            watcher = asyncio.ensure_future(self.watch_workers(stop))
            await asyncio.gather(self.intake(), self.faults(t0))
            if not await self.wait_closed(self.options.settle_seconds):
                await self.explain_unclosed()
            stop.set()
            await caseworkers
            await watcher
            await self.drain(within=120)
            wall = time.monotonic() - started
            self._collect_sim()
            violations, lost, duplicated, summary = await check_all(
                stack.postgres.url, self.client, self.http, self.outside, self.options, stack.logs, stack.ring
            )
        finally:
            stop.set()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            server.should_exit = True
            with contextlib.suppress(Exception):
                await serving
            await api.aclose()
            await self.http.aclose()
            await asyncio.to_thread(stack.stop)
        retries = dict(self.outside.retries)
        retries["kommune_systems"] = self.outside.sim_retries
        retries["worker_starts_refused"] = self.outside.worker_start_refusals
        retries["pushes_refused_or_timed_out"] = sum(v for k, v in self.sim.stats.answered.items() if k != "accept")
        return ChaosResult(
            cases=len(self.outside.cases) + self.outside.intake_failed,
            seed=self.options.seed,
            faults=dict(self.faults_done),
            retries=retries,
            wall_seconds=round(wall, 1),
            cases_lost=lost,
            events_duplicated=duplicated,
            invariant_violations=len(violations),
            violations=violations,
            **summary,
        )

    def _collect_sim(self) -> None:
        assert self.sim is not None
        sim = self.sim
        for received in sim.received.values():
            if received.message.kind == "task":
                self.outside.sim_received[received.message.task_id] = received.via
        self.outside.sim_plans = Counter(sim.stats.plans_started)
        self.outside.sim_actions = list(sim.actions)
        self.outside.sim_retries = sim.stats.retries


# ---- the checks ----------------------------------------------------------------------------------------------------


def _identity(event: Event) -> tuple[Any, ...] | None:
    """What makes an event one fact: a second event with the same identity in a stream was written twice. Events a
    case may rightly hold more than once without an id of their own (decisions, transfers) return None."""
    data = event.data()
    keys = {
        "OplysningRequested": ("task_id",),
        "OplysningTaskDelivered": ("task_id",),
        "OplysningDeliveryFailed": ("task_id",),
        "KommuneReminderSent": ("task_id", "reminder_no", "deadline_at"),
        "ExtensionRequested": ("task_id", "request_id"),
        "OplysningDeadlineExtended": ("task_id", "request_id"),
        "ExtensionRefused": ("task_id", "request_id"),
        "OplysningOverdue": ("task_id", "escalation_no", "deadline_at"),
        "OplysningPartReceived": ("task_id", "submission_id"),
        "OplysningCompleted": ("task_id",),
        "OplysningReturned": ("task_id",),
        "OplysningCancelled": ("task_id",),
        "QuestionAsked": ("question_id",),
        "QuestionAnswered": ("question_id",),
        "CitizenNotified": ("message_id",),
        "KommuneNotified": ("kommune_kode", "kind", "task_id"),
        "ApplicationReceived": (),
        "PreScreeningCompleted": (),
        "ApplicationWithdrawn": (),
        "CaseClosed": (),
    }.get(event.type)
    if keys is None:
        return None
    return (event.type, *(str(data.get(k)) for k in keys))


def check_streams(
    versions: dict[str, list[int]], streams: dict[str, list[Event]], case_ids: Iterable[str]
) -> tuple[list[str], int, int]:
    """Every case closed, versions contiguous from 1, no event twice. Returns (violations, cases lost, duplicates)."""
    violations: list[str] = []
    lost = 0
    duplicated = 0
    for case_id in case_ids:
        stream = streams.get(case_id, [])
        if not any(e.type == "CaseClosed" for e in stream):
            lost += 1
            last = stream[-1].type if stream else "nothing"
            violations.append(f"{case_id}: not closed (last event {last})")
    for case_id, got in versions.items():
        if got != list(range(1, len(got) + 1)):
            violations.append(f"{case_id}: stream versions not contiguous from 1")
    for case_id, stream in streams.items():
        seen: set[tuple[Any, ...]] = set()
        ids: set[Any] = set()
        for e in stream:
            identity = _identity(e)
            if e.event_id in ids or (identity is not None and identity in seen):
                duplicated += 1
                violations.append(f"{case_id}: {e.type} written twice")
            ids.add(e.event_id)
            if identity is not None:
                seen.add(identity)
    return violations, lost, duplicated


def check_paths(streams: dict[str, list[Event]], outside: Outside) -> tuple[list[str], Counter[str]]:
    """Each event type's count per case against what its path implies: the path as the callers outside saw it
    (Seniorpension's accepted decisions, withdrawals and moves; the kommuner's accepted answers) and the tasks it
    opened. Returns the violations and how many cases took each kind of path."""
    violations: list[str] = []
    paths: Counter[str] = Counter()
    accepted_by_key = {a.key for a in outside.sim_actions if a.status_code is not None and a.status_code < 300}
    for case_id, stream in streams.items():
        n: Counter[str] = Counter(e.type for e in stream)
        made = {key: outcome for key, outcome, status in outside.decisions.get(case_id, []) if status == 200}
        ours_formal = [e for e in stream if isinstance(e, DecisionMade) and e.decided_by == "prescreening"]
        tasks = [e for e in stream if isinstance(e, OplysningRequested)]
        ended = Counter(
            e.task_id for e in stream if e.type in ("OplysningCompleted", "OplysningReturned", "OplysningCancelled")
        )
        # A call whose caller gave up (no answer within RETRY_WITHIN: counted as its own violation) may or may not
        # have been applied; for it the log's word is taken.
        gave_up = [(k, o) for k, o, status in outside.decisions.get(case_id, []) if status is None]
        withdrawn = outside.withdrawals.get(case_id) == 200 or (
            case_id in outside.withdrawals and outside.withdrawals[case_id] is None and n["ApplicationWithdrawn"] > 0
        )
        moved = outside.transfers.get(case_id) == 200 or (
            case_id in outside.transfers
            and outside.transfers[case_id] is None
            and any(isinstance(e, CaseTransferred) and e.reason.value == "moved" for e in stream)
        )
        supplementary = sum(1 for o in made.values() if o == "supplementary")
        returns = n["OplysningReturned"]
        reasons = Counter(t.reason.value for t in tasks)
        transfers = Counter(e.reason.value for e in stream if isinstance(e, CaseTransferred))
        cancelled = Counter(e.reason.value for e in stream if isinstance(e, OplysningCancelled))
        expected = {
            "ApplicationReceived": 1,
            "PreScreeningCompleted": 1,
            "CaseClosed": 1,
            "ApplicationWithdrawn": int(withdrawn),
            # A supplementary round is a new task, not a decision.
            "DecisionMade": len([o for o in made.values() if o != "supplementary"]) + len(ours_formal),
            "transfer:moved": int(moved),
            "transfer:returned": returns,
            "task:supplementary": supplementary,
            "task:rerouted": returns,
            "task:transferred": cancelled["transferred"],
            "cancelled:withdrawn": min(cancelled["withdrawn"], 1) if withdrawn else 0,
        }
        counted = {
            **n,
            "transfer:moved": transfers["moved"],
            "transfer:returned": transfers["returned"],
            "task:supplementary": reasons["supplementary"],
            "task:rerouted": reasons["rerouted"],
            "task:transferred": reasons["transferred"],
            "cancelled:withdrawn": cancelled["withdrawn"],
        }
        if gave_up:
            decided_in_log = n["DecisionMade"] - len(ours_formal)
            supplementary_in_log = reasons["supplementary"]
            if 0 <= decided_in_log - (expected["DecisionMade"] - len(ours_formal)) <= len(gave_up):
                expected["DecisionMade"] = n["DecisionMade"]
            if 0 <= supplementary_in_log - supplementary <= len(gave_up):
                expected["task:supplementary"] = supplementary_in_log
        for kind, count in expected.items():
            if counted.get(kind, 0) != count:
                violations.append(f"{case_id}: {counted.get(kind, 0)} {kind}, its path implies {count}")
        if reasons["initial"] > 1:
            violations.append(f"{case_id}: {reasons['initial']} first tasks")
        for t in tasks:
            if ended[t.task_id] != 1:
                violations.append(f"{case_id}: task ended {ended[t.task_id]} times")
        delivered = Counter(e.task_id for e in stream if isinstance(e, OplysningTaskDelivered))
        for t in tasks:
            if delivered[t.task_id] > 1:
                violations.append(f"{case_id}: task delivered {delivered[t.task_id]} times")
        decided_final = [e for e in stream if isinstance(e, DecisionMade) and e.outcome.value != "supplementary"]
        if n["CitizenNotified"] != len(decided_final[:1]) + int(withdrawn and not decided_final):
            violations.append(f"{case_id}: {n['CitizenNotified']} citizen letters")
        # Every kommune answer in the log is one the kommune sent and was told was taken, and the other way round.
        for e in stream:
            key = None
            if isinstance(e, OplysningPartReceived):
                key = e.submission_id
            elif isinstance(e, ExtensionRequested):
                key = e.request_id
            elif isinstance(e, QuestionAsked) and e.asked_by.value == "kommune":
                key = e.question_id
            if key is not None and key not in accepted_by_key:
                violations.append(f"{case_id}: {e.type} under a key no kommune was told was taken")
        paths["supplementary"] += supplementary > 0
        paths["returned"] += returns > 0
        paths["withdrawn"] += withdrawn
        paths["moved"] += moved
        paths["question"] += n["QuestionAsked"] > 0
        paths["extension"] += n["OplysningDeadlineExtended"] > 0
        paths["extension_refused"] += n["ExtensionRefused"] > 0
        paths["reminder"] += n["KommuneReminderSent"] > 0
        paths["overdue"] += n["OplysningOverdue"] > 0
        paths["formal_rejection"] += any(isinstance(e, DecisionMade) and e.decided_by == "prescreening" for e in stream)
    return violations, paths


def check_kommune_records(streams: dict[str, list[Event]], outside: Outside) -> list[str]:
    """Every task message reached its kommune (pushed or polled) and started its work once per idempotency key;
    every answer the kommune was told was taken is in the log exactly once (none lost, none applied twice)."""
    violations: list[str] = []
    in_log: Counter[str] = Counter()
    task_case: dict[str, str] = {}
    for case_id, stream in streams.items():
        for e in stream:
            if isinstance(e, OplysningTaskDelivered):
                task_case[e.task_id] = case_id
                if e.task_id not in outside.sim_received:
                    violations.append(f"{case_id}: a delivered task never reached its kommune's system")
            if isinstance(e, OplysningPartReceived):
                in_log[e.submission_id] += 1
            elif isinstance(e, ExtensionRequested):
                in_log[e.request_id] += 1
            elif isinstance(e, QuestionAsked):
                in_log[e.question_id] += 1
            elif isinstance(e, OplysningReturned):
                in_log[f"return:{e.task_id}"] += 1
    # An answer first sent after the database died and confirmed before it came back cannot have been stored (a
    # second send with the same key may be confirmed from the workflow's state: it was stored the first time).
    for a in outside.sim_actions:
        confirmed = a.status_code is not None and a.status_code < 300 and a.repeat != "same_key"
        if confirmed and any(down < a.sent_at and a.answered_at < up for down, up in outside.database_down):
            violations.append(f"task {a.task_id}: a {a.kind} was confirmed while the event log was down")
    for message_id, plans in outside.sim_plans.items():
        if plans != 1:
            violations.append(f"message {message_id}: processed {plans} times")
    for a in outside.sim_actions:
        if a.status_code is None:
            violations.append(f"task {a.task_id}: a {a.kind} never got an answer from the API")
            continue
        if a.status_code >= 300:
            continue
        key = f"return:{a.task_id}" if a.kind == "return_task" else a.key
        if in_log[key] != 1:
            violations.append(f"task {a.task_id}: {a.kind} taken by the API, {in_log[key]} times in the log")
    return violations


async def check_temporal(client: Client, case_ids: Iterable[str]) -> list[str]:
    """The workflows' own state: every case workflow has completed."""
    violations = []
    for case_id in case_ids:
        try:
            described = await client.get_workflow_handle(case_workflow_id(case_id)).describe()
        except RPCError as exc:
            violations.append(f"{case_id}: workflow not found ({exc.status})")
            continue
        if described.raw_description.workflow_execution_info.status != (
            WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED
        ):
            violations.append(f"{case_id}: workflow {described.status}")
    return violations


async def check_projections(
    pool: asyncpg.Pool, http: httpx.AsyncClient, naive: NaiveLog, instants: Sequence[datetime]
) -> list[str]:
    """The projections and the backlog API equal a fresh fold of the log, now and as of past instants."""
    violations: list[str] = []
    for _ in range(120):
        if await queries.projection_lag(pool) == 0:
            break
        await asyncio.sleep(0.5)
    else:
        violations.append("the projections never caught up with the log")
    states = naive.states()
    rows = {r["case_id"]: r for r in await pool.fetch("SELECT * FROM case_status")}
    for case_id, s in states.items():
        row = rows.get(case_id)
        got = None if row is None else (row["status"], row["kommune_kode"], row["open_task_id"], row["version"])
        want = (s.status.value, s.kommune_kode, s.open_task_id, s.version)
        if got != want:
            violations.append(f"{case_id}: case_status {got} but the fold says {want}")
    if await queries.task_backlog(pool) != naive.task_backlog():
        violations.append("task backlog now differs from the fold")
    if await queries.case_backlog(pool) != naive.case_backlog():
        violations.append("case backlog now differs from the fold")
    for period in ("week", "quarter"):
        if await queries.period_counts(pool, period, by_kommune=True) != naive.period_counts(period, by_kommune=True):
            violations.append(f"{period} counts differ from the fold")
    for at in [None, *instants]:
        params = {"as_of": at.isoformat()} if at else {}
        response = await http.get("/v1/ops/backlog", params=params)
        if response.status_code != 200:
            violations.append(f"backlog API as of {at}: HTTP {response.status_code}")
            continue
        body = response.json()
        tasks = sorted((r["kommune_kode"], r["status"], r["tasks"], r["overdue"]) for r in body["tasks"])
        cases = sorted((r["kommune_kode"], r["status"], r["cases"]) for r in body["cases"])
        want_tasks = sorted((r.kommune_kode, r.status, r.tasks, r.overdue) for r in naive.task_backlog(at))
        want_cases = sorted((r.kommune_kode, r.status, r.cases) for r in naive.case_backlog(at))
        if (tasks, cases) != (want_tasks, want_cases):
            violations.append(f"backlog API as of {at} differs from the fold")
        if at is not None and await queries.task_backlog(pool, at) != naive.task_backlog(at):
            violations.append(f"task backlog as of {at} differs from the fold")
    return violations


def check_logs(logs: Path) -> list[str]:
    """No CPR number in any log line written during the run (every process's log)."""
    violations = []
    for path in sorted(logs.glob("*.log")):
        with path.open(errors="replace") as fh:
            for number, line in enumerate(fh, 1):
                if contains_cpr(line):
                    violations.append(f"{path.name}:{number}: a CPR number in the log")
    return violations


async def read_log(pool: asyncpg.Pool) -> tuple[dict[str, list[int]], dict[str, list[Event]], list[Event]]:
    versions: dict[str, list[int]] = defaultdict(list)
    for row in await pool.fetch("SELECT case_id, stream_version FROM events ORDER BY case_id, stream_version"):
        versions[row["case_id"]].append(row["stream_version"])
    store = EventStore(pool)
    events: list[Event] = []
    after = 0
    while True:
        batch = await store.read_all(after, limit=5000)
        if not batch:
            break
        events += [s.event for s in batch]
        after = batch[-1].global_position
    streams: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        streams[e.case_id].append(e)
    return versions, streams, events


async def check_replay(client: Client, ring: KeyRing) -> tuple[list[str], int]:
    """Every workflow of the run replays from scratch against the current code: what a worker does after a restart
    or a cache eviction, for each history the faults shaped."""
    report = await replay(from_cluster(client, limit=None), ring)
    return [f"replay from scratch failed: {f.source}: {f.message}" for f in report.failures], sum(
        report.replayed.values()
    )


def count_busy_refusals(logs: Path) -> int:
    """Updates the workflows refused as busy (workflows/activation_guard.py) and the API retried."""
    path = logs / "api.log"
    if not path.exists():
        return 0
    with path.open(errors="replace") as fh:
        return sum("update refused as busy" in line for line in fh)


async def check_all(
    dsn: str,
    client: Client,
    http: httpx.AsyncClient,
    outside: Outside,
    options: ChaosOptions,
    logs: Path,
    ring: KeyRing,
) -> tuple[list[str], int, int, dict[str, Any]]:
    pool = await create_pool(dsn, min_size=1, max_size=4)
    try:
        versions, streams, events = await read_log(pool)
        violations, lost, duplicated = check_streams(versions, streams, outside.cases)
        strangers = set(streams) - set(outside.cases)
        violations += [f"{c}: a case no one filed" for c in sorted(strangers)]
        path_violations, paths = check_paths(streams, outside)
        violations += path_violations
        violations += check_kommune_records(streams, outside)
        violations += await check_temporal(client, outside.cases)
        naive = NaiveLog(events)
        stamps = sorted(e.occurred_at for e in events)
        rng = rng_for(options.seed, "as-of")
        instants = [stamps[rng.randrange(len(stamps))] for _ in range(options.as_of_samples)] if stamps else []
        violations += await check_projections(pool, http, naive, instants)
        violations += check_logs(logs)
        replay_violations, replayed = await check_replay(client, ring)
        violations += replay_violations
        violations += [f"{n} {what} calls given up" for what, n in outside.gave_up.items()]
        if outside.worker_deaths:
            violations.append(f"{outside.worker_deaths} worker processes died without being killed")
        if outside.intake_failed:
            violations.append(f"{outside.intake_failed} applications never taken")
        summary = {
            "events": len(events),
            "events_by_type": dict(sorted(Counter(e.type for e in events).items())),
            "paths": dict(paths),
            "histories_replayed": replayed,
            "updates_refused_busy": count_busy_refusals(logs),
            "questions_answered_from_worklist": outside.answered_from_worklist,
        }
        return violations, lost, duplicated, summary
    finally:
        await pool.close()


# ---- command line ------------------------------------------------------------------------------------------------


async def run_chaos(options: ChaosOptions, root: Path | None = None) -> ChaosResult:
    own = root is None
    where = root or Path(tempfile.mkdtemp(prefix="sagsflow-chaos-"))
    try:
        return await ChaosRun(options, where).run()
    finally:
        if own and os.environ.get("SAGSFLOW_CHAOS_KEEP") != "1":
            shutil.rmtree(where, ignore_errors=True)


def parse(argv: Sequence[str] | None = None) -> ChaosOptions:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SAGSFLOW_CHAOS_SEED", "0")) or None)
    parser.add_argument("--arrival-seconds", type=float, default=0.0, help="Spread the applications over this long")
    parser.add_argument("--worker-kills", type=int, default=20)
    parser.add_argument("--postgres-kills", type=int, default=3)
    parser.add_argument("--temporal-kills", type=int, default=3)
    parser.add_argument("--settle-seconds", type=float, default=ChaosOptions.settle_seconds)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time()) % 100_000
    return ChaosOptions(
        cases=args.cases,
        seed=seed,
        arrival_seconds=args.arrival_seconds,
        worker_kills=args.worker_kills,
        postgres_kills=args.postgres_kills,
        temporal_kills=args.temporal_kills,
        settle_seconds=args.settle_seconds,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    print(f"chaos: {options.cases} cases, seed {options.seed} (SAGSFLOW_CHAOS_SEED={options.seed} replays)", flush=True)
    root = Path(tempfile.mkdtemp(prefix="sagsflow-chaos-"))
    keep = os.environ.get("SAGSFLOW_CHAOS_KEEP") == "1"
    if keep:
        print(f"chaos: kept in {root}", flush=True)
    # This process's own lines (the kommune simulator's) go to the run's logs too, for the CPR check.
    (root / "logs").mkdir()
    with (root / "logs" / "chaos.log").open("a") as own_log:
        configure_logging(options.log_level, "json", stream=own_log)
        try:
            result = asyncio.run(run_chaos(options, root))
        finally:
            if not keep:
                shutil.rmtree(root, ignore_errors=True)
    for v in result.violations[:50]:
        print(f"violation: {v}", file=sys.stderr)
    print(result.line(), flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
