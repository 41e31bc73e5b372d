"""Operations: backlog, one case (access-logged), the caseworker's decision, withdrawal, moves, extensions, and the
auditor's access log.

Every route names the roles that may call it (runtime/identity.py says what each role is for); every update records
the acting person (`staff:<subject>`) in its event, every read the person and the purpose they state."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, BeforeValidator, Field
from pydantic_core import PydanticCustomError
from temporalio.client import Client

from api.auth import require_staff
from api.calls import CASE, CLOSED_WITHOUT_RESULT, TASK, UpdateRoute, query, refusal, register_updates, workflow_status
from api.kommune_schemas import AnswerBody, Body, QuestionBody
from api.params import INSTANT_EXAMPLE, CaseId, CaseIdQuery, OptionalInstant, parse_instant
from api.responses import TASK_OPERATIONS, Refused, errors, links
from api.state import deps_of
from domain.application import Cpr
from domain.boundary import FreeText, Key, KommuneKode, Label, LongFreeText, Purpose
from domain.commands import MAX_LIST
from domain.events import Party
from domain.forecast import next_forum_meeting, parse_day_or_instant, parse_what_if
from domain.state import OPEN_TASK_STATUSES
from eventlog.access import Access, AccessLogError, AccessRecord
from eventlog.db import StoreUnavailable
from eventlog.forecast import run_forecast
from eventlog.queries import BacklogRow, CaseBacklogRow
from runtime.crypto import subject_id_of_cpr
from runtime.identity import Staff
from workflows.models import (
    AnswerRequest,
    CaseSummary,
    DecisionRequest,
    ExtensionDecision,
    Id,
    QuestionRequest,
    TaskSummary,
    TransferRequest,
    WithdrawRequest,
    case_workflow_id,
    task_workflow_id,
)

router = APIRouter(prefix="/v1/ops", tags=["ops"])
# Who may do what, in the role names the service owner gave.
Reader = Annotated[Staff, require_staff("caseworker", "team-lead", "reader")]
Caseworker = Annotated[Staff, require_staff("caseworker", "team-lead")]
TeamLead = Annotated[Staff, require_staff("team-lead")]
Auditor = Annotated[Staff, require_staff("auditor")]


class DecisionBody(Body):
    idempotency_key: Key
    outcome: Literal["granted", "rejected", "supplementary"]
    reason_codes: tuple[Label, ...] = Field(default=(), max_length=MAX_LIST)
    reasons: LongFreeText | None = None
    requested_documents: tuple[Label, ...] = Field(default=(), max_length=MAX_LIST)


class WithdrawBody(Body):
    idempotency_key: Key
    reason: FreeText | None = None


class TransferBody(Body):
    idempotency_key: Key
    to_kommune_kode: KommuneKode


class ExtensionDecisionBody(Body):
    request_id: Id
    grant: bool


class Backlog(BaseModel):
    as_of: datetime | None
    tasks: list[BacklogRow]
    cases: list[CaseBacklogRow]


MAX_FORECAST_RUNS = 5000  # a request's CPU stays in seconds; more is for `sagsflow forecast` on a machine of its own
WHAT_IF_SHAPES = "expected intake=1.3, kommune=329:speed=1.5 or decision-capacity=0.8 (factors above 0)"


MAX_FORECAST_HORIZON = timedelta(days=3 * 366)
FORECAST_YEARS = (1900, 9000)


def _invalid(field: str, message: str) -> RequestValidationError:
    """A 422 in the shape of the request validation's own (our words; the input is never quoted)."""
    return RequestValidationError([{"loc": ("query", field), "msg": message, "type": "instant", "input": None}])


def _day_or_instant(value: object) -> datetime | None:
    """A day (the start of it, Danish time, as `sagsflow forecast` reads it) or an instant with an offset."""
    if value is None:
        return None
    if isinstance(value, str) and _DAY.fullmatch(value):
        try:
            return parse_day_or_instant(value)
        except ValueError:
            raise PydanticCustomError("instant", "not a valid day: give e.g. 2021-03-01") from None
    return parse_instant(value)


def _what_if(value: object) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("what_if", WHAT_IF_SHAPES)
    try:
        parse_what_if([value])
    except ValueError:
        # parse_what_if's own message quotes the text; the API's never does.
        raise PydanticCustomError("what_if", WHAT_IF_SHAPES) from None
    return value


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
DayOrInstant = Annotated[datetime | None, BeforeValidator(_day_or_instant)]
WhatIfText = Annotated[str, BeforeValidator(_what_if)]


@router.get(
    "/forecast",
    summary="The backlog forecast to a date (default: the next forum meeting), as `sagsflow forecast --json`",
    responses=errors(422, body=False),
)
async def get_forecast(
    request: Request,
    _reader: Reader,
    as_of: Annotated[
        DayOrInstant,
        Query(
            description="Forecast from the log as it stood then: a day (2021-03-01, its start in Danish time) or an"
            " instant with an offset. Leave out for now.",
            examples=[INSTANT_EXAMPLE],
        ),
    ] = None,
    to: Annotated[
        DayOrInstant,
        Query(description="The date to forecast (a day or an instant); default: the next forum meeting"),
    ] = None,
    runs: Annotated[int, Query(ge=1, le=MAX_FORECAST_RUNS, description="Simulated futures")] = 1000,
    seed: Annotated[int, Query(ge=0, le=2**63 - 1, description="The same seed gives the same forecast")] = 1,
    what_if: Annotated[
        list[WhatIfText],
        Query(
            max_length=10,
            description="A change to forecast beside the baseline (repeat to combine them into one scenario): "
            "intake=1.3, kommune=329:speed=1.5, decision-capacity=0.8",
        ),
    ] = [],  # noqa: B006 (FastAPI copies a query default; it is never mutated)
) -> dict[str, Any]:
    # In UTC, as the CLI reads its options: the same request gives the same JSON, offsets and all.
    start = (as_of or datetime.now(UTC)).astimezone(UTC)
    to = to.astimezone(UTC) if to is not None else None
    if not FORECAST_YEARS[0] <= start.year <= FORECAST_YEARS[1]:
        # The estimate looks half a year back and the target up to three ahead: keep both inside the calendar.
        raise _invalid("as_of", f"must lie in the years {FORECAST_YEARS[0]} to {FORECAST_YEARS[1]}")
    until = to or next_forum_meeting(start)
    if until <= start:
        raise _invalid("to", "must be after as_of (or now)")
    if until - start > MAX_FORECAST_HORIZON:
        # The simulation steps a week at a time: a horizon of centuries would hold a worker for hours.
        raise _invalid("to", "at most 3 years after as_of (or now)")
    scenario = parse_what_if(what_if) if what_if else None
    data = await deps_of(request).stores.forecast.read(start)
    # The simulation is pure CPU: in a thread, so the event loop keeps serving other requests meanwhile.
    run = await asyncio.to_thread(run_forecast, data, until, runs=runs, seed=seed, what_if=scenario)
    return run.as_dict()


@router.get(
    "/backlog",
    response_model=Backlog,
    summary="Open tasks and cases per kommune and status, now or as of",
    responses=errors(422, body=False),
)
async def backlog(
    request: Request,
    _reader: Reader,
    as_of: Annotated[
        OptionalInstant,
        Query(
            description="The backlog as it stood at this instant (ISO 8601 with an offset or Z; a `+` that arrived"
            " as a space is read as `+`). Leave out for now.",
            examples=[INSTANT_EXAMPLE],
        ),
    ] = None,
) -> Backlog:
    figures = await deps_of(request).stores.figures.backlog(as_of)
    return Backlog(as_of=as_of, tasks=figures.tasks, cases=figures.cases)


async def case_summary(client: Client, case_id: str) -> CaseSummary:
    """The case's own summary, with its open task's real status from the task workflow (the case knows an open
    task only as requested: the task workflow records its progress)."""
    summary = await query(client, case_workflow_id(case_id), "status", CaseSummary, "case")
    if summary.open_task_id is None:
        return summary
    try:
        task = await query(client, task_workflow_id(summary.open_task_id), "status", TaskSummary, "task")
    except HTTPException as exc:
        if exc.status_code == 404:  # recorded as requested, its workflow not started yet: the case's view is right
            return summary
        raise
    if task.status not in OPEN_TASK_STATUSES or task.closing:
        # The task closed (or is being taken back) after the case answered: ask the case again, so its status
        # and open task agree with the task's end. If it has not taken the task's result in yet, the task's own
        # report is still the newer one.
        summary = await query(client, case_workflow_id(case_id), "status", CaseSummary, "case")
        if summary.open_task_id != task.task_id:
            return summary
    return summary.with_task(task)


@router.get(
    "/cases/{case_id}",
    response_model=CaseSummary,
    summary="One case (the read is written to the access log)",
    responses={
        200: links(TASK_OPERATIONS, "task_id", "$response.body#/open_task_id"),
        **errors(404, 422, body=False),
        400: {"model": Refused, "description": "The purpose holds a CPR number (code contains_cpr)"},
    },
)
async def get_case(
    case_id: CaseId,
    request: Request,
    reader: Reader,
    purpose: Annotated[Purpose, Query(description="Why you read this case (access log)")],
) -> CaseSummary:
    deps = deps_of(request)
    workflow_id = case_workflow_id(case_id)
    summary = await case_summary(deps.temporal, case_id)
    status = await workflow_status(deps.temporal, workflow_id)
    if status in CLOSED_WITHOUT_RESULT:
        # A failed workflow still answers queries with where it was; the reader must learn that it stopped there.
        how = status.name.lower().replace("_", " ")
        phase = f"The case's workflow {how} and waits for operations ({workflow_id} in the Web UI); it was: "
        summary = summary.model_copy(update={"needs_operations": True, "phase": phase + summary.phase})
    try:
        await deps.stores.access.record(Access(reader.actor, purpose), what="case summary", case_id=case_id)
    except AccessLogError as exc:
        # The purpose is stored and shown to auditors: it must not itself carry personal data. The query type
        # refuses most CPR numbers already (422); this catches what only the log's wider rule sees (a space in the
        # number, digits glued to letters), and says which field without repeating it.
        if exc.code == "contains_cpr":
            raise refusal(400, "contains_cpr", "purpose: must not contain a CPR number") from None
        raise refusal(422, "invalid", f"purpose: {str(exc).removeprefix('access log: purpose ')}") from None
    return summary


def _decided_by(staff: Staff) -> Mapping[str, object]:
    return {"decided_by": staff.actor}


def _by(staff: Staff) -> Mapping[str, object]:
    return {"by": staff.actor}


def _caseworker_asks(staff: Staff) -> Mapping[str, object]:
    return {"asked_by": Party.CASEWORKER, "by": staff.actor}


# The tables' own dependency is the caseworker's; the rows only team leads may call name theirs.
CASE_UPDATES: tuple[UpdateRoute[Staff], ...] = (
    UpdateRoute(
        "/cases/{case_id}/decision",
        "decide",
        "Decide (granted / rejected with reasons), or ask the kommune for supplementary information",
        update="decide",
        body=DecisionBody,
        argument=DecisionRequest,
        key="request_id",
        caller=_decided_by,
        responses={200: links(TASK_OPERATIONS, "task_id", "$response.body#/task_id"), **errors(404, 409, 422)},
    ),
    UpdateRoute(
        "/cases/{case_id}/withdrawal",
        "withdraw",
        "The citizen withdraws",
        update="withdraw",
        body=WithdrawBody,
        argument=WithdrawRequest,
        key="request_id",
        caller=_by,
        principal=TeamLead,
    ),
    UpdateRoute(
        "/cases/{case_id}/transfer",
        "transfer",
        "The citizen moved: the case goes to the new kommune",
        update="transfer",
        body=TransferBody,
        argument=TransferRequest,
        key="request_id",
        caller=_by,
        principal=TeamLead,
    ),
)
TASK_UPDATES: tuple[UpdateRoute[Staff], ...] = (
    # Operations name the pending request by its id.
    UpdateRoute(
        "/tasks/{task_id}/extension-decision",
        "extension_decision",
        "Grant or refuse an extension beyond what the SLA policy grants by itself",
        update="decide_extension",
        body=ExtensionDecisionBody,
        argument=ExtensionDecision,
        key="request_id",
        caller=_by,
        principal=TeamLead,
    ),
    UpdateRoute(
        "/tasks/{task_id}/questions",
        "ask_kommune",
        "The caseworker asks the kommune a question on its task (the kommune answers via its API)",
        update="ask_question",
        body=QuestionBody,
        argument=QuestionRequest,
        key="question_id",
        caller=_caseworker_asks,
    ),
    UpdateRoute(
        "/tasks/{task_id}/answers",
        "answer_kommune",
        "The caseworker answers a question the kommune asked (the task cannot complete while one is open)",
        update="answer_question",
        body=AnswerBody,
        argument=AnswerRequest,
        key="question_id",
        caller=_by,
    ),
)
register_updates(router, CASE, Caseworker, CASE_UPDATES)
register_updates(router, TASK, Caseworker, TASK_UPDATES)


# --- The auditor's access log ------------------------------------------------------------------------------------


class AccessRead(BaseModel):
    """One read of a citizen's data: who, when, why, what, of which case (ids and purposes only)."""

    at: datetime
    actor: str = Field(description="staff:<subject>, kommune:<kode>:<key id>, or the codec's reader")
    purpose: str
    what: str
    case_id: str | None
    namespace: str | None = Field(default=None, description="For a decode that named no case: where it was made")

    @classmethod
    def of(cls, record: AccessRecord) -> AccessRead:
        return cls(
            at=record.at,
            actor=record.actor,
            purpose=record.purpose,
            what=record.what,
            case_id=record.case_id,
            namespace=record.namespace,
        )


class AccessLogPage(BaseModel):
    reads: list[AccessRead]


class AccessSearchBody(Body):
    # In the body, never the URL: a URL ends up in proxies' and servers' request logs.
    cpr: Cpr = Field(description="The citizen's CPR number, DDMMYY-SSSS; personal data")
    purpose: Purpose = Field(description="Why you search (the search is itself written to the access log)")


def _found(records: list[AccessRecord]) -> AccessLogPage:
    return AccessLogPage(reads=[AccessRead.of(r) for r in records])


@router.get(
    "/access-log",
    response_model=AccessLogPage,
    summary="Who read a case's data, or what a person (actor) read, when and why (auditors)",
    responses=errors(422, body=False),
)
async def access_log(
    request: Request,
    _auditor: Auditor,
    case_id: Annotated[CaseIdQuery | None, Query(description="The case whose reads to list")] = None,
    actor: Annotated[Key | None, Query(description="Only reads by this actor, e.g. staff:<subject>")] = None,
    since: Annotated[OptionalInstant, Query(description="From this instant (ISO 8601 with an offset or Z)")] = None,
    until: Annotated[OptionalInstant, Query(description="Before this instant (ISO 8601 with an offset or Z)")] = None,
) -> AccessLogPage:
    if case_id is None and actor is None and since is None and until is None:
        raise refusal(422, "invalid", "give case_id, actor, since or until")
    stores = deps_of(request).stores
    try:
        return _found(await stores.access.find(case_id=case_id, actor=actor, since=since, until=until))
    except StoreUnavailable:
        raise refusal(503, "unavailable", "the access log cannot be read now") from None


@router.post(
    "/access-log/search",
    response_model=AccessLogPage,
    summary="Who read this citizen's data, when and why, across all their cases (auditors; the search is logged)",
    responses=errors(422),
)
async def search_access_log(request: Request, auditor: Auditor, body: AccessSearchBody) -> AccessLogPage:
    deps = deps_of(request)
    subject_id = subject_id_of_cpr(body.cpr, deps.subject_pepper)
    try:
        # Written before the search is answered: no answer leaves without its record, and the citizen's own list
        # shows that an auditor looked.
        await deps.stores.access.record(
            Access(auditor.actor, body.purpose), what="access log search", subject_id=subject_id
        )
        return _found(await deps.stores.access.find(subject_id=subject_id))
    except AccessLogError as exc:
        raise refusal(422, "invalid", f"purpose: {str(exc).removeprefix('access log: purpose ')}") from None
    except StoreUnavailable:
        raise refusal(503, "unavailable", "the access log cannot be written now, so nothing was searched") from None
