"""`GET /v1/whoami`: who the presented credentials name, so a person (or the UI's login form) can check a token."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from api.auth import KommunePrincipal, caller_of
from api.responses import errors
from runtime.identity import Role

router = APIRouter(prefix="/v1", tags=["identity"])


class WhoAmI(BaseModel):
    kind: Literal["staff", "kommune"]
    actor: str
    name: str | None = None
    roles: list[Role] = []
    kommune_kode: str | None = None


@router.get("/whoami", response_model=WhoAmI, summary="Who the bearer token names", responses=errors(401))
async def whoami(request: Request) -> WhoAmI:
    caller = await caller_of(request)
    if caller is None:
        raise HTTPException(status_code=401, detail="Not authenticated", headers={"WWW-Authenticate": "Bearer"})
    if isinstance(caller, KommunePrincipal):
        return WhoAmI(kind="kommune", actor=caller.actor, kommune_kode=caller.kommune_kode)
    return WhoAmI(kind="staff", actor=caller.actor, name=caller.name, roles=sorted(caller.roles))
