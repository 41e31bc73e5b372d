"""The error responses the routes declare, so the OpenAPI document lists every status a client can get and its body.

Refusals (`api.calls.refusal`) carry `{"detail": {"code", "message"}}`; request validation carries FastAPI's list of
field errors (`loc`, `msg`, `type`); 401 says nothing but "Not authenticated".
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable reason, e.g. not_found, conflict, invalid, too_large")
    message: str = Field(description="What was wrong, naming the field where there is one")


class Refused(BaseModel):
    detail: ErrorDetail


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Invalid(BaseModel):
    detail: list[FieldError] | ErrorDetail


class Message(BaseModel):
    detail: str


class Unavailable(BaseModel):
    detail: str | ErrorDetail


_DESCRIPTIONS: dict[int, str] = {
    400: "The body could not be read at all (e.g. not UTF-8)",
    401: "No valid key or token for this endpoint",
    404: "No such task or case (also when it belongs to another kommune)",
    409: "The current state does not allow this, or the idempotency key was used for another request",
    413: "A document is larger than the limit",
    415: "A document's content type is not accepted",
    422: "Invalid input: the field-level errors, or the domain's refusal of a value",
    503: "A backing service (workflows or database) is unavailable",
}
_MODELS: dict[int, type[BaseModel]] = {400: Message, 401: Message, 422: Invalid, 503: Unavailable}


def errors(*statuses: int, body: bool = True) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: 401 and 503 always, 400 for routes with a body, plus the given statuses."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted({401, 503, *statuses, *((400,) if body else ())}):
        out[status] = {"model": _MODELS.get(status, Refused), "description": _DESCRIPTIONS[status]}
    return out
