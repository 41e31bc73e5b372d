"""A deliberately non-deterministic change to CaseWorkflow, for the replay gate's test only (tests/workflows/
test_replay.py): a step added in front of the first one without `workflow.patched`, as a hurried change would.
It lives in a module of its own because the workflow sandbox re-imports a workflow's module for every run."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.case import CaseWorkflow
from workflows.common import FAILURE_TYPES
from workflows.models import CaseInput, CaseResult


@workflow.defn(name="CaseWorkflow", failure_exception_types=FAILURE_TYPES)
class UnpatchedCaseWorkflow(CaseWorkflow):
    @workflow.run
    async def run(self, inp: CaseInput) -> CaseResult:
        await workflow.sleep(timedelta(minutes=1))  # new, unpatched: running cases never recorded this timer
        return await super().run(inp)
