"""Client-side helpers for starting cases and reading answers (API, simulator, tests, benchmarks).

Not imported by workflow code (it stays out of the sandbox).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from domain.boundary import field_errors
from domain.commands import ReceiveApplication, decide
from domain.errors import DomainError
from domain.state import CaseState, fold
from runtime.temporal import SharedPydanticPayloadConverter
from workflows.case import CaseWorkflow
from workflows.common import search_attribute_values, typed_search_attributes
from workflows.models import CaseInput, CaseResult, case_workflow_id

CaseHandle = WorkflowHandle[CaseWorkflow, CaseResult]


def initial_search_attributes(inp: CaseInput) -> dict[str, Any]:
    state = CaseState(
        case_id=inp.case_id, case_type=inp.application.case_type, kommune_kode=inp.application.kommune_kode
    )
    values = search_attribute_values(state, policy_id=inp.policy_id)
    values["CaseStatus"] = "received"
    return values


def check_case_input(inp: CaseInput) -> None:
    """Refuse (`DomainError`, code "invalid") a start the case could not record: the workflow must read the input
    exactly as given (a value JSON cannot carry would arrive as something else, or not at all), and the domain must
    take the application as the case's first event. A case that fails at its start has nothing in the event log to
    show for an application that was answered "received"."""
    converter = SharedPydanticPayloadConverter()
    try:
        (read,) = converter.from_payloads(converter.to_payloads([inp]), [CaseInput])
    except (ValidationError, ValueError) as exc:
        detail = field_errors(exc) if isinstance(exc, ValidationError) else type(exc).__name__
        raise DomainError(f"the application cannot be carried to its case: {detail}", code="invalid") from None
    if read != inp:
        raise DomainError("the application does not read back as it was sent", code="invalid")
    command = ReceiveApplication(
        case_id=inp.case_id,
        subject_id=inp.subject_id,
        application=inp.application,
        business_clock_offset_seconds=inp.business_clock_offset_seconds,
    )
    fold(decide(command, CaseState(), now=datetime.now(UTC), new_id=uuid.uuid4))


async def start_case(client: Client, inp: CaseInput, *, task_queue: str) -> CaseHandle:
    """Start the case workflow, once its input is checked (`check_case_input`). A second start for the same case id
    is refused by Temporal (the id is never reused), so intake is idempotent on the case id."""
    check_case_input(inp)
    return await client.start_workflow(
        CaseWorkflow.run,
        inp,
        id=case_workflow_id(inp.case_id),
        task_queue=task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        search_attributes=typed_search_attributes(initial_search_attributes(inp)),
        static_summary=f"{inp.application.case_type.value} case, kommune {inp.application.kommune_kode}",
    )
