"""API keys and ops tokens: stored hashed, checked in constant time, revocable; the FastAPI dependencies over HTTP;
and `sagsflow kommune add-key` as a real process."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import Depends, FastAPI

from api.auth import (
    AuthError,
    KommunePrincipal,
    OpsPrincipal,
    authenticate,
    authenticate_principal,
    create_key,
    create_ops_token,
    key_id_of,
    require_kommune,
    require_ops,
    revoke_key,
)
from api.state import ApiDeps
from sagsflow.crypto import KeyRing
from sagsflow.embedded import free_port
from tests.kommune.helpers import served

STATIC_OPS = "static-ops-token-for-tests"


async def test_key_is_stored_hashed_and_authenticates(pool: asyncpg.Pool) -> None:
    key = await create_key(pool, "0329", label="Ringsted sagssystem")
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

    assert await authenticate(pool, key) == "329"
    assert await authenticate(pool, f"  {key}  ") == "329"


async def test_wrong_unknown_and_malformed_keys_are_none(pool: asyncpg.Pool) -> None:
    key = await create_key(pool, "329")
    prefix, key_id, secret = key.split(".")
    other = await create_key(pool, "101")
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
        assert await authenticate(pool, bad) is None


async def test_revoked_key_is_none(pool: asyncpg.Pool) -> None:
    key = await create_key(pool, "329")
    key_id = key_id_of(key)
    assert key_id is not None
    assert await revoke_key(pool, key_id)
    assert await authenticate(pool, key) is None
    assert not await revoke_key(pool, key_id)  # already revoked


async def test_ops_token_is_not_a_kommune_key(pool: asyncpg.Pool) -> None:
    token = await create_ops_token(pool, label="vagt")
    assert token.startswith("sfo.")
    assert await authenticate(pool, token) is None
    principal = await authenticate_principal(pool, token)
    assert principal is not None
    assert principal.role == "ops"
    assert principal.kommune_kode is None


async def test_unknown_kommune_is_refused(pool: asyncpg.Pool) -> None:
    with pytest.raises(AuthError, match="98 kommune codes"):
        await create_key(pool, "999")
    assert await pool.fetchval("SELECT count(*) FROM api_keys") == 0


def _app(pool: asyncpg.Pool | None, key_ring: KeyRing) -> FastAPI:
    app = FastAPI()
    app.state.deps = ApiDeps(client=None, pool=pool, payload_ring=key_ring, ops_token=STATIC_OPS)

    @app.get("/k")
    async def as_kommune(p: KommunePrincipal = Depends(require_kommune)) -> dict[str, str]:
        return {"kommune": p.kommune_kode}

    @app.get("/o")
    async def as_ops(p: OpsPrincipal = Depends(require_ops)) -> dict[str, str]:
        return {"actor": p.actor}

    return app


async def test_dependencies_over_http(pool: asyncpg.Pool, key_ring: KeyRing) -> None:
    kommune_key = await create_key(pool, "766")
    ops_token = await create_ops_token(pool)
    revoked = await create_key(pool, "766")
    await revoke_key(pool, key_id_of(revoked) or "")

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async with served(_app(pool, key_ring)) as url, httpx.AsyncClient(base_url=url) as http:
        ok = await http.get("/k", headers=bearer(kommune_key))
        assert ok.status_code == 200
        assert ok.json() == {"kommune": "766"}
        assert (await http.get("/o", headers=bearer(ops_token))).json() == {"actor": key_id_of(ops_token)}
        assert (await http.get("/o", headers=bearer(STATIC_OPS))).json() == {"actor": "ops-token"}

        refusals = [
            await http.get("/k"),
            await http.get("/k", headers=bearer(revoked)),
            await http.get("/k", headers=bearer(kommune_key + "x")),
            await http.get("/k", headers=bearer(ops_token)),
            await http.get("/k", headers=bearer(STATIC_OPS)),
            await http.get("/k", headers={"Authorization": kommune_key}),  # no scheme
            await http.get("/o"),
            await http.get("/o", headers=bearer(kommune_key)),
            await http.get("/o", headers=bearer("nope")),
        ]
    for r in refusals:
        assert r.status_code == 401
        assert r.json() == {"detail": "Not authenticated"}  # the same answer whatever was wrong
        assert r.headers["www-authenticate"] == "Bearer"


async def test_ops_without_a_database_still_takes_the_static_token(key_ring: KeyRing) -> None:
    async with served(_app(None, key_ring)) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/o", headers={"Authorization": f"Bearer {STATIC_OPS}"})).status_code == 200
        assert (await http.get("/o", headers={"Authorization": "Bearer sfo.a.b"})).status_code == 401
        assert (await http.get("/k", headers={"Authorization": "Bearer sfk.a.b"})).status_code == 503


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
    assert await authenticate(pool, key) == "329"
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
