"""API keys for the simulator: one per kommune, created in the database and kept in a file (mode 0600)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from eventlog.api_keys import ApiKeys
from eventlog.db import Pool
from sim.population import populations


def read_keys_file(path: Path) -> dict[str, str]:
    raw = json.loads(path.read_text())
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise ValueError(f"{path} must hold a JSON object of kommune code -> API key")
    return dict(raw)


def write_keys_file(path: Path, keys: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(keys, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _read_if_exists(path: Path) -> dict[str, str] | None:
    return read_keys_file(path) if path.exists() else None


async def provision_sim_keys(pool: Pool, path: Path) -> dict[str, str]:
    """Keys for all 98 kommuner: reuse those in `path` that still authenticate, create the rest."""
    existing = await asyncio.to_thread(_read_if_exists, path)
    keys = dict(existing or {})
    api_keys = ApiKeys(pool)
    for k in populations():
        current = keys.get(k.kode)
        if current is None or await api_keys.kommune_of(current) != k.kode:
            keys[k.kode] = await api_keys.create_kommune_key(k.kode, label="simulator")
    if keys != existing:
        await asyncio.to_thread(write_keys_file, path, keys)
    return keys
