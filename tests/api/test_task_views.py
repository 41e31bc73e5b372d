"""What a kommune and operations read over HTTP about a task: its real status while open (also in the case summary),
and `cancelled`, with why, once a withdrawal or a move has taken it back."""

from __future__ import annotations

import base64

from tests.api.conftest import Stack, eventually

PDF = base64.b64encode(b"%PDF-1.4 payslips").decode()
DOCUMENT = {
    "document_type": "payslips",
    "filename": "loen.pdf",
    "content_type": "application/pdf",
    "content_base64": PDF,
}


def task_statuses(summary: dict[str, object]) -> list[tuple[object, object]]:
    tasks = summary["tasks"]
    assert isinstance(tasks, list)
    return [(t["task_id"], t["status"]) for t in tasks]


async def test_the_case_summary_shows_its_open_task_as_the_kommune_sees_it(stack: Stack) -> None:
    case_id = (await stack.apply("851"))["case_id"]
    task_id = await stack.open_task(case_id)
    case = await stack.case(case_id)
    assert (case["status"], case["open_task_id"]) == ("awaiting_kommune", task_id)
    assert task_statuses(case) == [(task_id, "delivered")]

    r = await stack.kpost(
        "851", task_id, "submissions", {"idempotency_key": "part-1", "final": False, "documents": [DOCUMENT]}
    )
    assert r.status_code == 200, r.text
    assert r.json()["task"]["status"] == "partially_received"
    assert task_statuses(await stack.case(case_id)) == [(task_id, "partially_received")]

    r = await stack.kpost("851", task_id, "submissions", {"idempotency_key": "final", "final": True, "documents": []})
    assert r.status_code == 200, r.text
    case = await stack.wait_case(case_id, "ready_for_decision")
    assert (case["open_task_id"], task_statuses(case)) == (None, [(task_id, "completed")])


async def test_a_withdrawal_reads_as_cancelled_to_the_kommune(stack: Stack) -> None:
    case_id = (await stack.apply("851"))["case_id"]
    task_id = await stack.open_task(case_id)
    r = await stack.http.post(
        f"/v1/ops/tasks/{task_id}/questions",
        json={"idempotency_key": "q-1", "text": "Hvornår stoppede borgeren?"},
        headers=stack.ops_headers,
    )
    assert r.status_code == 200, r.text
    before = await stack.task("851", task_id)
    assert (before["status"], before["open_questions"], before["cancelled_because"]) == ("delivered", ["q-1"], None)
    assert before["next_reminder_at"] is not None

    r = await stack.http.post(
        f"/v1/ops/cases/{case_id}/withdrawal", json={"idempotency_key": "w-1"}, headers=stack.ops_headers
    )
    assert r.status_code == 200, r.text
    after = await stack.task("851", task_id)
    assert (after["status"], after["cancelled_because"], after["closing"]) == ("cancelled", "withdrawn", True)
    assert (after["next_reminder_at"], after["open_questions"], after["overdue"]) == (None, [], False)
    # It accepts nothing more, and says why in the refusal.
    r = await stack.kpost("851", task_id, "submissions", {"idempotency_key": "late", "final": True, "documents": []})
    assert r.status_code == 409, r.text

    case = await stack.wait_case(case_id, "withdrawn")
    assert (case["open_task_id"], task_statuses(case)) == (None, [(task_id, "cancelled")])


async def test_a_move_reads_as_cancelled_to_the_old_kommune_and_opens_a_task_for_the_new(stack: Stack) -> None:
    case_id = (await stack.apply("851"))["case_id"]
    old_task = await stack.open_task(case_id)
    r = await stack.http.post(
        f"/v1/ops/cases/{case_id}/transfer",
        json={"idempotency_key": "m-1", "to_kommune_kode": "561"},
        headers=stack.ops_headers,
    )
    assert r.status_code == 200, r.text
    old = await stack.task("851", old_task)
    assert (old["status"], old["cancelled_because"], old["next_reminder_at"]) == ("cancelled", "moved", None)

    new_task = ""

    async def both_listed() -> bool:
        nonlocal new_task
        case = await stack.case(case_id)
        new_task = str(case["open_task_id"])
        return task_statuses(case) == [(old_task, "cancelled"), (new_task, "delivered")]

    await eventually(both_listed, "the case lists the cancelled task and the new one as delivered")
    new = await stack.task("561", new_task)
    assert (new["status"], new["cancelled_because"], new["kommune_kode"]) == ("delivered", None, "561")
    # Leave nothing running into the next test's deadlines.
    r = await stack.http.post(
        f"/v1/ops/cases/{case_id}/withdrawal", json={"idempotency_key": "w-end"}, headers=stack.ops_headers
    )
    assert r.status_code == 200, r.text
