"""The wire protocol between Sagsflow and kommune systems, shared by the delivery activity and the simulator.

A push is `POST <the kommune's URL>` with a JSON `TaskMessage` body and three headers:

- `X-Sagsflow-Timestamp`: unix seconds when the request was signed,
- `X-Sagsflow-Signature`: `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>` with the kommune's own secret,
- `Idempotency-Key`: `<task id>:<kind>:<seq>`, the same on every retry of one message.

The receiver recomputes the signature over the raw body bytes (never a re-serialisation) and rejects timestamps
outside a tolerance window, which bounds replays. The body never carries the citizen's identity: the kommune fetches
that over the authenticated API, at the path a task's messages name (`citizen_path`: `GET
/v1/kommune/tasks/<task id>/citizen`), so a misdirected or logged push leaks nothing personal.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TIMESTAMP_HEADER = "X-Sagsflow-Timestamp"
SIGNATURE_HEADER = "X-Sagsflow-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_PREFIX = "sha256="
# Five minutes either way: generous for clock skew, short enough that a captured request is soon useless.
DEFAULT_TOLERANCE_SECONDS = 300

MessageKind = Literal["task", "reminder", "notice"]
# The kommune API route that answers whom a task concerns (api/kommune_routes.py serves it).
CITIZEN_PATH = "/v1/kommune/tasks/{task_id}/citizen"


def citizen_path(task_id: str) -> str:
    return CITIZEN_PATH.format(task_id=task_id)


class TaskMessage(BaseModel):
    """What a kommune receives, by push or from its inbox. No personal data by construction."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: str = Field(description="The idempotency key: `<task id>:<kind>:<seq>`; equal on every retry")
    task_id: str
    case_id: str
    kommune_kode: str
    kind: MessageKind
    deadline_at: datetime | None = None
    requested_documents: tuple[str, ...] = ()
    notice: str | None = Field(default=None, description="For kind=notice: decision | withdrawn | task_closed")
    citizen_path: str | None = Field(
        default=None,
        description="For a task or reminder: the API path (`GET`, with the kommune's key) that answers whom the task "
        "concerns while it is open. Unset on notices and on messages stored before it existed",
    )


def idempotency_key(task_id: str, kind: str, seq: int | str) -> str:
    return f"{task_id}:{kind}:{seq}"


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def signed_headers(secret: str, timestamp: int, body: bytes, key: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        IDEMPOTENCY_HEADER: key,
    }


def verify_signature(
    secret: str,
    timestamp: str | None,
    presented: str | None,
    body: bytes,
    *,
    now: float,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """True only for a well-formed, fresh timestamp and a matching signature (constant-time compare)."""
    if not timestamp or not presented or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > tolerance_seconds:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body).encode(), presented.strip().encode())
