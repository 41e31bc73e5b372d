"""The kommune simulator, real-time driver: one HTTP server playing the systems of all 98 kommuner.

- `POST /kommune/{kode}/tasks` receives pushes: verifies them as a kommune vendor would, with the Standard Webhooks
  reference library (`standardwebhooks.Webhook(secret).verify`) and that kommune's secret (401 if the signature,
  the timestamp or a header is wrong), then the body (400) and that the task is addressed to this kommune and the
  `webhook-id` is its message id (400); then answers as the kommune's profile says: 200, a 5xx, or a hang past the
  sender's timeout (the message is still processed, as a real system that answers too late would; the retry must
  then be deduplicated by its `webhook-id`).
- Inbox kommuner are polled through our API (`GET /v1/kommune/tasks?after=`) with their own keys.
- For each new task the behaviour model (`sim.behaviour`) makes a plan; each action is carried out through our API
  with the kommune's key after its delay divided by `compression` (model seconds per real second; 86,400 makes a
  model day last one real second, which matches the `demo-1` SLA policy where 90 s stand for 3 months).

- Like a real kommune system, it first fetches whom a new task concerns (the `citizen_path` its message names), and
  drops the answer: only the status is counted.

`GET /sim/stats` reports counts (no personal data is kept here: tasks carry ids only).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from standardwebhooks import Webhook, WebhookVerificationError

from domain.calendar import Duration, Unit
from domain.kommune_protocol import ID_HEADER, TaskMessage, as_whsec
from domain.kommuner import is_kommune, normalize_kode
from runtime.kommune_config import derive_push_secret
from runtime.logs import get_logger
from sim.behaviour import (
    AskQuestionAction,
    KommuneProfile,
    PlannedAction,
    RequestExtensionAction,
    ReturnTaskAction,
    SimTask,
    SubmitPartAction,
    late_answer,
    plan_kommune_response,
    push_response,
    rng_for,
)
from sim.client import ApiError, ApiResponse, NoKeyError, SagsflowApiClient, document_upload

log = get_logger(__name__)

SecretLookup = Callable[[str], str | None]


class SimSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    seed: int = 1
    compression: float = Field(default=1.0, gt=0, description="Model seconds per real second")
    # The unit the SLA policy in force counts extensions in: "seconds" for the demo policy.
    extension_unit: Literal["days", "seconds"] = "days"
    timeout_hang_seconds: float = Field(default=15.0, ge=0, description="How long a 'timeout' answer hangs")
    poll_interval_seconds: float = Field(default=2.0, gt=0)
    api_attempts: int = Field(default=5, ge=1, description="Tries per action on 5xx or connection errors")
    api_retry_delay: float = Field(default=0.5, ge=0, description="First pause between tries; doubles each time")
    act: bool = Field(default=True, description="False: only receive (delivery tests)")
    # Kommuner whose tasks are answered only after `late_answer_days` (model time), whatever their profile says:
    # the demo leaves them to a person playing that kommune's system (see `sim.demo`).
    late_kommuner: frozenset[str] = frozenset()
    late_answer_days: float = Field(default=365.0, gt=0)
    # A kommune system that sends an answer twice: again with the same idempotency key (a retry after a lost
    # response), or with a new key and the same content (a second job run that did not know of the first). Chaos
    # runs (bench/chaos.py) set these; each answer draws once, seeded by its key.
    repeat_same_key_rate: float = Field(default=0.0, ge=0, le=1)
    repeat_new_key_rate: float = Field(default=0.0, ge=0, le=1)
    # How often a final part refused for an unanswered question is sent again (poll_interval_seconds apart).
    question_waits: int = Field(default=0, ge=0)


def dev_secrets(master: str) -> Callable[[str], str]:
    """The dev default's per-kommune secrets, derived from the one master secret in the data dir."""
    return lambda kode: derive_push_secret(master, kode)


def _verified(secret: str, body: bytes, headers: Any) -> bool:
    """The reference library's verdict (it allows five minutes of clock skew either way). It raises more than its
    own error on malformed input (a signature without a comma, bad base64, a body that is not UTF-8): all of that is
    a refused signature too, never a 500."""
    try:
        Webhook(as_whsec(secret)).verify(body, dict(headers.items()), json_parse=False)
    except (WebhookVerificationError, ValueError):
        return False
    return True


@dataclass
class Received:
    message: TaskMessage
    via: Literal["push", "inbox"]
    received_at: float  # event-loop time
    plan: list[PlannedAction]


@dataclass(frozen=True)
class ActionRecord:
    task_id: str
    kommune_kode: str
    kind: str
    status_code: int | None
    key: str = ""  # the idempotency key it was sent with
    repeat: Literal["", "same_key", "new_key"] = ""  # a deliberate second send (SimSettings.repeat_*)
    extension: str | None = None  # an extension request's answer: granted / pending / refused
    sent_at: float = 0.0  # time.monotonic() of the first try
    answered_at: float = 0.0  # ... and of the answer that ended the tries


@dataclass
class SimStats:
    push_attempts: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)  # by outcome: accept / error_5xx / timeout
    received: Counter[str] = field(default_factory=Counter)  # new messages by kind
    duplicates: int = 0
    actions: Counter[str] = field(default_factory=Counter)  # "<kind>:<status>"
    citizen_reads: Counter[str] = field(default_factory=Counter)  # by HTTP status (the person is not kept)
    retries: int = 0  # API calls sent again after a 5xx or a transport error (same idempotency key)
    plans_started: Counter[str] = field(default_factory=Counter)  # by message id: must never exceed 1


def _document_bytes(document_type: str) -> bytes:
    # A minimal PDF-shaped file: passes the API's content check, carries nothing personal.
    return f"%PDF-1.4\n% Sagsflow simulator: {document_type}\n%%EOF\n".encode()


class KommuneSimulator:
    def __init__(
        self,
        profiles: dict[str, KommuneProfile],
        secrets: SecretLookup,
        *,
        api: SagsflowApiClient | None = None,
        settings: SimSettings | None = None,
        inbox_kommuner: frozenset[str] = frozenset(),
    ) -> None:
        self.profiles = profiles
        self.secrets = secrets
        self.api = api
        self.settings = settings or SimSettings()
        self.inbox_kommuner = frozenset(normalize_kode(k) for k in inbox_kommuner)
        self.received: dict[str, Received] = {}
        self.attempts: Counter[str] = Counter()
        self.actions: deque[ActionRecord] = deque(maxlen=20_000)
        # Told of every action's result as it happens (a chaos run's Seniorpension answers questions from it).
        self.observers: list[Callable[[ActionRecord], None]] = []
        self.stats = SimStats()
        self.cursors: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting_for_answers: set[str] = set()

    # --- receiving ---------------------------------------------------------------------------------------------

    async def handle_push(self, kode: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        self.stats.push_attempts += 1
        kode = normalize_kode(kode)
        secret = self.secrets(kode) if is_kommune(kode) and kode in self.profiles else None
        if secret is None:
            self.stats.rejected["unknown_kommune"] += 1
            return 404, {"error": "unknown_kommune"}
        if not _verified(secret, body, headers):
            self.stats.rejected["bad_signature"] += 1
            return 401, {"error": "bad_signature"}
        try:
            message = TaskMessage.model_validate_json(body)
        except ValidationError:
            self.stats.rejected["bad_body"] += 1
            return 400, {"error": "bad_body"}
        if message.kommune_kode != kode or headers.get(ID_HEADER) != message.message_id:
            self.stats.rejected["wrong_kommune_or_key"] += 1
            return 400, {"error": "task is not addressed to this kommune or the idempotency key does not match"}

        self.attempts[message.message_id] += 1
        attempt = self.attempts[message.message_id]
        outcome = push_response(
            self.profiles[kode], rng_for(self.settings.seed, "push", message.message_id, str(attempt)), attempt
        )
        self.stats.answered[outcome] += 1
        if outcome == "error_5xx":
            return 503, {"error": "temporarily_unavailable"}
        new = self.accept(message, via="push")
        if outcome == "timeout":
            await asyncio.sleep(self.settings.timeout_hang_seconds)
        return 200, {"status": "accepted" if new else "duplicate"}

    def accept(self, message: TaskMessage, *, via: Literal["push", "inbox"]) -> bool:
        """Record a message once (by its idempotency key) and start the kommune's plan for a new task."""
        if message.message_id in self.received:
            self.stats.duplicates += 1
            return False
        loop_now = asyncio.get_running_loop().time()
        deadline_in = None
        if message.deadline_at is not None:
            real_left = (message.deadline_at - datetime.now(UTC)).total_seconds()
            deadline_in = timedelta(seconds=max(0.0, real_left) * self.settings.compression)
        task = SimTask(
            task_id=message.task_id,
            case_id=message.case_id,
            kommune_kode=message.kommune_kode,
            kind=message.kind,
            deadline_in=deadline_in,
            requested_documents=message.requested_documents,
        )
        if message.kommune_kode in self.settings.late_kommuner:
            plan = late_answer(task, timedelta(days=self.settings.late_answer_days))
        else:
            profile = self.profiles[message.kommune_kode]
            plan = plan_kommune_response(task, profile, rng_for(self.settings.seed, "plan", message.message_id))
        self.received[message.message_id] = Received(message, via, loop_now, plan)
        self.stats.received[message.kind] += 1
        if plan and self.settings.act and self.api is not None:
            self.stats.plans_started[message.message_id] += 1
            self._spawn(self._run_plan(message, loop_now, plan))
        return True

    def _spawn(self, coro: Any) -> None:
        t: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # --- acting through our API -------------------------------------------------------------------------------

    async def _fetch_citizen(self, message: TaskMessage) -> None:
        """As a real kommune system starts its oplysning: learn whom the task concerns, at the path the message
        names. The simulator has no use for the person, so only the status is counted; the body is dropped."""
        assert self.api is not None
        if message.kind != "task" or message.citizen_path is None:
            return
        try:
            response = await self.api.get_citizen(message.kommune_kode, message.citizen_path)
        except (httpx.TransportError, ApiError, NoKeyError) as exc:
            log.warning("simulator citizen read failed", kommune_kode=message.kommune_kode, error=type(exc).__name__)
            self.stats.citizen_reads["error"] += 1
            return
        self.stats.citizen_reads[str(response.status_code)] += 1

    async def _run_plan(self, message: TaskMessage, received_at: float, plan: list[PlannedAction]) -> None:
        loop = asyncio.get_running_loop()
        await self._fetch_citizen(message)
        for index, planned in enumerate(plan):
            due = received_at + planned.after.total_seconds() / self.settings.compression
            await asyncio.sleep(max(0.0, due - loop.time()))
            key = f"sim:{message.task_id}:{index}:{planned.action.kind}"
            status = await self._send_answer(message, planned, key, "")
            waits = 0
            while status == 409 and key in self._waiting_for_answers and waits < self.settings.question_waits:
                # Its final part refused while its own question is unanswered: the system's next job run tries
                # again, as a real one does, rather than dropping the task.
                waits += 1
                await asyncio.sleep(self.settings.poll_interval_seconds)
                status = await self._send_answer(message, planned, key, "")
            rng = rng_for(self.settings.seed, "repeat", key)
            u = rng.random()
            if status is not None and status < 300 and u < self.settings.repeat_same_key_rate:
                await self._send_answer(message, planned, key, "same_key")
            elif (
                status is not None
                and status < 300
                and u < (self.settings.repeat_same_key_rate + self.settings.repeat_new_key_rate)
            ):
                await self._send_answer(message, planned, f"{key}:again", "new_key")
            # 404/410: the task is gone; 409 on a submission or return: it no longer accepts answers. A 409 on a
            # question or extension request (e.g. one already pending) leaves the rest of the plan standing.
            answers = isinstance(planned.action, SubmitPartAction | ReturnTaskAction)
            if status in (404, 410) or (status == 409 and answers):
                return

    async def _send_answer(
        self, message: TaskMessage, planned: PlannedAction, key: str, repeat: Literal["", "same_key", "new_key"]
    ) -> int | None:
        sent_at = time.monotonic()
        status, extension, unanswered = await self._act_with_retries(message, planned, key)
        if unanswered:
            self._waiting_for_answers.add(key)
        else:
            self._waiting_for_answers.discard(key)
        record = ActionRecord(
            message.task_id,
            message.kommune_kode,
            planned.action.kind,
            status,
            key,
            repeat,
            extension,
            sent_at=sent_at,
            answered_at=time.monotonic(),
        )
        self.actions.append(record)
        self.stats.actions[f"{planned.action.kind}:{status}"] += 1
        for observe in self.observers:
            observe(record)
        return status

    async def _act_with_retries(
        self, message: TaskMessage, planned: PlannedAction, key: str
    ) -> tuple[int | None, str | None, bool]:
        """The status, an extension request's answer, and whether it was refused for an unanswered question."""
        delay = self.settings.api_retry_delay
        status: int | None = None
        for attempt in range(1, self.settings.api_attempts + 1):
            try:
                response = await self._act(message, planned, key)
                status = response.status_code
                if status < 500:
                    body = response.body if isinstance(response.body, dict) else {}
                    extension = body.get("extension")
                    unanswered = status == 409 and "unanswered" in str(body)
                    return status, extension if isinstance(extension, str) else None, unanswered
            except (httpx.TransportError, ApiError) as exc:
                log.warning("simulator API call failed", kind=planned.action.kind, error=type(exc).__name__)
            if attempt < self.settings.api_attempts:
                self.stats.retries += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        return status, None, False

    def _extension(self, days: int) -> Duration:
        if self.settings.extension_unit == "seconds":
            seconds = max(1, round(days * 86400 / self.settings.compression))
            return Duration(quantity=seconds, unit=Unit.SECONDS)
        return Duration(quantity=days, unit=Unit.DAYS)

    async def _act(self, message: TaskMessage, planned: PlannedAction, key: str) -> ApiResponse:
        assert self.api is not None
        kode, task_id, action = message.kommune_kode, message.task_id, planned.action
        if isinstance(action, SubmitPartAction):
            documents = [
                document_upload(d, f"{d}.pdf", "application/pdf", _document_bytes(d)) for d in action.documents
            ]
            return await self.api.submit_part(
                kode, task_id, idempotency_key=key, documents=documents, final=action.final
            )
        if isinstance(action, RequestExtensionAction):
            return await self.api.request_extension(
                kode,
                task_id,
                idempotency_key=key,
                extend_by=self._extension(action.extend_by_days),
                reason=action.reason,
            )
        if isinstance(action, AskQuestionAction):
            return await self.api.ask_question(kode, task_id, idempotency_key=key, text=action.text)
        return await self.api.return_task(
            kode,
            task_id,
            idempotency_key=key,
            correct_kommune_kode=action.correct_kommune_kode,
            reason=action.reason,
        )

    # --- inbox polling ----------------------------------------------------------------------------------------

    async def poll_once(self, kode: str) -> int:
        """Fetch what is new in one kommune's inbox; returns how many new messages were accepted."""
        assert self.api is not None
        page = await self.api.poll_inbox(kode, after=self.cursors.get(kode, 0))
        new = sum(self.accept(m.message, via="inbox") for m in page.messages)
        self.cursors[kode] = page.next_after
        return new

    async def _poll_forever(self) -> None:
        while True:
            for kode in sorted(self.inbox_kommuner):
                if self.api is None or kode not in self.api.keys:
                    continue
                try:
                    while await self.poll_once(kode):
                        pass
                except (httpx.TransportError, ApiError) as exc:
                    log.warning("simulator inbox poll failed", kommune_kode=kode, error=type(exc).__name__)
            await asyncio.sleep(self.settings.poll_interval_seconds)

    async def start(self) -> None:
        if self.api is not None and self.inbox_kommuner:
            self._spawn(self._poll_forever())

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await t

    def snapshot(self) -> dict[str, Any]:
        s = self.stats
        return {
            "push_attempts": s.push_attempts,
            "rejected": dict(s.rejected),
            "answered": dict(s.answered),
            "received": dict(s.received),
            "duplicates": s.duplicates,
            "actions": dict(s.actions),
            "citizen_reads": dict(s.citizen_reads),
            "retries": s.retries,
            "pending_plans": len(self._tasks),
        }


def create_sim_app(sim: KommuneSimulator) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await sim.start()
        try:
            yield
        finally:
            await sim.stop()

    app = FastAPI(title="Sagsflow kommune simulator", version="1", lifespan=lifespan)
    app.state.sim = sim

    @app.post("/kommune/{kode}/tasks")
    async def receive_task(kode: str, request: Request) -> JSONResponse:
        status, content = await sim.handle_push(kode, request.headers, await request.body())
        return JSONResponse(status_code=status, content=content)

    @app.get("/sim/stats")
    async def stats() -> dict[str, Any]:
        return sim.snapshot()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
