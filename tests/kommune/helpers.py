"""Helpers shared by the kommune and simulator tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from runtime.httpserve import serve
from sim.behaviour import KommuneProfile
from sim.profiles import default_profiles
from sim.server import KommuneSimulator, SimSettings, create_sim_app, dev_secrets

MASTER = "test-master-secret-for-the-simulator"


def quiet_profiles(**overrides: dict[str, Any]) -> dict[str, KommuneProfile]:
    """Profiles without random push failures, so a test decides exactly which kommune misbehaves.
    Keyword names are `k<code>`, e.g. `k329={"push_5xx_rate": 1.0}`."""
    calm: dict[str, dict[str, Any]] = {k: {"push_5xx_rate": 0.0, "push_timeout_rate": 0.0} for k in default_profiles()}
    for name, fields in overrides.items():
        kode = name.removeprefix("k")
        calm[kode] = {**calm[kode], **fields}
    return default_profiles(overrides=calm)


def receive_only(profiles: dict[str, KommuneProfile], settings: SimSettings | None = None) -> KommuneSimulator:
    return KommuneSimulator(profiles, dev_secrets(MASTER), settings=settings or SimSettings(act=False))


@contextlib.asynccontextmanager
async def served(app: FastAPI | KommuneSimulator) -> AsyncIterator[str]:
    """Serve an app (or a simulator's app) with uvicorn on a free port; yields the base URL."""
    asgi = create_sim_app(app) if isinstance(app, KommuneSimulator) else app
    async with serve(asgi) as url:
        yield url
