"""Intake idempotency keys: which application (by fingerprint) and which case an intake key was first used for."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from eventlog.db import Pool


@dataclass(frozen=True)
class IntakeClaim:
    """What a key stands for: the first application's fingerprint and case; `first` if this call recorded it."""

    fingerprint: bytes
    case_id: uuid.UUID
    first: bool


class IntakeKeys:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def claim(
        self, idempotency_key: str, fingerprint: bytes, case_id: uuid.UUID, *, plain_fingerprint: bytes
    ) -> IntakeClaim:
        """Record the key for this application and case, unless it is recorded already: either way, answer what the
        key stands for. Concurrent claims of one key agree on the first (one statement, no read-then-write race).

        `fingerprint` is the keyed one (HMAC with the subject pepper); `plain_fingerprint` the unkeyed hash that rows
        from before migration 0201 hold. Such a row is compared plain, and if it matches, rewritten keyed in the
        same statement, so the answer is the keyed fingerprint and the plain hash is gone."""
        row = await self._pool.fetchrow(
            "INSERT INTO intake_requests (idempotency_key, fingerprint, case_id, keyed) VALUES ($1, $2, $3, true)"
            " ON CONFLICT (idempotency_key) DO UPDATE SET"
            "   fingerprint = CASE WHEN NOT intake_requests.keyed AND intake_requests.fingerprint = $4"
            "     THEN EXCLUDED.fingerprint ELSE intake_requests.fingerprint END,"
            "   keyed = intake_requests.keyed OR intake_requests.fingerprint = $4"
            " RETURNING fingerprint, case_id, (xmax = 0) AS inserted",
            idempotency_key,
            fingerprint,
            case_id,
            plain_fingerprint,
        )
        assert row is not None  # RETURNING answers for the inserted and the updated row alike
        return IntakeClaim(bytes(row["fingerprint"]), row["case_id"], bool(row["inserted"]))
