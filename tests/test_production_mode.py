"""Production mode, as an operator meets it: with TEMPORAL_ADDRESS or DATABASE_URL set (or SAGSFLOW_ENV=production)
nothing is generated; a process that lacks a secret or the kommune channels stops at start with one line naming
every missing setting, and writes nothing. Settings can come from files, as container platforms mount secrets."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from runtime.config import SettingFileMissing, Settings
from runtime.crypto import KeyRing
from runtime.embedded import free_port, venv_binary

SECRETS = (
    "SAGSFLOW_CODEC_KEY_FILE",
    "SAGSFLOW_EVENTLOG_KEY_FILE",
    "SAGSFLOW_SUBJECT_PEPPER_FILE",
    "SAGSFLOW_DOCUMENTS_KEY_FILE",
)
OIDC = ("SAGSFLOW_OIDC_ISSUER", "SAGSFLOW_OIDC_AUDIENCE", "SAGSFLOW_OIDC_JWKS_URL")


def clean_env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGSFLOW_", "TEMPORAL_", "DATABASE_URL"))}
    env.update(SAGSFLOW_DATA_DIR=str(tmp_path / "data"), SAGSFLOW_WORKER_METRICS_PORT="0", **values)
    return env


def closed_services() -> dict[str, str]:
    closed = str(free_port())
    return {
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed}/postgres",
        "TEMPORAL_ADDRESS": f"127.0.0.1:{closed}",
    }


def sagsflow(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_binary("sagsflow"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def configured_secrets(tmp_path: Path) -> dict[str, str]:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("codec", "eventlog", "documents"):
        (secrets / f"{name}.json").write_text(KeyRing.generate(f"{name}-1").to_json())
    (secrets / "pepper").write_text("cGVwcGVyLXBlcHBlci1wZXBwZXItcGVwcGVyLXBlcHA=")
    (secrets / "channels.toml").write_text('[defaults]\nkind = "inbox"\n')
    return {
        "SAGSFLOW_CODEC_KEY_FILE": str(secrets / "codec.json"),
        "SAGSFLOW_EVENTLOG_KEY_FILE": str(secrets / "eventlog.json"),
        "SAGSFLOW_DOCUMENTS_KEY_FILE": str(secrets / "documents.json"),
        "SAGSFLOW_SUBJECT_PEPPER_FILE": str(secrets / "pepper"),
        "SAGSFLOW_CHANNELS_FILE": str(secrets / "channels.toml"),
        "SAGSFLOW_OIDC_ISSUER": "https://login.example.dk",
        "SAGSFLOW_OIDC_AUDIENCE": "sagsflow-api",
        "SAGSFLOW_OIDC_JWKS_URL": "https://login.example.dk/jwks",
    }


@pytest.mark.parametrize(
    ("role", "needs", "not_needed"),
    [("api", (*SECRETS, *OIDC), ("SAGSFLOW_CHANNELS_FILE",)), ("worker", (*SECRETS, "SAGSFLOW_CHANNELS_FILE"), OIDC)],
)
def test_a_process_without_its_secrets_names_them_all_and_writes_nothing(
    tmp_path: Path, role: str, needs: tuple[str, ...], not_needed: tuple[str, ...]
) -> None:
    done = sagsflow([role], clean_env(tmp_path, **closed_services()), tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert all(name in lines[0] for name in needs), lines[0]
    assert not any(name in lines[0] for name in not_needed), lines[0]
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_production_by_name_needs_the_service_addresses_too(tmp_path: Path) -> None:
    done = sagsflow(["worker"], clean_env(tmp_path, SAGSFLOW_ENV="production"), tmp_path)
    assert done.returncode == 2
    assert "TEMPORAL_ADDRESS" in done.stderr and "DATABASE_URL" in done.stderr


def test_with_every_setting_given_the_process_goes_on_to_its_services(tmp_path: Path) -> None:
    env = clean_env(tmp_path, **closed_services(), **configured_secrets(tmp_path))
    for role in ("api", "worker"):
        done = sagsflow([role], env, tmp_path)
        assert done.returncode == 1, done.stderr  # past the check: now it cannot reach PostgreSQL (nothing runs)
        assert "PostgreSQL" in done.stderr and "production mode" not in done.stderr


def test_a_command_that_would_generate_a_key_in_production_refuses(tmp_path: Path) -> None:
    env = clean_env(tmp_path, **closed_services())
    done = sagsflow(["kommune", "channel", "329", "push", "--url", "https://k329.example.dk/hook"], env, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "SAGSFLOW_DOCUMENTS_KEY_FILE" in done.stderr and "Traceback" not in done.stderr


def test_settings_come_from_files_named_by_name_file_or_in_the_secrets_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DATABASE_URL", "TEMPORAL_ADDRESS", "SAGSFLOW_ENV"):
        monkeypatch.delenv(name, raising=False)
    url_file = tmp_path / "db-url"
    url_file.write_text("postgresql://sagsflow:s3cret@db.internal/sagsflow\n")
    monkeypatch.setenv("DATABASE_URL_FILE", str(url_file))
    secrets_dir = tmp_path / "run-secrets"
    secrets_dir.mkdir()
    (secrets_dir / "TEMPORAL_ADDRESS").write_text("temporal.internal:7233")
    monkeypatch.setenv("SAGSFLOW_SECRETS_DIR", str(secrets_dir))
    settings = Settings()
    assert settings.database_url == "postgresql://sagsflow:s3cret@db.internal/sagsflow"
    assert settings.temporal_address == "temporal.internal:7233" and settings.production
    # A value set directly wins over a file.
    monkeypatch.setenv("TEMPORAL_ADDRESS", "other:7233")
    assert Settings().temporal_address == "other:7233"
    monkeypatch.setenv("DATABASE_URL_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingFileMissing, match=r"DATABASE_URL_FILE: .*missing is not a readable file"):
        Settings()


def test_a_missing_secret_file_is_one_line(tmp_path: Path) -> None:
    done = sagsflow(["kommune", "keys"], clean_env(tmp_path, DATABASE_URL_FILE=str(tmp_path / "nope")), tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == f"DATABASE_URL_FILE: {tmp_path / 'nope'} is not a readable file"
