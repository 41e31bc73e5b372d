"""Kommune API keys: stored hashed, checked in constant time, revocable; and `sagsflow kommune add-key` as a
real process. How the API's routes take them over HTTP is tests/api/test_auth_routes.py, on the app as `sagsflow api`
builds it."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from eventlog.api_keys import ApiKeys, AuthError, key_id_of
from runtime.embedded import free_port


async def test_key_is_stored_hashed_and_authenticates(pool: asyncpg.Pool) -> None:
    key = await ApiKeys(pool).create_kommune_key("0329", label="Ringsted sagssystem")
    prefix, key_id, secret = key.split(".")
    assert prefix == "sfk"
    assert len(secret) >= 43  # 32 random bytes, base64

    row = await pool.fetchrow("SELECT * FROM api_keys WHERE key_id = $1", key_id)
    assert row is not None
    assert row["kommune_kode"] == "329"
    assert bytes(row["secret_hash"]) == hashlib.sha256(secret.encode()).digest()
    stored = " ".join(str(v) for v in dict(row).values())
    assert secret not in stored
    assert key not in stored

    assert await ApiKeys(pool).kommune_of(key) == "329"
    assert await ApiKeys(pool).kommune_of(f"  {key}  ") == "329"


async def test_wrong_unknown_and_malformed_keys_are_none(pool: asyncpg.Pool) -> None:
    key = await ApiKeys(pool).create_kommune_key("329")
    prefix, key_id, secret = key.split(".")
    other = await ApiKeys(pool).create_kommune_key("101")
    for bad in (
        f"{prefix}.{key_id}.{secret[:-1]}x",  # wrong secret
        f"{prefix}.{'0' * 16}.{secret}",  # unknown id
        f"sfo.{key_id}.{secret}",  # right secret, wrong role prefix
        f"{prefix}.{key_id}.{other.split('.')[2]}",  # another kommune's secret under this id
        key.replace(".", "_"),
        "",
        None,
        "Bearer " + key,
    ):
        assert await ApiKeys(pool).kommune_of(bad) is None


async def test_revoked_key_is_none(pool: asyncpg.Pool) -> None:
    key = await ApiKeys(pool).create_kommune_key("329")
    key_id = key_id_of(key)
    assert key_id is not None
    assert await ApiKeys(pool).revoke(key_id)
    assert await ApiKeys(pool).kommune_of(key) is None
    assert not await ApiKeys(pool).revoke(key_id)  # already revoked


async def test_unknown_kommune_is_refused(pool: asyncpg.Pool) -> None:
    with pytest.raises(AuthError, match="98 kommune codes"):
        await ApiKeys(pool).create_kommune_key("999")
    assert await pool.fetchval("SELECT count(*) FROM api_keys") == 0


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "sagsflow"
    return subprocess.run([str(exe), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def _env(tmp_path: Path, database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SAGSFLOW_DATABASE_URL"}}
    env["SAGSFLOW_DATA_DIR"] = str(tmp_path / "data")
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


async def test_cli_add_key_prints_a_working_key_once(db_url: str, pool: asyncpg.Pool, tmp_path: Path) -> None:
    done = await asyncio.to_thread(_cli, ["kommune", "add-key", "329"], _env(tmp_path, db_url), tmp_path)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert "\n" not in key
    assert await ApiKeys(pool).kommune_of(key) == "329"
    assert "not shown again" in done.stderr

    bad = await asyncio.to_thread(_cli, ["kommune", "add-key", "999"], _env(tmp_path, db_url), tmp_path)
    assert bad.returncode == 1
    assert "98 kommune codes" in bad.stderr
    assert "Traceback" not in bad.stderr


async def test_cli_without_a_database_says_so(tmp_path: Path) -> None:
    nowhere = f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/postgres"
    done = await asyncio.to_thread(_cli, ["kommune", "add-key", "329"], _env(tmp_path, nowhere), tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("cannot reach PostgreSQL at 127.0.0.1:")
    assert "set DATABASE_URL" in done.stderr
    assert "hunter2" not in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
