"""Personal data in the event log, encrypted per data subject (crypto-shredding).

Every `personal` field is stored as an AES-GCM envelope under its subject's own data key. The data keys live in
`subject_keys`, wrapped with the master key ring (`runtime.crypto.KeyRing`). `forget_subject` deletes the wrapped key
and leaves a tombstone: from then on every `personal` field of that subject reads back as None, and nothing else in
the log changes, so every count, projection and report still adds up.

Idempotent appends need a content hash that a retry recomputes from plaintext, but a plain hash over CPR-shaped data
would be a fingerprint that outlives the key (a CPR number is guessable from a birth date in ~10^4 tries). So the
content hash covers everything except `personal`, and `personal` enters through an HMAC keyed from the subject's data
key (`personal_mac`), which is as dead as the ciphertext once the key is gone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from eventlog.db import Conn
from runtime.config import Settings
from runtime.crypto import NONCE_BYTES, KeyRing, KeyRingError, load_or_create_key_ring

ENVELOPE_MARK = "$enc"
ENVELOPE_ALG = "A256GCM/1"
_MAC_LABEL = b"sagsflow personal-mac v1"


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def is_envelope(value: Any) -> bool:
    return isinstance(value, dict) and value.get(ENVELOPE_MARK) == ENVELOPE_ALG


@dataclass(frozen=True)
class SubjectKey:
    subject_id: str
    key: bytes  # the unwrapped 32-byte data key


class SubjectCipher:
    """Wraps and unwraps subject data keys with the master ring; seals and opens `personal` values."""

    def __init__(self, ring: KeyRing, *, cache_size: int = 4096) -> None:
        self.ring = ring
        self._unwrapped: OrderedDict[tuple[str, str, bytes], bytes] = OrderedDict()
        self._cache_size = cache_size

    @classmethod
    def from_settings(cls, settings: Settings) -> SubjectCipher:
        """The configured master ring, or in the embedded default a dev ring generated into the data dir."""
        if settings.eventlog_key_file is not None:
            return cls(load_or_create_key_ring(settings.eventlog_key_file, create=False))
        settings.dev_fallback("SAGSFLOW_EVENTLOG_KEY_FILE")
        path = settings.data_dir / "eventlog-keys.json"
        try:
            return cls(load_or_create_key_ring(path))
        except FileExistsError:  # another process created it first: use theirs
            return cls(load_or_create_key_ring(path, create=False))

    @staticmethod
    def _wrap_aad(subject_id: str) -> bytes:
        return b"subject-key:" + subject_id.encode()

    def new_key(self, subject_id: str) -> tuple[str, bytes, bytes]:
        """(master key id, wrapped key, data key) for a new subject."""
        key = AESGCM.generate_key(bit_length=256)
        kid, wrapped = self.ring.encrypt(key, self._wrap_aad(subject_id))
        return kid, wrapped, key

    def unwrap(self, subject_id: str, master_key_id: str, wrapped: bytes) -> bytes:
        # Cached by the wrapped blob itself: callers only have the blob while the key row exists.
        ck = (subject_id, master_key_id, bytes(wrapped))
        key = self._unwrapped.get(ck)
        if key is None:
            try:
                key = self.ring.decrypt(master_key_id, bytes(wrapped), self._wrap_aad(subject_id))
            except InvalidTag:
                raise KeyRingError(f"subject key could not be unwrapped with master key {master_key_id!r}") from None
            self._unwrapped[ck] = key
            if len(self._unwrapped) > self._cache_size:
                self._unwrapped.popitem(last=False)
        else:
            self._unwrapped.move_to_end(ck)
        return key

    def forget_cached(self, subject_id: str) -> None:
        for ck in [ck for ck in self._unwrapped if ck[0] == subject_id]:
            del self._unwrapped[ck]

    @staticmethod
    def _aad(event_id: UUID, subject_id: str) -> bytes:
        # Binds a ciphertext to its event and subject: it cannot be moved into another event.
        return event_id.bytes + subject_id.encode()

    @staticmethod
    def seal(key: SubjectKey, event_id: UUID, value: Any) -> dict[str, str]:
        nonce = secrets.token_bytes(NONCE_BYTES)
        plain = canonical_json(value).encode()
        blob = nonce + AESGCM(key.key).encrypt(nonce, plain, SubjectCipher._aad(event_id, key.subject_id))
        return {ENVELOPE_MARK: ENVELOPE_ALG, "sub": key.subject_id, "ct": base64.b64encode(blob).decode()}

    @staticmethod
    def open(key: SubjectKey | None, event_id: UUID, envelope: dict[str, Any]) -> Any:
        """The plaintext value, or None when the subject's key is gone (or belongs to someone else)."""
        if key is None or envelope.get("sub") != key.subject_id:
            return None
        blob = base64.b64decode(envelope["ct"])
        try:
            plain = AESGCM(key.key).decrypt(
                blob[:NONCE_BYTES], blob[NONCE_BYTES:], SubjectCipher._aad(event_id, key.subject_id)
            )
        except InvalidTag:
            return None
        return json.loads(plain)

    @staticmethod
    def mac(key: SubjectKey, event_id: UUID, value: Any) -> bytes:
        mac_key = hmac.new(key.key, _MAC_LABEL, hashlib.sha256).digest()
        return hmac.new(mac_key, event_id.bytes + canonical_json(value).encode(), hashlib.sha256).digest()


async def subject_key(conn: Conn, cipher: SubjectCipher, subject_id: str, *, create: bool) -> SubjectKey | None:
    """The subject's data key; created on first use if `create`; None once the subject is forgotten."""
    if create:
        kid, wrapped, key = cipher.new_key(subject_id)
        row = await conn.fetchrow(
            "WITH ins AS ("
            " INSERT INTO subject_keys (subject_id, master_key_id, wrapped_key) VALUES ($1, $2, $3)"
            " ON CONFLICT (subject_id) DO NOTHING RETURNING master_key_id, wrapped_key, true AS fresh)"
            " SELECT * FROM ins"
            " UNION ALL SELECT master_key_id, wrapped_key, false FROM subject_keys WHERE subject_id = $1"
            " LIMIT 1",
            subject_id,
            kid,
            wrapped,
        )
        if row is None:
            # A concurrent first use committed between our insert's conflict and the statement's snapshot.
            row = await conn.fetchrow(
                "SELECT master_key_id, wrapped_key FROM subject_keys WHERE subject_id = $1", subject_id
            )
            assert row is not None
        elif row["fresh"]:
            return SubjectKey(subject_id, key)
    else:
        row = await conn.fetchrow(
            "SELECT master_key_id, wrapped_key FROM subject_keys WHERE subject_id = $1", subject_id
        )
        if row is None:
            return None
    if row["wrapped_key"] is None:
        return None
    return SubjectKey(subject_id, cipher.unwrap(subject_id, row["master_key_id"], row["wrapped_key"]))


async def case_subject(conn: Conn, case_id: str) -> str | None:
    value = await conn.fetchval("SELECT subject_id FROM case_subjects WHERE case_id = $1", case_id)
    return None if value is None else str(value)


async def forget_subject_in(conn: Conn, subject_id: str) -> bool:
    """Delete the subject's data key for good; True if a key existed. Idempotent."""
    async with conn.transaction():
        deleted = await conn.fetchval(
            "UPDATE subject_keys SET wrapped_key = NULL, master_key_id = NULL, forgotten_at = now()"
            " WHERE subject_id = $1 AND wrapped_key IS NOT NULL RETURNING true",
            subject_id,
        )
        # The tombstone stops a later append from minting a fresh key for a forgotten person.
        await conn.execute(
            "INSERT INTO subject_keys (subject_id, forgotten_at) VALUES ($1, now())"
            " ON CONFLICT (subject_id) DO NOTHING",
            subject_id,
        )
    return bool(deleted)
