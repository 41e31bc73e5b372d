"""Intake: an application comes in and its case workflow starts, exactly once per idempotency key."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.auth import require_staff
from api.calls import CLOSED_WITHOUT_RESULT, inner, needs_operations, refusal
from api.kommune_schemas import ApplicationSubmission
from api.responses import CASE_OPERATIONS, Refused, errors, links
from api.state import deps_of
from domain.application import Application
from domain.errors import DomainError
from runtime.crypto import subject_id_of_cpr
from runtime.identity import Staff
from workflows.client import check_case_input, start_case
from workflows.models import CaseInput, case_workflow_id, fingerprint
from workflows.search_attributes import NEEDS_OPERATIONS

router = APIRouter(prefix="/v1", tags=["intake"])
# Only the intake system files applications: a caseworker who could also file would decide their own cases.
Intake = Annotated[Staff, require_staff("intake")]
CASE_IDS = uuid.UUID("7d1f8f0e-2b53-4c1e-9a57-3c0d6b6f1a21")


class CaseCreated(BaseModel):
    case_id: str
    workflow_id: str
    status: str
    replayed: bool


@router.post(
    "/applications",
    response_model=CaseCreated,
    status_code=201,
    responses={
        201: links(CASE_OPERATIONS, "case_id", "$response.body#/case_id"),
        200: {
            "model": CaseCreated,
            "description": "The same key again: the first answer",
            **links(CASE_OPERATIONS, "case_id", "$response.body#/case_id"),
        },
        **errors(409, 422),
        503: {
            "model": Refused,
            "description": "A backing service is unavailable, or (code needs_operations) the case this key started "
            "could not record the application and waits for operations",
        },
    },
)
async def submit_application(
    body: ApplicationSubmission, request: Request, response: Response, _intake: Intake
) -> CaseCreated:
    deps = deps_of(request)
    # Stored in a plain column, so keyed: an unkeyed hash of an application would confirm a guessed one.
    content = intake_fingerprint(body.application, deps.subject_pepper)
    # The case id follows from the key, so a retry after a lost reply finds the same case.
    case_id = uuid.uuid5(CASE_IDS, body.idempotency_key)
    inp = inner(
        CaseInput,
        case_id=str(case_id),
        subject_id=subject_id_of_cpr(body.application.applicant.cpr, deps.subject_pepper),
        application=body.application,
        policy_id=deps.sla_policy,
    )
    # Before the key is taken: an application the case could not record is refused here, not answered "received".
    try:
        check_case_input(inp)
    except DomainError as exc:
        raise refusal(422, "invalid", str(exc)) from None
    claim = await deps.stores.intake_keys.claim(
        body.idempotency_key, content, case_id, plain_fingerprint=bytes.fromhex(fingerprint(body.application))
    )
    if claim.fingerprint != content:
        raise refusal(409, "conflict", "idempotency_key: already used for a different application")
    replayed = not claim.first
    try:
        # Started even on a replay: the first call may have died between recording the key and starting.
        await start_case(deps.temporal, inp, task_queue=deps.task_queue)
    except WorkflowAlreadyStartedError:
        replayed = True
    if replayed:
        # A retry is answered "received" only for a case that is: one whose workflow failed, or that waits for
        # operations because the event log refused its events, is reported as such.
        await _still_received(deps.temporal, case_workflow_id(str(case_id)))
        response.status_code = 200
    return CaseCreated(
        case_id=str(case_id), workflow_id=case_workflow_id(str(case_id)), status="received", replayed=replayed
    )


def intake_fingerprint(application: Application, pepper: bytes) -> bytes:
    """HMAC-SHA256, keyed with the subject pepper, of the application as the workflows fingerprint it
    (`workflows.models.fingerprint` hashes the same JSON, unkeyed, inside encrypted workflow state)."""
    return hmac.new(pepper, application.model_dump_json().encode(), hashlib.sha256).digest()


async def _still_received(client: Client, workflow_id: str) -> None:
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        raise refusal(503, "unavailable", "the workflow service is unavailable; retry with the same key") from None
    if description.status in CLOSED_WITHOUT_RESULT:
        raise needs_operations("case", workflow_id)
    if description.typed_search_attributes.get(NEEDS_OPERATIONS):
        raise needs_operations("case", workflow_id)
