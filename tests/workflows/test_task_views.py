"""What a task and a case say about a task the case took back (withdrawal, move), and about an open task's progress.

The case records the cancellation once the task has handed its stream back, so the task's own state stops at what
it last recorded (delivered, with reminders ahead and questions open); its status query must still read cancelled.
"""

from __future__ import annotations

from domain.events import Party
from domain.state import CaseStatus, TaskStatus
from tests.workflows.conftest import Lifecycle, utc
from workflows.case import CaseWorkflow
from workflows.models import (
    HandBack,
    QuestionRequest,
    SubmitPartRequest,
    TaskSummary,
    TransferRequest,
    WithdrawRequest,
)
from workflows.task import OplysningTaskWorkflow


async def test_a_task_taken_back_by_a_withdrawal_reads_cancelled_to_its_kommune(lifecycle: Lifecycle) -> None:
    case = await lifecycle.start(at=utc(2021, 3, 1, 8, 0))
    first = await lifecycle.delivery()
    task = lifecycle.task(first.task_id)
    await task.execute_update(
        OplysningTaskWorkflow.ask_question,
        QuestionRequest(question_id="q-1", asked_by=Party.CASEWORKER, text="Hvornår stoppede borgeren?"),
    )
    await task.execute_update(
        OplysningTaskWorkflow.submit_part,
        SubmitPartRequest(kommune_kode="329", submission_id="s-1", document_ids=("d-1",)),
    )
    before = await task.query(OplysningTaskWorkflow.status)
    assert (before.status, before.open_questions, before.cancelled_because) == (
        TaskStatus.PARTIALLY_RECEIVED,
        ("q-1",),
        None,
    )
    assert before.next_reminder_at is not None

    # The case knows its open task only as requested (the task owns the stream); the task's report is newer.
    own = await case.query(CaseWorkflow.status)
    assert [(b.task_id, b.status) for b in own.tasks] == [(first.task_id, TaskStatus.REQUESTED)]
    merged = own.with_task(before)
    assert [b.status for b in merged.tasks] == [TaskStatus.PARTIALLY_RECEIVED]
    assert (merged.status, merged.open_task_id) == (own.status, own.open_task_id)

    answer = await case.execute_update(CaseWorkflow.withdraw, WithdrawRequest(request_id="w-1"))
    assert answer.recorded == ("OplysningCancelled", "ApplicationWithdrawn")
    result = await lifecycle.finish(case, "withdrawal_task_open")
    assert result.status is CaseStatus.WITHDRAWN
    ended = await task.result()
    assert ended.outcome == "handed_back"
    # The task's own state never recorded the cancellation: that is the case's event, after the hand-back.
    assert ended.state.tasks[first.task_id].status is TaskStatus.PARTIALLY_RECEIVED

    after = await task.query(OplysningTaskWorkflow.status)
    assert (after.status, after.cancelled_because, after.closing) == (TaskStatus.CANCELLED, "withdrawn", True)
    assert (after.next_reminder_at, after.open_questions, after.overdue) == (None, (), False)
    assert (after.submissions, after.answered_questions) == (("s-1",), ())  # what happened stays readable

    # While it is closing (calls already accepted still finishing) the task holds that same open state: what it
    # answers then is the state with the hand-back, whichever the reason.
    held = ended.state.tasks[first.task_id]
    assert TaskSummary.of(ended.state, held).status is TaskStatus.PARTIALLY_RECEIVED
    closing = TaskSummary.of(ended.state, held, hand_back=HandBack(reason="transferred"))
    assert (closing.status, closing.cancelled_because, closing.next_reminder_at) == (
        TaskStatus.CANCELLED,
        "moved",
        None,
    )

    # The case's summary now has the cancellation from its own stream; a task report older than that is ignored.
    closed = await case.query(CaseWorkflow.status)
    assert [b.status for b in closed.tasks] == [TaskStatus.CANCELLED]
    assert closed.with_task(before) == closed


async def test_a_task_taken_back_by_a_move_reads_cancelled_because_moved(lifecycle: Lifecycle) -> None:
    case = await lifecycle.start(at=utc(2021, 3, 1, 8, 0))
    first = await lifecycle.delivery()
    old_task = lifecycle.task(first.task_id)
    moved = await case.execute_update(CaseWorkflow.transfer, TransferRequest(request_id="m-1", to_kommune_kode="751"))
    assert moved.recorded == ("OplysningCancelled", "CaseTransferred")
    second = await lifecycle.delivery()
    assert second.kommune_kode == "751"
    assert (await old_task.result()).outcome == "handed_back"

    old = await old_task.query(OplysningTaskWorkflow.status)
    assert (old.status, old.cancelled_because, old.next_reminder_at) == (TaskStatus.CANCELLED, "moved", None)
    new = await lifecycle.task(second.task_id).query(OplysningTaskWorkflow.status)
    assert (new.status, new.cancelled_because, new.kommune_kode) == (TaskStatus.DELIVERED, None, "751")
    assert new.next_reminder_at is not None

    # Leave nothing running: the time-skipping server would wait on this case's timers in later tests.
    await case.execute_update(CaseWorkflow.withdraw, WithdrawRequest(request_id="w-1"))
    assert (await case.result()).status is CaseStatus.WITHDRAWN
