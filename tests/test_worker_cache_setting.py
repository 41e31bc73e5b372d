"""SAGSFLOW_WORKER_MAX_CACHED_WORKFLOWS: how many workflows one worker keeps in memory between their tasks.

`workers.worker.serve` passes it to the Worker; bench/worker_memory.py shows its effect (the SDK's cache gauge equals
the setting once the cache is full, and RSS stays flat past it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from runtime.config import Settings

VARIABLE = "SAGSFLOW_WORKER_MAX_CACHED_WORKFLOWS"


def test_the_default_is_the_sdks_thousand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VARIABLE, raising=False)
    monkeypatch.delenv(f"{VARIABLE}_FILE", raising=False)
    monkeypatch.delenv("SAGSFLOW_SECRETS_DIR", raising=False)
    assert Settings().worker_max_cached_workflows == 1000


def test_it_is_read_from_the_environment_or_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(VARIABLE, "250")
    assert Settings().worker_max_cached_workflows == 250
    monkeypatch.setenv(VARIABLE, "0")  # no cache: every workflow task replays its history
    assert Settings().worker_max_cached_workflows == 0
    monkeypatch.delenv(VARIABLE)
    (tmp_path / "cache").write_text("40\n")
    monkeypatch.setenv(f"{VARIABLE}_FILE", str(tmp_path / "cache"))
    assert Settings().worker_max_cached_workflows == 40


def test_a_negative_cache_size_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE, "-1")
    with pytest.raises(ValidationError, match="worker_max_cached_workflows"):
        Settings()
