"""The kommune API: a kommune system reads its tasks and answers them. Every write is a Temporal update."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict

from api.auth import KommunePrincipal, require_kommune
from api.calls import inner, not_found, query, refusal, update
from api.kommune_schemas import ExtensionRequestBody, QuestionBody, ReturnBody, SubmissionRequest
from api.params import TaskId
from api.responses import errors
from api.state import deps_of
from domain.boundary import Cursor, Key, Message
from domain.events import Party
from domain.state import OPEN_TASK_STATUSES
from eventlog.documents import DocumentError, check_document
from eventlog.inbox import InboxPage
from workflows.models import (
    AnswerRequest,
    ExtensionRequest,
    QuestionRequest,
    ReturnRequest,
    SubmitPartRequest,
    TaskResult,
    TaskSummary,
    TaskUpdateResult,
    task_workflow_id,
)

router = APIRouter(prefix="/v1/kommune", tags=["kommune"])
Kommune = Annotated[KommunePrincipal, Depends(require_kommune)]
DOCUMENT_IDS = uuid.UUID("0f6f2f5e-5b8e-4a77-9a52-8d3c2a1e9b10")


class AnswerBody(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    question_id: Key
    text: Message


async def _own_task(request: Request, task_id: str, kommune: KommunePrincipal) -> TaskSummary:
    deps = deps_of(request)
    summary = await query(deps.temporal, task_workflow_id(task_id), "status", TaskSummary, "task")
    if summary.kommune_kode != kommune.kommune_kode:
        raise not_found("task")
    return summary


async def _task_update(request: Request, task_id: str, name: str, arg: BaseModel, key: str) -> TaskUpdateResult:
    return await update(
        deps_of(request).temporal,
        task_workflow_id(task_id),
        name,
        arg,
        TaskUpdateResult,
        key=key,
        what="task",
        closed_result_type=TaskResult,
    )


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


@router.post(
    "/tasks/{task_id}/submissions",
    response_model=TaskUpdateResult,
    summary="Send documents; `final` completes the task",
    responses=errors(404, 409, 413, 415, 422),
)
async def submit(task_id: TaskId, body: SubmissionRequest, request: Request, kommune: Kommune) -> TaskUpdateResult:
    summary = await _own_task(request, task_id, kommune)
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
    document_ids = [
        uuid.uuid5(DOCUMENT_IDS, f"{task_id}/{body.idempotency_key}/{i}") for i in range(len(body.documents))
    ]
    # Built before anything is stored, so a request the workflow would not take leaves no document behind.
    arg = inner(
        SubmitPartRequest,
        kommune_kode=kommune.kommune_kode,
        submission_id=body.idempotency_key,
        document_ids=tuple(str(d) for d in document_ids),
        final=body.final,
    )
    # A closed task refuses the submission (409 from the workflow): store nothing for it.
    accepts = summary.status in OPEN_TASK_STATUSES and not summary.closing
    recorded = body.idempotency_key in summary.submissions
    stored_now: list[uuid.UUID] = []
    try:
        if accepts or recorded:
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
                        only_existing=recorded,
                    )
                except DocumentError as exc:
                    raise refusal(exc.status_code, exc.code, f"documents[{i}]: {exc}") from None
        return await _task_update(request, task_id, "submit_part", arg, body.idempotency_key)
    except HTTPException as exc:
        # Refused for good (a 4xx): nothing refers to what this call stored, so nothing of it stays. After a 5xx
        # the update may still be carried out, and a retry under the same key finds the documents.
        if 400 <= exc.status_code < 500:
            await deps.stores.documents.discard(stored_now)
        raise


@router.post(
    "/tasks/{task_id}/extension-requests",
    response_model=TaskUpdateResult,
    summary="Ask for more time: granted at once within the policy, else decided by operations",
    responses=errors(404, 409, 422),
)
async def request_extension(
    task_id: TaskId, body: ExtensionRequestBody, request: Request, kommune: Kommune
) -> TaskUpdateResult:
    await _own_task(request, task_id, kommune)
    arg = inner(
        ExtensionRequest,
        kommune_kode=kommune.kommune_kode,
        request_id=body.idempotency_key,
        extend_by=body.extend_by,
        reason=body.reason,
    )
    return await _task_update(request, task_id, "request_extension", arg, body.idempotency_key)


@router.post(
    "/tasks/{task_id}/questions",
    response_model=TaskUpdateResult,
    summary="Ask Seniorpension a question",
    responses=errors(404, 409, 422),
)
async def ask_question(task_id: TaskId, body: QuestionBody, request: Request, kommune: Kommune) -> TaskUpdateResult:
    await _own_task(request, task_id, kommune)
    arg = inner(
        QuestionRequest,
        question_id=body.idempotency_key,
        asked_by=Party.KOMMUNE,
        kommune_kode=kommune.kommune_kode,
        text=body.text,
    )
    return await _task_update(request, task_id, "ask_question", arg, body.idempotency_key)


@router.post(
    "/tasks/{task_id}/answers",
    response_model=TaskUpdateResult,
    summary="Answer a question the caseworker asked on this task",
    responses=errors(404, 409, 422),
)
async def answer_question(task_id: TaskId, body: AnswerBody, request: Request, kommune: Kommune) -> TaskUpdateResult:
    await _own_task(request, task_id, kommune)
    arg = inner(AnswerRequest, question_id=body.question_id, kommune_kode=kommune.kommune_kode, text=body.text)
    return await _task_update(request, task_id, "answer_question", arg, body.question_id)


@router.post(
    "/tasks/{task_id}/returns",
    response_model=TaskUpdateResult,
    summary="Not our citizen: return the task, naming the kommune the citizen lives in",
    responses=errors(404, 409, 422),
)
async def return_task(task_id: TaskId, body: ReturnBody, request: Request, kommune: Kommune) -> TaskUpdateResult:
    await _own_task(request, task_id, kommune)
    arg = inner(
        ReturnRequest,
        kommune_kode=kommune.kommune_kode,
        correct_kommune_kode=body.correct_kommune_kode,
        reason=body.reason,
        request_id=body.idempotency_key,
    )
    return await _task_update(request, task_id, "return_task", arg, task_id)


__all__ = ["HTTPException", "router"]
