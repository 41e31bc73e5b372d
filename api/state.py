"""What the routers share: the app's dependencies, set once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import HTTPException, Request
from temporalio.client import Client

from eventlog.stores import Stores
from runtime.crypto import KeyRing
from runtime.identity import StaffVerifier


@dataclass
class ApiDeps:
    client: Client | None
    # The database, through its stores; None until start-up connects it.
    database: Stores | None
    payload_ring: KeyRing
    # The static token the codec server still accepts until it takes staff identities (api/codec.py); no route of
    # the API accepts it, and `sagsflow api` sets none.
    ui_origins: list[str] = field(default_factory=list)
    # The Temporal namespace whose payloads the codec server decodes (the one the workers use).
    namespace: str = "default"
    task_queue: str = "sagsflow"
    documents_ring: KeyRing | None = None
    subject_pepper: bytes = b""
    sla_policy: str = "standard-2021.1"
    # Who a person's bearer token names; None → no staff route can authenticate anyone (503).
    staff_verifier: StaffVerifier | None = None

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
    def stores(self) -> Stores:
        if self.database is None:
            raise HTTPException(status_code=503, detail="the database is not connected")
        return self.database


def deps_of(request: Request) -> ApiDeps:
    deps: ApiDeps = request.app.state.deps
    return deps
