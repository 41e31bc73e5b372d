"""The kommune API: a kommune system reads its tasks and answers them. Every write is a Temporal update; all but
the submission (which stores documents first) are rows of `UPDATES`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from api.auth import KommunePrincipal, require_kommune
from api.calls import TASK, UpdateRoute, inner, not_found, query, refusal, register_updates
from api.kommune_schemas import (
    AnswerBody,
    CitizenView,
    ExtensionRequestBody,
    QuestionBody,
    ReturnBody,
    SubmissionRequest,
)
from api.params import TaskId
from api.responses import errors
from api.state import deps_of
from domain.boundary import Cursor
from domain.events import ApplicationReceived, OplysningRequested, Party
from domain.kommune_protocol import CITIZEN_PATH
from domain.kommuner import normalize_kode
from domain.state import OPEN_TASK_STATUSES
from eventlog.access import Access, AccessLogError
from eventlog.documents import DocumentError, check_document
from eventlog.inbox import InboxPage
from eventlog.queries import task_kommune
from workflows.models import (
    AnswerRequest,
    ExtensionRequest,
    QuestionRequest,
    ReturnRequest,
    SubmitPartRequest,
    TaskSummary,
    TaskUpdateResult,
    task_workflow_id,
)

router = APIRouter(prefix="/v1/kommune", tags=["kommune"])
Kommune = Annotated[KommunePrincipal, Depends(require_kommune)]


async def _own_task(request: Request, task_id: str, kommune: KommunePrincipal) -> TaskSummary:
    deps = deps_of(request)
    summary = await query(deps.temporal, task_workflow_id(task_id), "status", TaskSummary, "task")
    if summary.kommune_kode != kommune.kommune_kode:
        raise not_found("task")
    return summary


async def _owns_task(request: Request, task_id: str, kommune: KommunePrincipal) -> None:
    """Another kommune's task answers 404 before anything of the call is stored. The projection knows a task's
    kommune (~1 ms); only a task it has not caught up with yet costs the workflow query (~8 ms under load)."""
    owner = await task_kommune(deps_of(request).stores.pool, task_id)
    if owner is None:
        await _own_task(request, task_id, kommune)
    elif owner != normalize_kode(kommune.kommune_kode):
        raise not_found("task")


@router.get(
    "/tasks",
    response_model=InboxPage,
    summary="Poll the inbox (for kommuner on the inbox channel)",
    responses=errors(422, body=False),
)
async def poll_inbox(
    request: Request,
    kommune: Kommune,
    after: Annotated[Cursor, Query(description="The last sequence number received (acknowledged)")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> InboxPage:
    return await deps_of(request).stores.inbox.poll(kommune.kommune_kode, after=after, limit=limit)


@router.get(
    "/tasks/{task_id}",
    response_model=TaskSummary,
    summary="One of the kommune's own tasks",
    responses=errors(404, body=False),
)
async def get_task(task_id: TaskId, request: Request, kommune: Kommune) -> TaskSummary:
    return await _own_task(request, task_id, kommune)


# What the kommune states as its reason for reading, in the access log: the one thing it may read the person for.
CITIZEN_PURPOSE = "oplysning"
# The path the task messages name (`domain.kommune_protocol.citizen_path`), under this router's prefix.
CITIZEN_ROUTE = CITIZEN_PATH.removeprefix("/v1/kommune")


@router.get(
    CITIZEN_ROUTE,
    response_model=CitizenView,
    summary="Whom the task concerns: CPR number, name and the application's facts for the oplysning "
    "(open tasks only; every read is written to the access log)",
    responses=errors(404, body=False),
)
async def get_citizen(task_id: TaskId, request: Request, response: Response, kommune: Kommune) -> CitizenView:
    summary = await _own_task(request, task_id, kommune)
    # Only while the task is open, and no grace period after: the kommune fetches the person when it starts its
    # oplysning, and once the task is completed, returned or taken back (withdrawn, moved) it has no purpose left
    # to read them for. A closed task answers exactly as a missing one, as another kommune's does.
    if summary.status not in OPEN_TASK_STATUSES or summary.closing:
        raise not_found("task")
    stores = deps_of(request).stores
    # The read and its access record are one transaction of the event store: no read without its record.
    access = Access(actor=kommune.actor, purpose=CITIZEN_PURPOSE)
    try:
        stored = await stores.events.read_stream(summary.case_id, access=access)
    except AccessLogError:
        # The actor is built from our own key id; should the log refuse it, nothing was read and nothing is echoed.
        raise refusal(503, "unavailable", "the access log could not be written, so nothing was read") from None
    events = [s.event for s in stored]
    application = next((e.personal for e in events if isinstance(e, ApplicationReceived)), None)
    if application is None:
        # No application, or its person erased (the subject's key shredded): there is nobody to hand out.
        raise not_found("task")
    # Personal data: no proxy or client cache is to keep a copy the access log does not know of.
    response.headers["Cache-Control"] = "no-store"
    requested = next(
        (e.requested_documents for e in events if isinstance(e, OplysningRequested) and e.task_id == task_id), ()
    )
    return CitizenView(
        task_id=task_id,
        case_id=summary.case_id,
        kommune_kode=summary.kommune_kode,
        reason=summary.reason,
        requested_documents=requested,
        cpr=application.applicant.cpr,
        name=application.applicant.name,
        case_type=application.case_type,
        received_on=application.received_on,
        employment=application.employment,
        latest_job_months=application.latest_job_months,
        current_attachment=application.current_attachment,
        declared_weekly_work_capacity_hours=application.declared_weekly_work_capacity_hours,
        consent_to_health_records=application.consent_to_health_records,
    )


@router.post(
    "/tasks/{task_id}/submissions",
    response_model=TaskUpdateResult,
    summary="Send documents; `final` completes the task",
    responses=errors(404, 409, 413, 415, 422),
)
async def submit(task_id: TaskId, body: SubmissionRequest, request: Request, kommune: Kommune) -> TaskUpdateResult:
    if not body.final and not body.documents:
        raise refusal(422, "invalid", "documents: a partial submission needs at least one document")
    deps = deps_of(request)
    # Every document is checked before any is stored: a bad third document must not leave the first two behind.
    for i, doc in enumerate(body.documents):
        try:
            check_document(doc.filename, doc.content_type, doc.content())
        except DocumentError as exc:
            raise refusal(exc.status_code, exc.code, f"documents[{i}]: {exc}") from None
    # Deterministic ids: a retried submission names the same documents, so the workflow sees the same request and
    # answers with its first answer instead of refusing a changed one. The ids alone would let a retry with other
    # content pass as the first: the stored documents are compared as well.
    document_ids = body.document_ids(task_id)
    # Built before anything is stored, so a request the workflow would not take leaves no document behind.
    arg = inner(
        SubmitPartRequest,
        kommune_kode=kommune.kommune_kode,
        submission_id=body.idempotency_key,
        document_ids=tuple(str(d) for d in document_ids),
        final=body.final,
    )
    stored_now: list[uuid.UUID] = []
    try:
        if body.documents:
            # The workflow's validator decides the rest (another kommune's task, a closed task, a key reused for
            # other content) without a query first: what it refuses, the handler below takes away again.
            await _owns_task(request, task_id, kommune)
            already = await deps.stores.documents.stored_ids(document_ids)
            stored_now = [d for d in document_ids if d not in already]
            for i, (doc, doc_id) in enumerate(zip(body.documents, document_ids, strict=True)):
                try:
                    await deps.stores.documents.store(
                        deps.documents,
                        kommune.kommune_kode,
                        task_id,
                        doc.filename,
                        doc.content_type,
                        doc.content(),
                        document_id=doc_id,
                    )
                except DocumentError as exc:
                    raise refusal(exc.status_code, exc.code, f"documents[{i}]: {exc}") from None
        return await TASK.update(request, task_id, "submit_part", arg, body.idempotency_key)
    except HTTPException as exc:
        # Refused for good (a 4xx): nothing refers to what this call stored, so nothing of it stays. After a 5xx
        # the update may still be carried out, and a retry under the same key finds the documents.
        if 400 <= exc.status_code < 500:
            await deps.stores.documents.discard(stored_now)
        raise


def _kommune(kommune: KommunePrincipal) -> Mapping[str, object]:
    return {"kommune_kode": kommune.kommune_kode}


def _kommune_asks(kommune: KommunePrincipal) -> Mapping[str, object]:
    return {"asked_by": Party.KOMMUNE, "kommune_kode": kommune.kommune_kode}


UPDATES: tuple[UpdateRoute[KommunePrincipal], ...] = (
    UpdateRoute(
        "/tasks/{task_id}/extension-requests",
        "request_extension",
        "Ask for more time: granted at once within the policy, else decided by operations",
        update="request_extension",
        body=ExtensionRequestBody,
        argument=ExtensionRequest,
        key="request_id",
        caller=_kommune,
    ),
    UpdateRoute(
        "/tasks/{task_id}/questions",
        "ask_question",
        "Ask Seniorpension a question",
        update="ask_question",
        body=QuestionBody,
        argument=QuestionRequest,
        key="question_id",
        caller=_kommune_asks,
    ),
    UpdateRoute(
        "/tasks/{task_id}/answers",
        "answer_question",
        "Answer a question the caseworker asked on this task",
        update="answer_question",
        body=AnswerBody,
        argument=AnswerRequest,
        key="question_id",
        caller=_kommune,
    ),
    UpdateRoute(
        "/tasks/{task_id}/returns",
        "return_task",
        "Not our citizen: return the task, naming the kommune the citizen lives in",
        update="return_task",
        body=ReturnBody,
        argument=ReturnRequest,
        key="request_id",
        caller=_kommune,
        keyed_by_target=True,
    ),
)
# No guard: each update's validator refuses another kommune's task first ("forbidden", answered as 404 like a
# missing one), so a call costs one round trip to the workflow, not a query before it.
register_updates(router, TASK, Kommune, UPDATES)


__all__ = ["HTTPException", "router"]
