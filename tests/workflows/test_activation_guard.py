"""The guard of workflows/activation_guard.py, in the production sandbox: it notes a workflow task that emitted
commands, and an update that comes after it, in a workflow task of its own, is accepted as before (the guard
refuses only within the same workflow task).

The hazard itself (Core handing one workflow task to lang in two activations) cannot be provoked on purpose; the
histories it produced are in tests/histories_known (test_replay_known.py), and the chaos soak replays every
history of its run from scratch (bench/chaos.py, tests/workflows/test_chaos.py).
"""

from __future__ import annotations

import uuid
from typing import Any

from temporalio import workflow

# The sandbox imports this module again to run the probe: what only the test uses passes through.
with workflow.unsafe.imports_passed_through():
    import pytest
    from fastapi import HTTPException
    from pydantic import BaseModel
    from temporalio.client import Client, WorkflowHandle
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from api.calls import update
    from runtime.temporal import sandbox_runner
    from tests.workflows.conftest import eventually
    from workflows import activation_guard
    from workflows.common import BUSY, refuse


@workflow.defn(name="ActivationGuardProbe")
class ActivationGuardProbe:
    def __init__(self) -> None:
        self.signals = 0
        self.done = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.done)
        return self.signals

    @workflow.signal
    def quiet(self) -> None:
        self.signals += 1

    @workflow.signal
    def emit(self) -> None:
        self.signals += 1
        workflow.upsert_memo({"signals": self.signals})  # a command in the workflow task the signal woke

    @workflow.query
    def count(self) -> int:
        return self.signals

    @workflow.query
    def noted(self) -> int | None:
        """The history length of the last workflow task that emitted commands, as the guard noted it. (A query's own
        history length has moved on past that task's events, so only a validator can compare.)"""
        noted: int | None = getattr(self, activation_guard._EMITTED_AT, None)
        return noted

    @workflow.update
    def finish(self) -> str:
        self.done = True
        return "finished"

    @finish.validator
    def _check_finish(self) -> None:
        if activation_guard.emitted_earlier(self):
            refuse(BUSY, "busy")


async def test_the_guard_notes_a_task_with_commands_and_lets_a_later_update_in(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client: Client = time_skipping_env.client
    queue = f"guard-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[ActivationGuardProbe], workflow_runner=sandbox_runner()):
        handle = await client.start_workflow(ActivationGuardProbe.run, id=f"guard-{uuid.uuid4()}", task_queue=queue)

        async def noted_after(signal: Any, expected: int) -> int | None:
            await handle.signal(signal)
            # A query can be answered before the signal's workflow task ran: wait until it has.
            await eventually(lambda: _counted(handle, expected), f"signal {expected} processed")
            noted: int | None = await handle.query(ActivationGuardProbe.noted)
            return noted

        assert await noted_after(ActivationGuardProbe.quiet, 1) is None
        first = await noted_after(ActivationGuardProbe.emit, 2)
        assert first is not None
        assert await noted_after(ActivationGuardProbe.quiet, 3) == first
        second = await noted_after(ActivationGuardProbe.emit, 4)
        assert second is not None and second > first
        # The update comes in a workflow task of its own: nothing ran before it there, so it is accepted.
        assert await handle.execute_update(ActivationGuardProbe.finish) == "finished"
        assert await handle.result() == 4


class Poke(BaseModel):
    key: str


VALIDATED: list[str] = []  # the validator runs in this process: the test counts the tries the API made


# Unsandboxed, so the validator appends to this module's list, not to a sandbox's copy of it.
@workflow.defn(name="AlwaysBusyProbe", sandboxed=False)
class AlwaysBusyProbe:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.update
    def poke(self, request: Poke) -> str:
        return request.key

    @poke.validator
    def _check_poke(self, request: Poke) -> None:
        VALIDATED.append(request.key)
        refuse(BUSY, "the workflow is busy with other work; retry with the same idempotency key")


async def test_the_api_retries_busy_and_then_answers_503_busy(time_skipping_env: WorkflowEnvironment) -> None:
    client: Client = time_skipping_env.client
    queue = f"busy-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[AlwaysBusyProbe], workflow_runner=sandbox_runner()):
        handle = await client.start_workflow(AlwaysBusyProbe.run, id=f"busy-{uuid.uuid4()}", task_queue=queue)
        key = f"k-{uuid.uuid4()}"
        with pytest.raises(HTTPException) as refused:
            await update(client, handle.id, "poke", Poke(key=key), Poke, key=key, what="task", closed_result_type=Poke)
        await handle.terminate()
    assert refused.value.status_code == 503
    assert isinstance(refused.value.detail, dict) and refused.value.detail["code"] == BUSY
    assert VALIDATED.count(key) == 5  # the first try and four retries, all with the same request


async def _counted(handle: WorkflowHandle[Any, Any], expected: int) -> bool:
    count: int = await handle.query(ActivationGuardProbe.count)
    return count == expected


def test_importing_the_workflows_installs_the_guard() -> None:
    import workflows.common  # noqa: F401 (the import is what is tested)

    assert activation_guard.installed()
