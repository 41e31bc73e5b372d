"""What the routers share: the app's dependencies, set once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg
from fastapi import HTTPException, Request
from temporalio.client import Client

from runtime.crypto import KeyRing


@dataclass
class ApiDeps:
    client: Client | None
    pool: asyncpg.Pool | None
    payload_ring: KeyRing
    ops_token: str
    ui_origins: list[str] = field(default_factory=list)
    # The Temporal namespace whose payloads the codec server decodes (the one the workers use).
    namespace: str = "default"
    task_queue: str = "sagsflow"
    documents_ring: KeyRing | None = None
    subject_pepper: bytes = b""
    sla_policy: str = "standard-2021.1"

    @property
    def temporal(self) -> Client:
        if self.client is None:
            raise HTTPException(status_code=503, detail="the workflow service is not connected")
        return self.client

    @property
    def documents(self) -> KeyRing:
        if self.documents_ring is None:
            raise HTTPException(status_code=503, detail="document storage is not configured")
        return self.documents_ring

    @property
    def db(self) -> asyncpg.Pool:
        if self.pool is None:
            raise HTTPException(status_code=503, detail="the database is not connected")
        return self.pool


def deps_of(request: Request) -> ApiDeps:
    deps: ApiDeps = request.app.state.deps
    return deps
