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
    403: "A valid key or token, but not for this endpoint: a person without the role it needs, a kommune key on a"
    " staff route, or a person's token on a kommune route",
    404: "No such task or case (also when it belongs to another kommune)",
    409: "The current state does not allow this, or the idempotency key was used for another request",
    413: "The body is larger than this route takes (1 MiB; 300 MiB for document submissions), or a document is",
    415: "A document's content type is not accepted",
    422: "Invalid input: the field-level errors, or the domain's refusal of a value",
    503: "A backing service (workflows or database) is unavailable",
}
_MODELS: dict[int, type[BaseModel]] = {400: Message, 401: Message, 403: Message, 422: Invalid, 503: Unavailable}


def errors(*statuses: int, body: bool = True) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: 401, 403 and 503 always, 400 and 413 (`api.limits`) for routes with a body, plus the
    given statuses."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted({401, 403, 503, *statuses, *((400, 413) if body else ())}):
        out[status] = {"model": _MODELS.get(status, Refused), "description": _DESCRIPTIONS[status]}
    return out


# OpenAPI links: which answer gives the id another operation takes, so clients (and the stateful fuzzer) can follow
# a case from its application to its decision and its task.
TASK_OPERATIONS: tuple[tuple[str, str], ...] = (
    ("GetTask", "/v1/kommune/tasks/{task_id}#get"),
    ("SubmitToTask", "/v1/kommune/tasks/{task_id}/submissions#post"),
    ("AskAboutTask", "/v1/kommune/tasks/{task_id}/questions#post"),
    ("ExtendTask", "/v1/kommune/tasks/{task_id}/extension-requests#post"),
    ("ReturnTask", "/v1/kommune/tasks/{task_id}/returns#post"),
    ("AskTheKommune", "/v1/ops/tasks/{task_id}/questions#post"),
)
CASE_OPERATIONS: tuple[tuple[str, str], ...] = (
    ("GetCase", "/v1/ops/cases/{case_id}#get"),
    ("DecideCase", "/v1/ops/cases/{case_id}/decision#post"),
    ("WithdrawCase", "/v1/ops/cases/{case_id}/withdrawal#post"),
    ("TransferCase", "/v1/ops/cases/{case_id}/transfer#post"),
)


def links(operations: tuple[tuple[str, str], ...], parameter: str, expression: str) -> dict[str, Any]:
    """`{"links": ...}` for a response: each operation takes `parameter` from `expression`."""
    out: dict[str, Any] = {}
    for name, target in operations:
        path, method = target.split("#")
        pointer = path.replace("~", "~0").replace("/", "~1")
        out[name] = {"operationRef": f"#/paths/{pointer}/{method}", "parameters": {parameter: expression}}
    return {"links": out}
