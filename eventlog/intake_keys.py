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

    async def claim(self, idempotency_key: str, fingerprint: bytes, case_id: uuid.UUID) -> IntakeClaim:
        """Record the key for this application and case, unless it is recorded already: either way, answer what the
        key stands for. Concurrent claims of one key agree on the first (one statement, no read-then-write race)."""
        row = await self._pool.fetchrow(
            "INSERT INTO intake_requests (idempotency_key, fingerprint, case_id) VALUES ($1, $2, $3)"
            " ON CONFLICT (idempotency_key) DO UPDATE SET idempotency_key = EXCLUDED.idempotency_key"
            " RETURNING fingerprint, case_id, (xmax = 0) AS inserted",
            idempotency_key,
            fingerprint,
            case_id,
        )
        assert row is not None  # RETURNING answers for the inserted and the updated row alike
        return IntakeClaim(bytes(row["fingerprint"]), row["case_id"], bool(row["inserted"]))
