"""The kommune's view of the citizen (issue 14, item 1): whom a task concerns, to the owning kommune only, while the
task is open, every read in the access log; the task message says where to fetch it."""

from __future__ import annotations

import uuid
from typing import Any

from eventlog.access import AccessLog
from eventlog.api_keys import key_id_of
from tests.api.conftest import Stack, eventually

APPLICANT = {"cpr": "010357-1234", "name": "Karen Oplysning Testesen"}


def citizen_url(task_id: str) -> str:
    return f"/v1/kommune/tasks/{task_id}/citizen"


def actor(stack: Stack, kode: str) -> str:
    return f"kommune:{kode}:{key_id_of(stack.keys[kode])}"


async def inbox_message(stack: Stack, kode: str, task_id: str) -> dict[str, Any]:
    r = await stack.http.get("/v1/kommune/tasks", params={"limit": 500}, headers=stack.kommune(kode))
    assert r.status_code == 200, r.text
    messages = [m["message"] for m in r.json()["messages"]]
    (message,) = [m for m in messages if (m["task_id"], m["kind"]) == (task_id, "task")]
    assert isinstance(message, dict)
    return message


async def test_the_owning_kommune_reads_the_citizen_at_the_path_its_message_names(stack: Stack) -> None:
    case_id = (await stack.apply("461", applicant=APPLICANT))["case_id"]
    task_id = await stack.open_task(case_id)
    message = await inbox_message(stack, "461", task_id)
    assert message["citizen_path"] == citizen_url(task_id)
    assert "010357" not in str(message) and APPLICANT["name"] not in str(message)  # the message stays ids only
    before = await AccessLog(stack.pool).find(case_id=case_id)

    r = await stack.http.get(message["citizen_path"], headers=stack.kommune("461"))
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert (body["cpr"], body["name"]) == (APPLICANT["cpr"], APPLICANT["name"])
    assert (body["task_id"], body["case_id"], body["kommune_kode"]) == (task_id, case_id, "461")
    assert body["case_type"] == "seniorpension"
    assert body["reason"] == "initial"
    assert body["requested_documents"] == message["requested_documents"]
    assert [p["start"] for p in body["employment"]] == ["1985-01-01"]
    assert body["current_attachment"]["status"] == "working"

    # The read is in the access log: the kommune and its key, the purpose, the case and its person.
    records = (await AccessLog(stack.pool).find(case_id=case_id))[len(before) :]
    assert [(a.actor, a.purpose, a.case_id) for a in records] == [(actor(stack, "461"), "oplysning", case_id)]
    subject = await stack.pool.fetchval("SELECT subject_id FROM case_subjects WHERE case_id = $1", case_id)
    assert subject is not None and records[0].subject_id == subject

    # A second read is a second record.
    r = await stack.http.get(citizen_url(task_id), headers=stack.kommune("461"))
    assert r.status_code == 200, r.text
    assert len(await AccessLog(stack.pool).find(case_id=case_id)) == len(before) + 2


async def test_another_kommune_and_a_closed_task_get_the_answer_of_a_missing_task(stack: Stack) -> None:
    case_id = (await stack.apply("461", applicant=APPLICANT))["case_id"]
    task_id = await stack.open_task(case_id)
    before = await AccessLog(stack.pool).find(case_id=case_id)

    missing = await stack.http.get(citizen_url(str(uuid.uuid4())), headers=stack.kommune("461"))
    assert missing.status_code == 404, missing.text
    other = await stack.http.get(citizen_url(task_id), headers=stack.kommune("751"))
    assert (other.status_code, other.content) == (missing.status_code, missing.content)
    assert (await stack.http.get(citizen_url(task_id))).status_code == 401
    # A person is known, but no kommune: refused (403), and never handed the kommune's view of the citizen.
    assert (await stack.http.get(citizen_url(task_id), headers=stack.ops_headers)).status_code == 403

    # The kommune completes its task: from then on the person is not handed out any more.
    r = await stack.kpost("461", task_id, "submissions", {"idempotency_key": "final-1", "final": True})
    assert r.status_code == 200, r.text

    async def completed() -> bool:
        return str((await stack.task("461", task_id))["status"]) == "completed"

    await eventually(completed, f"task {task_id} completed")
    closed = await stack.http.get(citizen_url(task_id), headers=stack.kommune("461"))
    assert (closed.status_code, closed.content) == (missing.status_code, missing.content)
    assert "010357" not in closed.text and "Karen" not in closed.text

    # None of the refused reads reached the person, so none is in the access log.
    assert await AccessLog(stack.pool).find(case_id=case_id) == before


async def test_the_simulated_push_kommune_fetches_the_citizen_when_its_task_arrives(stack: Stack) -> None:
    case_id = (await stack.apply("329"))["case_id"]
    await stack.wait_case(case_id, "ready_for_decision")

    async def read() -> bool:
        records = await AccessLog(stack.pool).find(case_id=case_id, actor=actor(stack, "329"))
        return [r.purpose for r in records] == ["oplysning"]

    await eventually(read, f"the simulator's read of case {case_id}'s citizen in the access log")
