"""The `kommune_inbox` table: messages for kommuner whose systems poll us instead of receiving pushes.

Written by the delivery activity, read by the kommune API (`GET /v1/kommune/tasks?after=<seq>`). Each kommune has
its own gap-free sequence; appends for one kommune serialise on a transaction-scoped advisory lock, so sequence
numbers become visible in order and a poller's cursor never skips a message that committed late. Polling with
`after=N` acknowledges everything up to N: the kommune's system confirms receipt by asking for what comes next.
"""

from __future__ import annotations

import json
from datetime import datetime

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from domain.kommune_protocol import TaskMessage

# Class id for pg_advisory_xact_lock(int, int); the second int is hashtext(kommune_kode).
INBOX_LOCK_CLASS = 0x5A6B
MAX_PAGE = 500


class InboxConflict(Exception):
    """A different message was stored under the same idempotency key: a bug upstream, never retried."""


class InboxMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    seq: int
    created_at: datetime
    message: TaskMessage


class InboxPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    messages: list[InboxMessage]
    next_after: int = Field(description="Pass as `after` on the next poll; it acknowledges everything up to it")


class InboxStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def append(self, message: TaskMessage) -> int:
        """Store `message` once; a retry with the same idempotency key returns the first sequence number."""
        body = message.model_dump(mode="json")
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", INBOX_LOCK_CLASS, message.kommune_kode)
            existing = await conn.fetchrow(
                "SELECT seq, body FROM kommune_inbox WHERE idempotency_key = $1", message.message_id
            )
            if existing is not None:
                if json.loads(existing["body"]) != body:
                    raise InboxConflict("a different message is already stored under this idempotency key")
                return int(existing["seq"])
            seq = await conn.fetchval(
                "SELECT coalesce(max(seq), 0) + 1 FROM kommune_inbox WHERE kommune_kode = $1", message.kommune_kode
            )
            await conn.execute(
                """
                INSERT INTO kommune_inbox (kommune_kode, seq, idempotency_key, task_id, case_id, kind, body)
                VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
                """,
                message.kommune_kode,
                seq,
                message.message_id,
                message.task_id,
                message.case_id,
                message.kind,
                json.dumps(body),
            )
            return int(seq)

    async def poll(self, kommune_kode: str, *, after: int = 0, limit: int = 100) -> InboxPage:
        """Messages with seq > `after`, oldest first; marks those up to `after` as acknowledged."""
        limit = max(1, min(limit, MAX_PAGE))
        async with self.pool.acquire() as conn, conn.transaction():
            if after > 0:
                await conn.execute(
                    "UPDATE kommune_inbox SET acked_at = now()"
                    " WHERE kommune_kode = $1 AND seq <= $2 AND acked_at IS NULL",
                    kommune_kode,
                    after,
                )
            rows = await conn.fetch(
                "SELECT seq, created_at, body FROM kommune_inbox WHERE kommune_kode = $1 AND seq > $2 "
                "ORDER BY seq LIMIT $3",
                kommune_kode,
                after,
                limit,
            )
        messages = [
            InboxMessage(seq=r["seq"], created_at=r["created_at"], message=TaskMessage.model_validate_json(r["body"]))
            for r in rows
        ]
        return InboxPage(messages=messages, next_after=messages[-1].seq if messages else after)
