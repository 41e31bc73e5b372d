"""AES-GCM key rings shared by the Temporal payload codec, the event log and the document store.

A key ring file is JSON: ``{"active": "<key id>", "keys": {"<key id>": "<base64 32 bytes>", ...}}``. New data is
encrypted with the active key; old key ids stay readable until they are removed, which is how keys rotate.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class KeyRingError(Exception):
    pass


@dataclass(frozen=True)
class KeyRing:
    active: str
    keys: dict[str, bytes]
    # One cipher per key, built once: every Temporal payload passes through here, and building the cipher per call
    # was most of the codec's cost.
    _ciphers: dict[str, AESGCM] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise KeyRingError(f"active key id {self.active!r} is not in the key ring")
        for kid, key in self.keys.items():
            if len(key) != 32:
                raise KeyRingError(f"key {kid!r} must be 32 bytes (AES-256)")
        object.__setattr__(self, "_ciphers", {kid: AESGCM(key) for kid, key in self.keys.items()})

    @classmethod
    def generate(cls, key_id: str = "dev-1") -> KeyRing:
        return cls(active=key_id, keys={key_id: AESGCM.generate_key(bit_length=256)})

    @classmethod
    def from_json(cls, text: str) -> KeyRing:
        try:
            raw = json.loads(text)
            keys = {kid: base64.b64decode(val) for kid, val in raw["keys"].items()}
            return cls(active=raw["active"], keys=keys)
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyRingError(f"malformed key ring: {type(exc).__name__}") from None

    def to_json(self) -> str:
        keys = {kid: base64.b64encode(k).decode() for kid, k in self.keys.items()}
        return json.dumps({"active": self.active, "keys": keys}, indent=2)

    def encrypt(self, plaintext: bytes, associated_data: bytes | None = None) -> tuple[str, bytes]:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return self.active, nonce + self._ciphers[self.active].encrypt(nonce, plaintext, associated_data)

    def decrypt(self, key_id: str, blob: bytes, associated_data: bytes | None = None) -> bytes:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise KeyRingError(f"unknown key id {key_id!r}")
        return cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated_data)


def load_or_create_key_ring(path: Path, *, create: bool = True) -> KeyRing:
    """Read a key ring; in the embedded default, generate one (mode 0600) the first time."""
    if path.exists():
        return KeyRing.from_json(path.read_text())
    if not create:
        raise KeyRingError(f"key file {path} does not exist")
    ring = KeyRing.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(ring.to_json())
    return ring


def load_or_create_secret(path: Path, *, create: bool = True) -> bytes:
    """A 32-byte secret kept in a file (mode 0600); the embedded default generates it once."""
    if path.exists():
        return base64.b64decode(path.read_text().strip())
    if not create:
        raise KeyRingError(f"secret file {path} does not exist")
    secret = secrets.token_bytes(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(secret).decode())
    return secret


def subject_id_of_cpr(cpr: str, pepper: bytes) -> str:
    """The subject id of a normalised CPR number (DDMMYY-SSSS): intake files a case under it, and an auditor's
    search by CPR number must find exactly that id."""
    return subject_id_for(cpr.replace("-", ""), pepper)


def subject_id_for(cpr_digits: str, pepper: bytes) -> str:
    """A stable pseudonym for a person: keyed, so it cannot be reversed by trying all CPR numbers."""
    return "subj-" + hmac.new(pepper, cpr_digits.encode(), hashlib.sha256).hexdigest()[:32]
