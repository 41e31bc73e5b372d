"""Pushes signed by the Standard Webhooks specification, verified by its reference library (`standardwebhooks`), as a
kommune's vendor would verify them; secret rotation with two signatures during the overlap; a body damaged on the
way is refused and sent again, not lost. Real HTTP (uvicorn), real PostgreSQL, a real Temporal worker."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
import typer
from cryptography.exceptions import InvalidTag
from pydantic import SecretStr, ValidationError
from standardwebhooks import Webhook, WebhookVerificationError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.kommune_delivery import KommuneDelivery
from cli.kommune import _overlap
from domain.events import Channel
from domain.kommune_protocol import as_whsec, new_secret, secret_key, sign, signed_headers
from eventlog.channels import ChannelStore, DbChannels, NoPushChannel
from runtime.config import Settings
from runtime.crypto import KeyRing
from runtime.kommune_config import (
    ChannelConfig,
    KommuneSettings,
    PushChannel,
    StaticChannels,
    documents_key_ring,
    load_channel_file,
)
from runtime.temporal import sandbox_runner
from sim.server import KommuneSimulator, SimSettings
from sim.tamper import create_tamper_app
from tests.kommune.delivery_workflow import DeliverOnce
from tests.kommune.helpers import quiet_profiles, served
from tests.kommune.test_delivery import run_activity, task_input
from workflows.models import DeliveryReceipt

# The reference library's own signing test (standard-webhooks, libraries/python/tests/test_webhooks.py).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_matches_the_published_test_vector() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    headers = signed_headers([SPEC_SECRET], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    assert headers["webhook-id"] == SPEC_ID
    assert headers["webhook-timestamp"] == "1614265330"
    assert headers["webhook-signature"] == SPEC_SIGNATURE
    # The reference library agrees on a fresh timestamp (it refuses one older than five minutes).
    now = int(time.time())
    fresh = signed_headers([SPEC_SECRET], SPEC_ID, now, SPEC_BODY)
    assert Webhook(SPEC_SECRET).verify(SPEC_BODY, fresh) == {"test": 2432232314}


def test_secrets_old_and_new() -> None:
    # A secret stored before the standard is its own bytes: the vendor configures whsec_ + base64 of them.
    raw = "0123456789abcdef-an-older-raw-secret"
    assert secret_key(raw) == raw.encode()
    assert as_whsec(raw) == "whsec_" + base64.b64encode(raw.encode()).decode()
    now = int(time.time())
    body = b'{"a": 1}'
    Webhook(as_whsec(raw)).verify(body, signed_headers([raw], "t:task:1", now, body))
    # New secrets follow the spec: whsec_ and 32 random bytes; a malformed one is refused at configuration.
    fresh = new_secret()
    assert fresh.startswith("whsec_")
    assert len(secret_key(fresh)) == 32
    assert as_whsec(fresh) == fresh
    for bad in ("whsec_not*base64*at*all*!!", "whsec_" + base64.b64encode(b"too short").decode()):
        with pytest.raises(ValidationError) as caught:
            PushChannel(url="https://x.example", secret=SecretStr(bad))
        assert bad not in str(caught.value)


def test_two_signatures_during_the_overlap_and_one_after() -> None:
    old, new = new_secret(), new_secret()
    until = datetime(2026, 1, 2, tzinfo=UTC)
    channel = PushChannel(
        url="https://x.example", secret=SecretStr(new), previous_secret=SecretStr(old), previous_secret_until=until
    )
    assert channel.signing_secrets(until - timedelta(seconds=1)) == [new, old]
    assert channel.signing_secrets(until) == [new]
    with pytest.raises(ValidationError):
        PushChannel(url="https://x.example", secret=SecretStr(new), previous_secret=SecretStr(old))


def test_a_channels_file_rotates_with_a_previous_secret_and_its_end(tmp_path: Path) -> None:
    old, new = new_secret(), new_secret()
    (tmp_path / "push-101.old").write_text(old + "\n")
    path = tmp_path / "channels.toml"
    path.write_text(
        f"""
[kommuner.101]
kind = "push"
url = "https://sag.kk.example/tasks"
secret = "{new}"
previous_secret_file = "push-101.old"
previous_secret_until = 2026-12-04T09:00:00Z
"""
    )
    channel = load_channel_file(path).channel_for("101")
    assert isinstance(channel, PushChannel)
    assert channel.signing_secrets(datetime(2026, 12, 4, 8, tzinfo=UTC)) == [new, old]
    assert channel.signing_secrets(datetime(2026, 12, 4, 9, tzinfo=UTC)) == [new]


class Secrets:
    """What each kommune's system holds: changed by a test as a vendor would reconfigure it."""

    def __init__(self, **by_kode: str) -> None:
        self.by_kode = by_kode

    def __call__(self, kode: str) -> str | None:
        return self.by_kode.get(kode)


def simulator(secrets: Secrets) -> KommuneSimulator:
    return KommuneSimulator(quiet_profiles(), secrets, settings=SimSettings(act=False))


async def test_real_push_verifies_with_the_reference_library() -> None:
    secret = new_secret()
    sim = simulator(Secrets(**{"329": secret}))
    async with served(sim) as url, httpx.AsyncClient() as http:
        channel = PushChannel(url=f"{url}/kommune/329/tasks", secret=SecretStr(secret), rate_per_second=100)
        delivery = KommuneDelivery(None, StaticChannels(ChannelConfig(kommuner={"329": channel})), http)
        inp = task_input("329")
        assert await run_activity(delivery, inp) == DeliveryReceipt(channel=Channel.PUSH, status_code=200)
        # A retry after a lost answer carries the same webhook-id, so the kommune's system keeps one message.
        assert await run_activity(delivery, inp) == DeliveryReceipt(channel=Channel.PUSH, status_code=200)
    assert list(sim.received) == [f"{inp.task_id}:task:1"]
    assert sim.stats.duplicates == 1
    assert sim.stats.rejected == {}


async def test_rotation_signs_with_both_secrets_during_the_overlap_then_only_the_new(
    pool: asyncpg.Pool, key_ring: KeyRing
) -> None:
    store = ChannelStore(pool, key_ring)
    old = new_secret()
    held = Secrets(**{"329": old})
    sim = simulator(held)
    async with served(sim) as url, httpx.AsyncClient() as http:
        await store.set_channel("329", PushChannel(url=f"{url}/kommune/329/tasks", secret=SecretStr(old)))
        delivery = KommuneDelivery(None, DbChannels(store, ChannelConfig(), ttl=0), http)

        fresh, until = await store.rotate_secret("329", timedelta(hours=24))
        assert fresh.startswith("whsec_") and fresh != old
        assert until - datetime.now(UTC) == pytest.approx(timedelta(hours=24), abs=timedelta(minutes=1))
        # During the overlap the kommune's system verifies with either secret: the one it had, or the new one.
        assert (await run_activity(delivery, task_input("329"))).status_code == 200
        held.by_kode["329"] = fresh
        assert (await run_activity(delivery, task_input("329"))).status_code == 200

        # The overlap ends: only the new secret signs, and a system still on the old one refuses the push.
        await pool.execute("UPDATE kommune_channels SET previous_secret_until = now() - interval '1 second'")
        assert (await run_activity(delivery, task_input("329"))).status_code == 200
        held.by_kode["329"] = old
        with pytest.raises(ApplicationError, match=r"HTTP 401"):
            await run_activity(delivery, task_input("329"))
    assert sim.stats.rejected == {"bad_signature": 1}
    assert len(sim.received) == 3

    # Both secrets are stored encrypted, each bound to its place (the previous cannot pass for the current).
    row = await pool.fetchrow("SELECT * FROM kommune_channels WHERE kommune_kode = '329'")
    assert row is not None
    assert old.encode() not in bytes(row["previous_secret_enc"])
    assert fresh.encode() not in bytes(row["secret_enc"])
    await pool.execute(
        "UPDATE kommune_channels SET secret_enc = previous_secret_enc, secret_key_id = previous_secret_key_id"
    )
    with pytest.raises(InvalidTag):
        await store.channels()


async def test_rotation_needs_a_push_channel_and_a_new_channel_clears_the_overlap(
    pool: asyncpg.Pool, key_ring: KeyRing
) -> None:
    store = ChannelStore(pool, key_ring)
    with pytest.raises(NoPushChannel):
        await store.rotate_secret("329", timedelta(hours=1))
    await store.set_channel("329", PushChannel(url="https://x.example/hook", secret=SecretStr(new_secret())))
    await store.rotate_secret("329", timedelta(hours=1))
    rotated = (await store.channels())["329"]
    assert isinstance(rotated, PushChannel)
    assert rotated.previous_secret is not None
    await store.set_channel("329", PushChannel(url="https://x.example/hook", secret=SecretStr(new_secret())))
    replaced = (await store.channels())["329"]
    assert isinstance(replaced, PushChannel)
    assert replaced.previous_secret is None


def test_overlap_durations() -> None:
    assert _overlap("24h") == timedelta(hours=24)
    assert _overlap("90m") == timedelta(minutes=90)
    assert _overlap("7d") == timedelta(days=7)
    assert _overlap("0") == timedelta(0)
    for bad in ("soon", "-1h", "1.5h", ""):
        with pytest.raises(typer.Exit):
            _overlap(bad)


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "sagsflow"
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=120)


async def test_cli_rotates_and_prints_only_the_new_secret(db_url: str, pool: asyncpg.Pool, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": db_url, "SAGSFLOW_DATA_DIR": str(tmp_path)}
    none_yet = await asyncio.to_thread(_cli, ["kommune", "rotate-secret", "329"], env)
    assert none_yet.returncode == 1
    assert "no push channel" in none_yet.stderr

    made = await asyncio.to_thread(_cli, ["kommune", "channel", "329", "push", "--url", "https://r.example/h"], env)
    assert made.returncode == 0, made.stderr
    first = made.stdout.strip().splitlines()[1]
    assert first.startswith("whsec_")

    done = await asyncio.to_thread(_cli, ["kommune", "rotate-secret", "329", "--overlap", "2h"], env)
    assert done.returncode == 0, done.stderr
    (printed,) = done.stdout.strip().splitlines()  # the new secret, and nothing else, on stdout
    assert printed.startswith("whsec_")
    assert first not in done.stdout + done.stderr  # the old secret is never shown again
    assert printed not in done.stderr

    ring = documents_key_ring(Settings(SAGSFLOW_DATA_DIR=tmp_path), KommuneSettings())
    channel = (await ChannelStore(pool, ring).channels())["329"]
    assert isinstance(channel, PushChannel)
    assert channel.secret.get_secret_value() == printed
    assert channel.previous_secret is not None
    assert channel.previous_secret.get_secret_value() == first
    assert channel.previous_secret_until is not None
    left = channel.previous_secret_until - datetime.now(UTC)
    assert left == pytest.approx(timedelta(hours=2), abs=timedelta(minutes=1))


async def test_a_tampered_body_is_refused_and_the_delivery_retried_not_lost(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    secret = new_secret()
    sim = simulator(Secrets(**{"329": secret}))
    queue = f"webhooks-{uuid.uuid4().hex[:8]}"
    async with served(sim) as sim_url:
        hop = create_tamper_app(sim_url, damage=1)  # damages the first push on its way, keeps its signature
        async with served(hop) as hop_url, httpx.AsyncClient() as http:
            channel = PushChannel(url=f"{hop_url}/kommune/329/tasks", secret=SecretStr(secret), rate_per_second=100)
            delivery = KommuneDelivery(None, StaticChannels(ChannelConfig(kommuner={"329": channel})), http)
            client = time_skipping_env.client
            async with Worker(
                client,
                task_queue=queue,
                workflows=[DeliverOnce],
                activities=[delivery.deliver_task],
                workflow_runner=sandbox_runner(),
            ):
                inp = task_input("329")
                result = await client.execute_workflow(
                    DeliverOnce.run,
                    inp,
                    id=f"wf-{inp.task_id}",
                    task_queue=queue,
                    execution_timeout=timedelta(minutes=5),
                )
    assert result == DeliveryReceipt(channel=Channel.PUSH, status_code=200)
    assert hop.state.counts == {"left": 0, "forwarded": 2, "damaged": 1}
    assert sim.stats.rejected == {"bad_signature": 1}
    assert list(sim.received) == [f"{inp.task_id}:task:1"]
    assert sim.received[f"{inp.task_id}:task:1"].message.task_id == inp.task_id


def test_the_reference_library_refuses_a_signature_by_another_secret() -> None:
    # The receiver's side of the rotation, without a server: one signature each, any one verifying suffices.
    now = int(time.time())
    body = b"{}"
    a, b, c = new_secret(), new_secret(), new_secret()
    headers = signed_headers([a, b], "t:task:1", now, body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(a).verify(body, headers, json_parse=False)
    Webhook(b).verify(body, headers, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        Webhook(c).verify(body, headers, json_parse=False)
