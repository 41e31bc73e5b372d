"""Calling the workflows from HTTP: updates and queries, with refusals mapped to clear HTTP errors, and the table
form of the routes that are one workflow update each (`UpdateRoute`, `register_updates`).

An update's validator (domain.decide) refuses what the state does not allow before it enters history; the refusal
arrives here as an ApplicationError whose type is the DomainError code. A task or case that another kommune owns is
reported exactly like one that does not exist, so a kommune learns nothing about other kommuners' cases.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ValidationError
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.params import CaseId, TaskId
from api.responses import errors
from api.state import deps_of
from domain.boundary import field_errors
from runtime.logs import get_logger, mask_text
from workflows.common import BUSY
from workflows.models import (
    Answer,
    CaseResult,
    CaseUpdateResult,
    TaskResult,
    TaskUpdateResult,
    case_workflow_id,
    fingerprint,
    reused_key_message,
    task_workflow_id,
)

log = get_logger(__name__)

R = TypeVar("R", bound=BaseModel)

STATUS_BY_CODE = {
    "conflict": 409,
    "not_found": 404,
    "forbidden": 404,
    "invalid": 422,
    "needs_operations": 503,
    BUSY: 503,
}
# A workflow that ended like this has no result to answer from: it needs operations.
CLOSED_WITHOUT_RESULT = frozenset(
    {
        WorkflowExecutionStatus.FAILED,
        WorkflowExecutionStatus.TERMINATED,
        WorkflowExecutionStatus.TIMED_OUT,
        WorkflowExecutionStatus.CANCELED,
    }
)


def refusal(status: int, code: str, message: str) -> HTTPException:
    """Every refusal the API words itself. Domain and workflow refusals quote the caller's own ids ("question 'x' is
    not open"), which the boundary lets hold digits glued to letters: masked like a log line, so a CPR number sent
    as part of an id is never repeated back."""
    return HTTPException(status_code=status, detail={"code": code, "message": mask_text(message)})


M = TypeVar("M", bound=BaseModel)


def inner(model: type[M], **fields: Any) -> M:
    """The workflow request a route builds from a valid body. Both use the boundary types, so this cannot refuse;
    if their limits ever drift apart, the caller gets a 422 naming the field before anything is stored or started,
    not a 500."""
    try:
        return model(**fields)
    except ValidationError as exc:
        log.warning("a workflow request refused what its HTTP body accepted", model=model.__name__)
        raise refusal(422, "invalid", field_errors(exc)) from None


def needs_operations(what: str, workflow_id: str) -> HTTPException:
    return refusal(
        503,
        "needs_operations",
        f"the {what} has stopped and waits for operations (workflow {workflow_id} in the Temporal Web UI)",
    )


def not_found(what: str) -> HTTPException:
    return refusal(404, "not_found", f"{what} not found")


def _from_update_failure(exc: WorkflowUpdateFailedError) -> HTTPException:
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.type in STATUS_BY_CODE:
        if cause.type == "forbidden":
            return not_found("task")
        return refusal(STATUS_BY_CODE[cause.type], cause.type, cause.message)
    return refusal(409, "conflict", "the request could not be carried out in the current state")


# A query waits for a worker to replay the workflow; one whose workflow tasks keep failing (e.g. a start no code can
# read, before it is failed) would hold the caller until its HTTP client gives up. Answer 503 "retry later" instead.
QUERY_TIMEOUT = timedelta(seconds=10)


async def query(client: Client, workflow_id: str, name: str, result_type: type[R], what: str) -> R:
    try:
        result: R = await client.get_workflow_handle(workflow_id).query(
            name, result_type=result_type, rpc_timeout=QUERY_TIMEOUT
        )
        return result
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise not_found(what) from None
        if exc.status == RPCStatusCode.DEADLINE_EXCEEDED:
            raise refusal(503, "unavailable", f"the {what} cannot be read now; retry later") from None
        raise refusal(503, "unavailable", "the workflow service is unavailable") from None
    except WorkflowQueryFailedError:
        # A workflow that failed cannot be replayed to answer (e.g. one that failed at its start): say so.
        if await workflow_status(client, workflow_id) in CLOSED_WITHOUT_RESULT:
            raise needs_operations(what, workflow_id) from None
        raise refusal(503, "unavailable", f"the {what} cannot be read now; retry later") from None


async def update(
    client: Client,
    workflow_id: str,
    name: str,
    arg: BaseModel,
    result_type: type[R],
    *,
    key: str,
    what: str,
    closed_result_type: type[BaseModel],
) -> R:
    handle = client.get_workflow_handle(workflow_id)
    for attempt in range(NOT_READY_ATTEMPTS):
        try:
            result: R = await handle.execute_update(name, arg, result_type=result_type)
            return result
        except WorkflowUpdateFailedError as exc:
            if not _busy(exc) or attempt == NOT_READY_ATTEMPTS - 1:
                raise _from_update_failure(exc) from None
            # Refused before it entered history (workflows/activation_guard.py): the next try lands in a workflow
            # task of its own, so a few milliseconds are enough.
            log.info("update refused as busy; retrying", update=name, attempt=attempt + 1)
            await asyncio.sleep(0.02 * 2**attempt)
        except RPCError as exc:
            if not _transient(exc) or attempt == NOT_READY_ATTEMPTS - 1:
                return await _after_rpc_error(
                    exc, client, workflow_id, name, key, arg, result_type, what, closed_result_type
                )
            # The idempotency key makes a repeat safe; the workflow was busy (e.g. between workflow tasks).
            await asyncio.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")


NOT_READY_ATTEMPTS = 5


def _busy(exc: WorkflowUpdateFailedError) -> bool:
    return isinstance(exc.cause, ApplicationError) and exc.cause.type == BUSY


def _transient(exc: RPCError) -> bool:
    return exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.RESOURCE_EXHAUSTED) or (
        "not ready" in exc.message.lower() or "notready" in exc.message.lower()
    )


async def _after_rpc_error(
    exc: RPCError,
    client: Client,
    workflow_id: str,
    name: str,
    key: str,
    arg: BaseModel,
    result_type: type[R],
    what: str,
    closed_result_type: type[BaseModel],
) -> R:
    if _transient(exc):
        raise refusal(503, "unavailable", "the case is busy; retry with the same idempotency key") from None
    # A call that lands while the workflow is completing is aborted with other words than "completed" (the test of
    # a late duplicate decision saw a 404 once): then ask whether the workflow exists and has closed.
    if (
        exc.status == RPCStatusCode.NOT_FOUND
        and "completed" not in exc.message.lower()
        and not await _has_closed(client, workflow_id)
    ):
        raise not_found(what) from None
    # The workflow has finished: a retry of a call it already answered gets that first answer again.
    return await _answer_after_close(client, workflow_id, name, key, arg, result_type, what, closed_result_type)


async def workflow_status(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    try:
        return (await client.get_workflow_handle(workflow_id).describe()).status
    except RPCError:
        return None


async def _has_closed(client: Client, workflow_id: str) -> bool:
    return await workflow_status(client, workflow_id) not in (None, WorkflowExecutionStatus.RUNNING)


async def _answer_after_close(
    client: Client,
    workflow_id: str,
    name: str,
    key: str,
    arg: BaseModel,
    result_type: type[R],
    what: str,
    closed_result_type: type[BaseModel],
) -> R:
    try:
        result: Any = await client.get_workflow_handle(workflow_id, result_type=closed_result_type).result()
    except WorkflowFailureError:
        # Failed, terminated or timed out: not a closed case that answers, one that operations must look at.
        raise needs_operations(what, workflow_id) from None
    except Exception:
        raise refusal(409, "conflict", f"the {what} is closed") from None
    answers: dict[str, Answer] = getattr(result, "answers", {}) or {}
    # The workflows keep answers under "<update name>:<key>", as their own validators look them up.
    answer = answers.get(f"{name}:{key}")
    if answer is None:
        raise refusal(409, "conflict", f"the {what} is closed")
    if answer.fingerprint != fingerprint(arg):
        raise refusal(409, "conflict", reused_key_message(f"{name}:{key}"))
    if answer.refusal is not None:
        code = answer.refusal.code
        raise refusal(STATUS_BY_CODE.get(code, 409), code, answer.refusal.message)
    return result_type.model_validate(answer.result)


# ---------------------------------------------------------------------------------------------------------------
# Routes that are one workflow update each, written as a table


@dataclass(frozen=True)
class Target(Generic[R]):
    """The kind of workflow a route's update goes to: which path parameter names it, and what it answers."""

    what: str  # "task" or "case", as refusals name it
    parameter: str  # the path parameter with the id
    id_type: object  # its annotated type (parsing and OpenAPI)
    workflow_id: Callable[[str], str]
    result_type: type[R]
    closed_result_type: type[BaseModel]  # the workflow's result, where a duplicate after the close finds its answer

    async def update(self, request: Request, target_id: str, name: str, arg: BaseModel, key: str) -> R:
        return await update(
            deps_of(request).temporal,
            self.workflow_id(target_id),
            name,
            arg,
            self.result_type,
            key=key,
            what=self.what,
            closed_result_type=self.closed_result_type,
        )


TASK: Target[TaskUpdateResult] = Target("task", "task_id", TaskId, task_workflow_id, TaskUpdateResult, TaskResult)
CASE: Target[CaseUpdateResult] = Target("case", "case_id", CaseId, case_workflow_id, CaseUpdateResult, CaseResult)

P = TypeVar("P")


def _nothing(_caller: object) -> Mapping[str, object]:
    return {}


@dataclass(frozen=True)
class UpdateRoute(Generic[P]):
    """One POST route that is one workflow update: its HTTP body becomes the update's argument field by field.

    The body's `idempotency_key` goes into the argument's `key` field (the workflows name the caller's key for what
    it identifies: `request_id`, `question_id`, `submission_id`); `caller` adds the fields that come from the
    authenticated caller or the route, never from the body. Each body field keeps its name otherwise."""

    path: str
    name: str  # the operation's name: its OpenAPI operationId starts with it
    summary: str
    update: str  # the workflow's update name
    body: type[BaseModel]
    argument: type[BaseModel]
    key: str  # the argument field with the caller's idempotency key
    caller: Callable[[P], Mapping[str, object]] = _nothing
    # A task is returned at most once, so the workflow keys that answer by the task id, not the caller's key.
    keyed_by_target: bool = False
    # This route's own authentication dependency, when it demands more than the table's (e.g. a role only team
    # leads hold); None → the one `register_updates` was given.
    principal: object | None = None
    responses: Mapping[int | str, dict[str, Any]] = field(default_factory=lambda: errors(404, 409, 422))

    def argument_of(self, body: BaseModel, caller: P) -> BaseModel:
        fields = {
            self.key if name == "idempotency_key" else name: getattr(body, name) for name in type(body).model_fields
        }
        return inner(self.argument, **fields, **self.caller(caller))


Guard = Callable[[Request, str, P], Awaitable[object]]


def _endpoint(
    route: UpdateRoute[P], target: Target[Any], principal: object, guard: Guard[P] | None
) -> Callable[..., Awaitable[BaseModel]]:
    """The endpoint of one `UpdateRoute`: a coroutine function (FastAPI runs anything else in a thread pool), whose
    parameters FastAPI reads from `__signature__`: the path id, this route's body model, the request and the caller
    (the router's authentication dependency)."""

    # No docstring on the endpoint itself: FastAPI would publish it as every such operation's description.
    async def endpoint(*, body: BaseModel, request: Request, caller: P, **ids: str) -> BaseModel:
        target_id = ids[target.parameter]
        if guard is not None:
            await guard(request, target_id, caller)
        arg = route.argument_of(body, caller)
        key = target_id if route.keyed_by_target else str(getattr(arg, route.key))
        result: BaseModel = await target.update(request, target_id, route.update, arg, key)
        return result

    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    signature = inspect.Signature(
        [
            inspect.Parameter(target.parameter, positional, annotation=target.id_type),
            inspect.Parameter("body", positional, annotation=route.body),
            inspect.Parameter("request", positional, annotation=Request),
            inspect.Parameter("caller", positional, annotation=principal),
        ],
        return_annotation=target.result_type,
    )
    setattr(endpoint, "__signature__", signature)  # noqa: B010 (a function has no declared __signature__)
    return endpoint


def register_updates(
    router: APIRouter,
    target: Target[Any],
    principal: object,
    routes: Sequence[UpdateRoute[P]],
    *,
    guard: Guard[P] | None = None,
) -> None:
    """Adds each route of the table to `router`, in order. `principal` is the router's authentication dependency
    (an `Annotated[..., Depends(...)]`), unless a route names its own; `guard`, when given, runs before the argument
    is built (e.g. the kommune's own-task check, which answers 404 for another kommune's task)."""
    for route in routes:
        # A row that names a field or path parameter that is not there fails at import, not on its first call.
        if f"{{{target.parameter}}}" not in route.path or route.key not in route.argument.model_fields:
            raise ValueError(f"update route {route.name}: no {{{target.parameter}}} in its path or no {route.key!r}")
        router.add_api_route(
            route.path,
            _endpoint(route, target, principal if route.principal is None else route.principal, guard),
            methods=["POST"],
            name=route.name,
            response_model=target.result_type,
            summary=route.summary,
            responses=dict(route.responses),
        )
