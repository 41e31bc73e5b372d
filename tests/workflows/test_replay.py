"""Saved histories replay against the current workflow code: a change that would break running cases (months long)
fails here, before a deploy. Regenerate with SAGSFLOW_RECORD_HISTORIES=1 when a change is deliberate and patched
(`workflow.patched`), keeping the old histories that running cases still have."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from runtime.temporal import data_converter, sandbox_runner
from tests.workflows.conftest import HISTORY_DIR, HISTORY_RING
from workers.worker import WORKFLOWS
from workflows.common import FAILURE_TYPES

SCENARIOS = (
    "happy_path",
    "christmas_escalation",
    "extension",
    "supplementary",
    "return_reroute",
    "move_transfer",
    "withdrawal",
    "formal_rejection",
    "delivery_failed",
    "continue_as_new",
    # Recorded by code from before each side had to answer the other's questions: each answered its own. Its task
    # state has no askers, so the rule is not applied to it (domain.commands, AnswerQuestion).
    "answers_before_the_rule",
    # Recorded by the code that gives a task its own search attributes (TaskStatus, no CaseStatus) and reads a
    # taken-back task as cancelled: a withdrawal while the task is open, with a question and a part received.
    "withdrawal_task_open",
    # A task started and delivered by the code before it (its case's attributes), taken back after the deploy: it
    # ends with its own final attributes all the same (tests/workflows/record_across_deploy.py recorded it).
    "task_end_across_deploy",
)


def load(path: Path) -> WorkflowHistory:
    body = json.loads(path.read_text())
    return WorkflowHistory.from_json(body["workflow_id"], body["history"])


def saved() -> list[Path]:
    return sorted(HISTORY_DIR.glob("*.json"), key=lambda p: p.name)


def test_every_scenario_has_saved_histories() -> None:
    names = {p.name.split(".")[0] for p in saved() if p.name != "test-keyring.json"}
    assert set(SCENARIOS) <= names


@pytest.mark.parametrize("path", [p for p in saved() if p.name != "test-keyring.json"], ids=lambda p: p.stem)
async def test_saved_history_replays(path: Path) -> None:
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=data_converter(HISTORY_RING),
        workflow_runner=sandbox_runner(),
        workflow_failure_exception_types=list(FAILURE_TYPES),
        # This gate is about determinism. The first replay in a process imports the workflow modules into the
        # sandbox, which on a loaded machine takes longer than the 2 s deadlock detector allows (seen here as a
        # _DeadlockError on whichever history came first); the lifecycle tests keep the detector on.
        debug_mode=True,
    )
    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
