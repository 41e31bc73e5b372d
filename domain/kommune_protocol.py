"""The wire protocol between Sagsflow and kommune systems, shared by the delivery activity and the simulator.

A push is `POST <the kommune's URL>` with a JSON `TaskMessage` body, signed by the Standard Webhooks specification
(https://www.standardwebhooks.com, symmetric `v1` scheme) so a kommune's vendor can verify it with a ready-made
library, e.g. Python's `standardwebhooks.Webhook(secret).verify(body, headers)`:

- `webhook-id`: the message id, `<task id>:<kind>:<seq>`: the same on every retry of one message, so the receiver
  deduplicates by it;
- `webhook-timestamp`: unix seconds of this attempt (new on every retry): receivers reject stale ones, which bounds
  replays;
- `webhook-signature`: space-separated `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`; one signature
  normally, two while a rotated-out secret still signs (`sagsflow kommune rotate-secret`): the receiver accepts the
  message if any one verifies with the secret it holds.

The receiver verifies over the raw body bytes (never a re-serialisation). Secrets are `whsec_<base64 of the key>`;
a secret set before the standard (any other string) is used as its own UTF-8 bytes, i.e. it reads as `whsec_` +
base64 of those bytes, so existing kommune configurations verify unchanged.

The body never carries the citizen's identity: the kommune fetches that over the authenticated API, at the path a
task's messages name (`citizen_path`: `GET /v1/kommune/tasks/<task id>/citizen`), so a misdirected or logged push
leaks nothing personal.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"
# The spec's bounds for a symmetric key: at least 24 bytes (192 bits), at most 64.
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64
NEW_KEY_BYTES = 32

MessageKind = Literal["task", "reminder", "notice"]
# The kommune API route that answers whom a task concerns (api/kommune_routes.py serves it).
CITIZEN_PATH = "/v1/kommune/tasks/{task_id}/citizen"


def citizen_path(task_id: str) -> str:
    return CITIZEN_PATH.format(task_id=task_id)


class TaskMessage(BaseModel):
    """What a kommune receives, by push or from its inbox. No personal data by construction."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: str = Field(
        description="The idempotency key, also sent as `webhook-id`: `<task id>:<kind>:<seq>`; equal on every retry"
    )
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
    """The message id, also the `webhook-id`. Task ids are uuids and kinds words, so it never holds a `.`, which the
    spec forbids in an id (it is the signed content's delimiter)."""
    return f"{task_id}:{kind}:{seq}"


# --- Standard Webhooks signing (pure: the workflow sandbox may import this module) ------------------------------


class SecretFormatError(ValueError):
    """A `whsec_` secret that is not base64 of a key of allowed length. The message never holds the secret."""


def new_secret() -> str:
    """A fresh secret in the spec's format, for a new channel or a rotation."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(NEW_KEY_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a secret stands for: a `whsec_` secret's base64 payload, any other secret its own bytes."""
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise SecretFormatError("a whsec_ secret must be base64 after the prefix") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise SecretFormatError(f"a whsec_ secret must hold {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes of key")
    return key


def as_whsec(secret: str) -> str:
    """The secret in `whsec_` form: what a kommune's vendor configures in a Standard Webhooks library, also for a
    secret set before the standard."""
    return secret if secret.startswith(SECRET_PREFIX) else SECRET_PREFIX + base64.b64encode(secret.encode()).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of `{msg_id}.{timestamp}.{body}`."""
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def signed_headers(secrets_in_force: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one push attempt, signed with every secret in force (the current one first)."""
    signatures = [sign(s, msg_id, timestamp, body) for s in secrets_in_force]
    if not signatures:
        raise ValueError("a push needs at least one secret to sign with")
    return {
        "Content-Type": "application/json",
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: " ".join(signatures),
    }
