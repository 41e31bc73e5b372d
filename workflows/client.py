"""Client-side helpers for starting cases and reading answers (API, simulator, tests, benchmarks).

Not imported by workflow code (it stays out of the sandbox).
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from domain.state import CaseState
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


async def start_case(client: Client, inp: CaseInput, *, task_queue: str) -> CaseHandle:
    """Start the case workflow. A second start for the same case id is refused by Temporal (the id is never reused),
    so intake is idempotent on the case id."""
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
