"""Channel configuration: the file formats, the dev default, the database override and its CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest
from pydantic import SecretStr, ValidationError

from activities.kommune_delivery import KommuneDelivery
from eventlog.channels import ChannelStore, DbChannels
from runtime.config import Settings
from runtime.crypto import KeyRing
from runtime.kommune_config import (
    ChannelConfigError,
    InboxChannel,
    KommuneSettings,
    PushChannel,
    base_channel_config,
    derive_push_secret,
    dev_channel_config,
    documents_key_ring,
    load_channel_file,
    parse_channel_config,
)
from sim.server import dev_secrets

TOML = """
[defaults]
kind = "inbox"

[kommuner.101]
kind = "push"
url = "https://sag.kk.example/tasks"
secret_file = "push-101.secret"
rate_per_second = 5

[kommuner."0329"]
kind = "push"
url = "https://ringsted.example/hook"
secret = "0123456789abcdef-ringsted"
"""


def test_toml_file_with_defaults_and_secret_file(tmp_path: Path) -> None:
    (tmp_path / "push-101.secret").write_text("a-long-secret-for-koebenhavn\n")
    path = tmp_path / "channels.toml"
    path.write_text(TOML)
    config = load_channel_file(path)
    kk = config.channel_for("101")
    assert isinstance(kk, PushChannel)
    assert kk.secret.get_secret_value() == "a-long-secret-for-koebenhavn"
    assert kk.rate_per_second == 5
    ringsted = config.channel_for("329")
    assert isinstance(ringsted, PushChannel)
    assert ringsted.url == "https://ringsted.example/hook"
    assert isinstance(config.channel_for("810"), InboxChannel)


def test_json_file_without_default_leaves_others_unconfigured() -> None:
    config = parse_channel_config('{"kommuner": {"766": {"kind": "inbox"}}}', fmt="json")
    assert isinstance(config.channel_for("766"), InboxChannel)
    assert config.channel_for("101") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"kommuner": {"999": {"kind": "inbox"}}}', "98 kommune codes"),
        ('{"kommuner": {"101": {"kind": "push", "url": "ftp://x", "secret": "0123456789abcdefXYZ"}}}', "url"),
        ('{"kommuner": {"101": {"kind": "carrier-pigeon"}}}', "kind"),
        ("[1, 2]", "must hold an object"),
        ("{nope", "not valid JSON"),
    ],
)
def test_bad_files_give_clear_errors(text: str, message: str) -> None:
    with pytest.raises(ChannelConfigError, match=message):
        parse_channel_config(text, fmt="json")


def test_errors_never_echo_a_secret() -> None:
    secret = "short-but-secret"  # 16 chars: fine; now break the URL so validation fails with the secret present
    text = f'{{"kommuner": {{"101": {{"kind": "push", "url": "nope", "secret": "{secret}"}}}}}}'
    with pytest.raises(ChannelConfigError) as caught:
        parse_channel_config(text, fmt="json")
    assert secret not in str(caught.value)
    with pytest.raises(ValidationError):
        PushChannel(url="https://x", secret=SecretStr("too-short"))


def test_dev_default_pushes_to_the_simulator_except_inbox_kommuner() -> None:
    config = dev_channel_config("http://127.0.0.1:8100/", "master-secret", frozenset({"101", "0810"}))
    assert len(config.kommuner) == 98
    assert isinstance(config.channel_for("101"), InboxChannel)
    assert isinstance(config.channel_for("810"), InboxChannel)
    ringsted = config.channel_for("329")
    assert isinstance(ringsted, PushChannel)
    assert ringsted.url == "http://127.0.0.1:8100/kommune/329/tasks"
    # The simulator derives the same secret from the same master; every kommune's differs.
    assert ringsted.secret.get_secret_value() == dev_secrets("master-secret")("329")
    secrets = {c.secret.get_secret_value() for c in config.kommuner.values() if isinstance(c, PushChannel)}
    assert len(secrets) == 96
    assert derive_push_secret("master-secret", "0329") == derive_push_secret("master-secret", "329")


def test_settings_build_the_dev_default_from_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGSFLOW_INBOX_KOMMUNER", "101, 147")
    monkeypatch.setenv("SAGSFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SAGSFLOW_SIM_PORT", "8123")
    settings = Settings()
    assert settings.data_dir == tmp_path
    config = base_channel_config(settings, KommuneSettings())
    assert isinstance(config.channel_for("147"), InboxChannel)
    push = config.channel_for("329")
    assert isinstance(push, PushChannel)
    assert push.url == "http://127.0.0.1:8123/kommune/329/tasks"
    master = (tmp_path / "sim-push-secret").read_text()
    assert (tmp_path / "sim-push-secret").stat().st_mode & 0o777 == 0o600
    assert push.secret.get_secret_value() == derive_push_secret(master, "329")
    # A second process of the stack reads the same master.
    again = base_channel_config(settings, KommuneSettings()).channel_for("329")
    assert isinstance(again, PushChannel)
    assert again.secret == push.secret

    monkeypatch.setenv("SAGSFLOW_INBOX_KOMMUNER", "101,4242")
    with pytest.raises(ValidationError, match="4242"):
        KommuneSettings()


async def test_database_rows_override_the_base(pool: asyncpg.Pool, key_ring: KeyRing) -> None:
    base = dev_channel_config("http://sim", "master-secret")
    store = ChannelStore(pool, key_ring)
    channels = DbChannels(store, base, ttl=0)
    assert isinstance(await channels.channel_for("329"), PushChannel)

    await store.set_channel("329", InboxChannel())
    custom = PushChannel(url="https://ringsted.example/hook", secret=SecretStr("s" * 40), rate_per_second=3, burst=2)
    await store.set_channel("101", custom)
    assert isinstance(await channels.channel_for("329"), InboxChannel)
    assert await channels.channel_for("101") == custom
    assert await channels.channel_for("810") == base.channel_for("810")

    row = await pool.fetchrow("SELECT secret_enc FROM kommune_channels WHERE kommune_kode = '101'")
    assert row is not None
    assert b"s" * 40 not in bytes(row["secret_enc"])

    with pytest.raises(ChannelConfigError):
        await store.set_channel("999", InboxChannel())


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "sagsflow"
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=120)


async def test_cli_sets_a_push_channel_and_prints_its_secret_once(
    db_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    env = {**os.environ, "DATABASE_URL": db_url, "SAGSFLOW_DATA_DIR": str(tmp_path)}
    args = ["kommune", "channel", "329", "push", "--url", "https://ringsted.example/hook", "--rate", "4"]
    done = await asyncio.to_thread(_cli, args, env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "kommune 329: push"
    secret = lines[1]

    ring = documents_key_ring(Settings(SAGSFLOW_DATA_DIR=tmp_path), KommuneSettings())
    store = ChannelStore(pool, ring)
    rows = await store.channels()
    channel = rows["329"]
    assert isinstance(channel, PushChannel)
    assert channel.secret.get_secret_value() == secret
    assert channel.rate_per_second == 4

    missing_url = await asyncio.to_thread(_cli, ["kommune", "channel", "329", "push"], env)
    assert missing_url.returncode == 1
    assert "--url" in missing_url.stderr
    bad_kind = await asyncio.to_thread(_cli, ["kommune", "channel", "329", "fax"], env)
    assert bad_kind.returncode == 1
    inbox = await asyncio.to_thread(_cli, ["kommune", "channel", "329", "inbox"], env)
    assert inbox.returncode == 0
    assert isinstance((await store.channels())["329"], InboxChannel)


async def test_worker_wiring_from_settings(pool: asyncpg.Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGSFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SAGSFLOW_SIM_URL", "http://127.0.0.1:8555")
    monkeypatch.setenv("SAGSFLOW_INBOX_KOMMUNER", "810")
    settings = Settings()
    ring = documents_key_ring(settings, KommuneSettings())
    await ChannelStore(pool, ring).set_channel("329", InboxChannel())
    async with httpx.AsyncClient() as http:
        delivery = KommuneDelivery.from_settings(settings, pool, http)
        assert isinstance(await delivery.channels.channel_for("329"), InboxChannel)  # the database row
        assert isinstance(await delivery.channels.channel_for("810"), InboxChannel)  # the setting
        push = await delivery.channels.channel_for("101")
        assert isinstance(push, PushChannel)
        assert push.url == "http://127.0.0.1:8555/kommune/101/tasks"
        without_db = KommuneDelivery.from_settings(settings, None, http)
        assert isinstance(await without_db.channels.channel_for("329"), PushChannel)
