"""The `deliver_task` activity: a task, reminder or notice to one kommune's system, by push or inbox.

Register the bound method with the worker::

    delivery = KommuneDelivery(InboxStore(pool), channels, http_client)
    Worker(client, task_queue=..., activities=[delivery.deliver_task, ...])

Outcome contract for the workflow:

- returns `DeliveryReceipt` when the kommune's system accepted the message (2xx) or it is in the inbox;
- raises a retryable `ApplicationError` (type `DeliveryTemporarilyFailed`) on 5xx, 408, 429, timeouts and
  connection errors: Temporal retries with the workflow's backoff (429/503 `Retry-After` sets the next delay);
- raises the retryable error on the first few 401s too (the kommune refused our signature: see `_push`);
- raises `ApplicationError(non_retryable=True, type="DeliveryRejected")` when retrying cannot help (another 4xx,
  401 after those retries, a redirect, no channel configured): the workflow records `OplysningDeliveryFailed` with
  the message, which is technical only (kommune code, HTTP status), never personal data, and escalates to
  operations.

Calls to one kommune are throttled in-process by a rate limiter per kommune code (the channel's `rate_per_second`
and `burst`). A message that must wait more than a second does not wait in the activity: it keeps its place and
fails retryably (type `DeliveryRateLimited`) with the wait as the next retry delay, so the worker slot is free for
other kommuner and for the event-log appends meanwhile. With several worker processes the per-process limits add up;
to cap the total, also run the activity on its own task queue with `Worker(max_task_queue_activities_per_second=...)`,
which Temporal enforces across all workers of that queue.

Its input and result are the workflows' own models (workflows/models.py: KommuneMessage, DeliveryReceipt).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.events import Channel
from domain.kommune_protocol import TaskMessage, citizen_path, idempotency_key, signed_headers
from workflows.models import DELIVER_TASK, DeliveryReceipt, KommuneMessage

if TYPE_CHECKING:
    import httpx

    from eventlog.db import Pool
    from eventlog.inbox import InboxStore
    from runtime.config import Settings
    from runtime.kommune_config import ChannelSource, PushChannel

REJECTED = "DeliveryRejected"
TEMPORARY = "DeliveryTemporarilyFailed"
# Not a failure: the message waits for its place under the kommune's rate limit (retried when it is due).
RATE_LIMITED = "DeliveryRateLimited"
RETRYABLE_4XX = frozenset({408, 429})
# Attempts at a push answered 401 before it fails for good: with the workflows' backoff (1 s doubling) the first
# seven span about two minutes, well past the workers' channel cache.
SIGNATURE_REFUSED_ATTEMPTS = 8
MAX_RETRY_AFTER = timedelta(hours=1)


# --- rate limiting ---------------------------------------------------------------------------------------------------

Clock = Callable[[], float]
# A wait this short is slept inside the activity (cheaper than a retry round trip); a longer one gives the worker
# slot back and comes back as a retry when its place in the kommune's queue is due.
SHORT_WAIT_SECONDS = 1.0
# A place nobody came back for (the retry went to another worker, the task closed) is forgotten after this long.
RESERVATION_TTL_SECONDS = 300.0


class TokenBucket:
    """`rate` calls a second, `burst` at once, as a generic cell rate algorithm with reservations: a call that must
    wait is given its place in the queue (the instant it may go) under its key, so asking again with the same key
    later takes that place instead of joining the end. Nothing here sleeps."""

    def __init__(self, rate: float, burst: int, clock: Clock) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._interval = 1.0 / rate
        self._tolerance = (burst - 1) * self._interval
        self._theoretical_arrival = clock()
        self._places: dict[str, float] = {}

    def reserve(self, key: str) -> float:
        """Seconds until the call `key` may go; 0.0: go now (its place is used up)."""
        now = self._clock()
        place = self._places.pop(key, None)
        if place is not None:
            if place <= now:
                return 0.0
            self._places[key] = place
            return place - now
        if len(self._places) > 1000:
            self._places = {k: t for k, t in self._places.items() if t > now - RESERVATION_TTL_SECONDS}
        arrival = max(self._theoretical_arrival, now)
        allowed_at = arrival - self._tolerance
        self._theoretical_arrival = arrival + self._interval
        if allowed_at <= now:
            return 0.0
        self._places[key] = allowed_at
        return allowed_at - now


class KommuneRateLimiter:
    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def reserve(self, kommune_kode: str, rate: float, burst: int, key: str) -> float:
        bucket = self._buckets.get(kommune_kode)
        if bucket is None or bucket.rate != rate or bucket.burst != burst:
            bucket = self._buckets[kommune_kode] = TokenBucket(rate, burst, self._clock)
        return bucket.reserve(key)


# --- the activity ----------------------------------------------------------------------------------------------------


def _rejected(kommune_kode: str, reason: str, status_code: int | None = None) -> ApplicationError:
    return ApplicationError(
        f"kommune {kommune_kode}: {reason}",
        {"kommune_kode": kommune_kode, "status_code": status_code},
        type=REJECTED,
        non_retryable=True,
    )


def _temporary(
    kommune_kode: str, reason: str, status_code: int | None = None, retry_after: timedelta | None = None
) -> ApplicationError:
    return ApplicationError(
        f"kommune {kommune_kode}: {reason}",
        {"kommune_kode": kommune_kode, "status_code": status_code},
        type=TEMPORARY,
        next_retry_delay=retry_after,
    )


def _retry_after(value: str | None) -> timedelta | None:
    if value is None or not value.strip().isdigit():
        return None  # the HTTP-date form is rare for webhooks; Temporal's own backoff is a fine fallback
    return min(timedelta(seconds=int(value.strip())), MAX_RETRY_AFTER)


def _default_seq(inp: KommuneMessage) -> str:
    if inp.seq is not None:
        return str(inp.seq)
    if inp.kind == "task":
        return "1"
    if inp.kind == "notice" and inp.notice:
        return inp.notice
    info = activity.info()
    digest = hashlib.sha256(f"{info.workflow_run_id}:{info.activity_id}".encode()).hexdigest()
    return f"a{digest[:12]}"


class KommuneDelivery:
    def __init__(
        self,
        inbox: InboxStore | None,
        channels: ChannelSource,
        http_client: httpx.AsyncClient,
        *,
        limiter: KommuneRateLimiter | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.inbox = inbox
        self.channels = channels
        self.http = http_client
        self.limiter = limiter or KommuneRateLimiter()
        self._wall_clock = clock
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings, pool: Pool | None, http_client: httpx.AsyncClient) -> KommuneDelivery:
        """The worker's wiring: channels from `kommune_channels` (with a pool) over the channels file or the dev
        default (see `runtime.kommune_config`)."""
        from eventlog.channels import ChannelStore, DbChannels
        from eventlog.inbox import InboxStore
        from runtime.kommune_config import KommuneSettings, StaticChannels, base_channel_config
        from runtime.kommune_config import documents_key_ring as ring_for

        ksettings = KommuneSettings()
        base = base_channel_config(settings, ksettings)
        if pool is None:
            return cls(None, StaticChannels(base), http_client)
        return cls(InboxStore(pool), DbChannels(ChannelStore(pool, ring_for(settings, ksettings)), base), http_client)

    def message_for(self, inp: KommuneMessage) -> TaskMessage:
        return TaskMessage(
            message_id=idempotency_key(inp.task_id, inp.kind, _default_seq(inp)),
            task_id=inp.task_id,
            case_id=inp.case_id,
            kommune_kode=inp.kommune_kode,
            kind=inp.kind,
            deadline_at=inp.deadline_at,
            requested_documents=inp.requested_documents,
            notice=inp.notice,
            # Built here, not in the workflow: the path is derived from the task id alone, so every retry carries
            # the same message (the inbox compares a retry with what it stored) and no workflow history changes.
            # Notices go out when the task has closed or is closing, when the path answers 404 anyway.
            citizen_path=citizen_path(inp.task_id) if inp.kind != "notice" else None,
        )

    @activity.defn(name=DELIVER_TASK)
    async def deliver_task(self, inp: KommuneMessage) -> DeliveryReceipt:
        from runtime.kommune_config import PushChannel

        channel = await self.channels.channel_for(inp.kommune_kode)
        if channel is None:
            raise _rejected(inp.kommune_kode, "no delivery channel is configured")
        message = self.message_for(inp)
        if isinstance(channel, PushChannel):
            return await self._push(channel, message)
        return await self._to_inbox(message)

    async def _to_inbox(self, message: TaskMessage) -> DeliveryReceipt:
        from eventlog.inbox import InboxConflict

        if self.inbox is None:
            raise _rejected(message.kommune_kode, "inbox channel configured but this worker has no database")
        try:
            seq = await self.inbox.append(message)
        except InboxConflict:
            raise _rejected(message.kommune_kode, "inbox already holds a different message under this key") from None
        activity.logger.info("task message stored in inbox", extra={"kommune_kode": message.kommune_kode, "seq": seq})
        return DeliveryReceipt(channel=Channel.INBOX)

    async def _wait_for_turn(self, channel: PushChannel, message: TaskMessage) -> None:
        """Return when the kommune's rate limit lets this message go. A long wait is not spent holding a worker
        slot: the activity fails retryably with the wait as its next retry delay, keeping its place in the queue,
        so a backlog to one slow kommune never stalls deliveries to the others or the event-log appends."""
        key = message.message_id
        wait = self.limiter.reserve(message.kommune_kode, channel.rate_per_second, channel.burst, key)
        if wait <= 0.0:
            return
        if wait > SHORT_WAIT_SECONDS:
            raise ApplicationError(
                f"kommune {message.kommune_kode}: waiting {wait:.1f} s for its rate limit",
                {"kommune_kode": message.kommune_kode, "status_code": None},
                type=RATE_LIMITED,
                next_retry_delay=timedelta(seconds=wait),
            )
        await self._sleep(wait)
        self.limiter.reserve(message.kommune_kode, channel.rate_per_second, channel.burst, key)

    async def _push(self, channel: PushChannel, message: TaskMessage) -> DeliveryReceipt:
        import httpx

        kode = message.kommune_kode
        await self._wait_for_turn(channel, message)
        body = message.model_dump_json().encode()
        now = self._wall_clock()
        # Signed per attempt: a retry carries a fresh timestamp (receivers refuse stale ones) under the same id.
        signing = channel.signing_secrets(datetime.fromtimestamp(now, UTC))
        headers = signed_headers(signing, message.message_id, int(now), body)
        try:
            response = await self.http.post(
                channel.url,
                content=body,
                headers=headers,
                timeout=httpx.Timeout(channel.timeout_seconds),
                follow_redirects=False,
            )
        except httpx.TimeoutException:
            raise _temporary(kode, "push timed out") from None
        except httpx.TransportError as exc:
            raise _temporary(kode, f"push failed to connect ({type(exc).__name__})") from None
        status = response.status_code
        if 200 <= status < 300:
            return DeliveryReceipt(channel=Channel.PUSH, status_code=status)
        if status >= 500 or status in RETRYABLE_4XX:
            retry_after = _retry_after(response.headers.get("retry-after"))
            raise _temporary(kode, f"push answered HTTP {status}", status, retry_after)
        if status == 401 and activity.info().attempt < SIGNATURE_REFUSED_ATTEMPTS:
            # A refused signature can heal: a body damaged in transit, or a kommune that switched to a rotated
            # secret before this worker's channel cache (30 s) did. A few retries span that; a wrong secret then
            # fails for good below, so operations see it instead of a silent retry loop.
            raise _temporary(kode, "push signature refused (HTTP 401)", status)
        if 300 <= status < 400:
            raise _rejected(kode, f"push answered with a redirect (HTTP {status}): fix the channel URL", status)
        # The response body is the kommune's and may echo anything: only the status goes into the failure.
        raise _rejected(kode, f"push rejected with HTTP {status}", status)
