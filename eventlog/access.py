"""The access log: who read which person's case, when and why, extractable per case and per person.

A read that cannot be tied to a case or a person (a codec-server decode of a payload that names no case) is recorded
with the Temporal namespace it was made for, and found by actor and time.

It holds ids, actors and purposes only. Free-text fields are checked so that a caller cannot smuggle personal data
(a CPR-shaped number) into the one table whose purpose is to be handed out.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventlog.db import Conn, Pool, unavailable_as_store_error
from runtime.logs import contains_cpr

MAX_TEXT = 200


class AccessLogError(ValueError):
    """A value the access log refuses. `code` says which rule (`contains_cpr`: it holds a CPR-shaped number, which
    the API answers with 400; `invalid`: any other) and `field` which value, so callers can name it."""

    def __init__(self, message: str, *, code: str = "invalid", field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


@dataclass(frozen=True)
class Access:
    """Who reads personal data and why; passed to every read that returns it."""

    actor: str
    purpose: str


@dataclass(frozen=True)
class AccessRecord:
    at: datetime
    actor: str
    case_id: str | None
    subject_id: str | None
    purpose: str
    what: str
    namespace: str | None = None


def _checked(field: str, value: str | None, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise AccessLogError(f"access log: {field} is required", field=field)
        return None
    if len(value) > MAX_TEXT:
        raise AccessLogError(f"access log: {field} is longer than {MAX_TEXT} characters", field=field)
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        # PostgreSQL text cannot hold NUL, and an auditor's listing should not be steered by control characters.
        raise AccessLogError(f"access log: {field} must not contain control characters", field=field)
    if contains_cpr(value):
        # The same rule as the log mask: a number it would mask must not sit in the table auditors hand out.
        raise AccessLogError(
            f"access log: {field} must not contain personal data (it looks like a CPR number)",
            code="contains_cpr",
            field=field,
        )
    return value


async def record_access_in(
    conn: Conn,
    access: Access,
    *,
    what: str,
    case_id: str | None = None,
    subject_id: str | None = None,
    namespace: str | None = None,
) -> None:
    """Write one access record on `conn` (in its transaction, if any). The subject defaults to the case's.

    `namespace` alone is for a read that names no case or person; with a case it says where the read was made."""
    actor = _checked("actor", access.actor, required=True)
    purpose = _checked("purpose", access.purpose, required=True)
    what_ = _checked("what", what, required=True)
    case_id = _checked("case_id", case_id, required=False)
    subject_id = _checked("subject_id", subject_id, required=False)
    namespace = _checked("namespace", namespace, required=False)
    if case_id is None and subject_id is None and namespace is None:
        raise AccessLogError("access log: a case_id, a subject_id or a namespace is required")
    await conn.execute(
        "INSERT INTO access_log (actor, case_id, subject_id, purpose, what, namespace)"
        " VALUES ($1, $2, coalesce($3, (SELECT subject_id FROM case_subjects WHERE case_id = $2)), $4, $5, $6)",
        actor,
        case_id,
        subject_id,
        purpose,
        what_,
        namespace,
    )


@dataclass(frozen=True)
class AccessEntry:
    """One record of a read: what was read, of which case or person, or (naming neither) in which namespace."""

    what: str
    case_id: str | None = None
    subject_id: str | None = None
    namespace: str | None = None


class AccessLog:
    """The access log table: reads are recorded here (the event store records its own, in its transactions)."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def record(
        self,
        access: Access,
        *,
        what: str,
        case_id: str | None = None,
        subject_id: str | None = None,
        namespace: str | None = None,
    ) -> None:
        """Record that `access.actor` read personal data of a case or person and why. `AccessLogError` for a record
        the log must not hold; `StoreUnavailable` if the database cannot take it."""
        await self.record_all(access, [AccessEntry(what, case_id, subject_id, namespace)])

    async def record_all(self, access: Access, entries: Sequence[AccessEntry]) -> None:
        """Several records of one read, all or none (one transaction)."""
        async with unavailable_as_store_error(), self._pool.acquire() as conn, conn.transaction():
            for e in entries:
                await record_access_in(
                    conn, access, what=e.what, case_id=e.case_id, subject_id=e.subject_id, namespace=e.namespace
                )

    async def find(
        self,
        *,
        case_id: str | None = None,
        subject_id: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[AccessRecord]:
        """Every access to a case, or to anything of a person (their cases included), oldest first; narrowed (or,
        with neither, selected) by actor and by time, `since` included and `until` excluded."""
        if case_id is not None and subject_id is not None:
            raise AccessLogError("give a case_id or a subject_id, not both")
        if case_id is None and subject_id is None and actor is None and since is None and until is None:
            raise AccessLogError("give a case_id, a subject_id, an actor or a time range")
        where: list[str] = []
        args: list[Any] = []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if case_id is not None:
            where.append(f"case_id = {arg(case_id)}")
        if subject_id is not None:
            p = arg(subject_id)
            where.append(f"(subject_id = {p} OR case_id IN (SELECT case_id FROM case_subjects WHERE subject_id = {p}))")
        if actor is not None:
            where.append(f"actor = {arg(actor)}")
        if since is not None:
            where.append(f"at >= {arg(since)}")
        if until is not None:
            where.append(f"at < {arg(until)}")
        rows = await self._pool.fetch(
            "SELECT at, actor, case_id, subject_id, purpose, what, namespace FROM access_log"
            f" WHERE {' AND '.join(where)} ORDER BY at, id",
            *args,
        )
        return [AccessRecord(**dict(r)) for r in rows]
