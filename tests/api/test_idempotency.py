"""The same idempotency key twice gives the first answer again and no second effect, also after the task or case has
closed; the same key with other content is refused and changes nothing."""

from __future__ import annotations

import base64
from collections import Counter
from typing import Any

import httpx

from api.kommune_schemas import document_id
from eventlog.documents import Documents
from tests.api.conftest import Stack, application

PDF = base64.b64encode(b"%PDF-1.4 work history").decode()


def document(kind: str = "work_history") -> dict[str, str]:
    return {"document_type": kind, "filename": f"{kind}.pdf", "content_type": "application/pdf", "content_base64": PDF}


async def twice(send: Any) -> dict[str, Any]:
    """Send the same request twice; both answers must be the same successful one."""
    first: httpx.Response = await send()
    second: httpx.Response = await send()
    assert first.status_code == 200, first.text
    assert (second.status_code, second.json()) == (first.status_code, first.json())
    body: dict[str, Any] = first.json()
    return body


async def counts(stack: Stack, case_id: str) -> Counter[str]:
    return Counter(await stack.types(case_id))


async def test_intake_replays_the_first_answer_and_refuses_other_content(stack: Stack) -> None:
    body = {"idempotency_key": "intake-1", "application": application("461")}
    first = await stack.http.post("/v1/applications", json=body, headers=stack.intake_headers)
    second = await stack.http.post("/v1/applications", json=body, headers=stack.intake_headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == {**second.json(), "replayed": False}
    assert second.json()["replayed"] is True
    case_id = first.json()["case_id"]
    await stack.open_task(case_id)

    other = {"idempotency_key": "intake-1", "application": application("461", latest_job_months=12)}
    r = await stack.http.post("/v1/applications", json=other, headers=stack.intake_headers)
    assert r.status_code == 409, r.text
    assert r.json()["detail"]["code"] == "conflict"
    assert "idempotency_key" in r.json()["detail"]["message"]
    assert (await counts(stack, case_id))["ApplicationReceived"] == 1
    assert await stack.pool.fetchval("SELECT count(*) FROM intake_requests WHERE idempotency_key = 'intake-1'") == 1


async def test_kommune_writes_and_the_decision_replay_their_first_answer(stack: Stack) -> None:
    case_id = (await stack.apply("461"))["case_id"]
    task_id = await stack.open_task(case_id)

    async def post(what: str, body: dict[str, Any]) -> httpx.Response:
        return await stack.kpost("461", task_id, what, body)

    question = {"idempotency_key": "q-1", "text": "Hvilken periode ønskes beskæftigelsesoplysningerne for?"}
    asked = await twice(lambda: post("questions", question))
    assert asked["recorded"] == ["QuestionAsked"]
    answer = {"question_id": "q-1", "text": "De seneste fem år."}

    async def answer_as_caseworker(body: dict[str, Any] = answer) -> httpx.Response:
        return await stack.http.post(f"/v1/ops/tasks/{task_id}/answers", json=body, headers=stack.ops_headers)

    assert (await twice(answer_as_caseworker))["recorded"] == ["QuestionAnswered"]
    extension = {"idempotency_key": "e-1", "extend_by": {"quantity": 20, "unit": "seconds"}, "reason": "Afventer."}
    extended = await twice(lambda: post("extension-requests", extension))
    assert extended["extension"] == "granted"
    partial = {"idempotency_key": "s-1", "final": False, "documents": [document()]}
    await twice(lambda: post("submissions", partial))
    final = {"idempotency_key": "s-2", "final": True, "documents": [document("health_records")]}
    completed = await twice(lambda: post("submissions", final))
    assert completed["task"]["status"] == "completed"

    # Reused keys with other content: refused, whatever the call.
    reused: list[tuple[str, dict[str, Any]]] = [
        ("questions", {**question, "text": "Noget andet?"}),
        ("extension-requests", {**extension, "extend_by": {"quantity": 30, "unit": "seconds"}}),
        ("submissions", {**partial, "documents": [document(), document("health_records")]}),
    ]
    for what, body in reused:
        r = await post(what, body)
        assert r.status_code == 409, (what, r.text)
        assert r.json()["detail"]["code"] == "conflict"
    assert (await answer_as_caseworker({**answer, "text": "Ti år."})).status_code == 409

    await stack.wait_case(case_id, "ready_for_decision")
    # The task has closed: a late retry still gets the first answer, a changed one is still refused.
    assert (await post("submissions", final)).json() == completed
    late = await post("submissions", {**final, "documents": []})
    assert late.status_code == 409, late.text

    decision = {"idempotency_key": "d-1", "outcome": "granted"}

    async def decide(body: dict[str, Any] = decision) -> httpx.Response:
        return await stack.http.post(f"/v1/ops/cases/{case_id}/decision", json=body, headers=stack.ops_headers)

    decided = await twice(decide)
    assert decided["recorded"][0] == "DecisionMade"
    await stack.wait_case(case_id, "closed")
    assert (await decide()).json() == decided
    assert (await decide({**decision, "outcome": "rejected"})).status_code == 409

    types = await counts(stack, case_id)
    for t in (
        "QuestionAsked",
        "QuestionAnswered",
        "OplysningDeadlineExtended",
        "OplysningCompleted",
        "DecisionMade",
        "CaseClosed",
    ):
        assert types[t] == 1, (t, types)
    assert types["OplysningPartReceived"] == 2  # one per submission, the final one included
    assert await stack.pool.fetchval("SELECT count(*) FROM documents WHERE task_id = $1", task_id) == 2


async def test_a_return_replays_its_first_answer(stack: Stack) -> None:
    case_id = (await stack.apply("751"))["case_id"]
    task_id = await stack.open_task(case_id)
    body = {"idempotency_key": "r-1", "correct_kommune_kode": "461", "reason": "Ikke vores borger."}
    returned = await twice(lambda: stack.kpost("751", task_id, "returns", body))
    assert returned["task"]["status"] == "returned"
    for change in ({"correct_kommune_kode": "851"}, {"idempotency_key": "r-2"}):
        other = await stack.kpost("751", task_id, "returns", {**body, **change})
        assert other.status_code == 409, (change, other.text)
        assert other.json()["detail"]["message"] == "another request already asked to return the task"

    # The case goes on to the kommune named; the returned task is closed, and a retry still gets its answer.
    new_task = await stack.open_task(case_id)
    assert new_task != task_id
    assert (await stack.task("461", new_task))["kommune_kode"] == "461"
    assert (await stack.kpost("751", task_id, "returns", body)).json() == returned
    late = await stack.kpost("751", task_id, "returns", {**body, "idempotency_key": "r-2"})
    assert (late.status_code, late.json()["detail"]["message"]) == (
        409,
        "another request already asked to return the task",
    )
    assert (await counts(stack, case_id))["OplysningReturned"] == 1


async def test_an_extension_beyond_the_policy_waits_for_operations_once(stack: Stack) -> None:
    case_id = (await stack.apply("461"))["case_id"]
    task_id = await stack.open_task(case_id)
    # demo-1 grants up to 60 seconds by itself; more goes to operations.
    ask = {"idempotency_key": "long", "extend_by": {"quantity": 600, "unit": "seconds"}, "reason": "Speciallæge."}
    pending = await twice(lambda: stack.kpost("461", task_id, "extension-requests", ask))
    assert (pending["extension"], pending["task"]["pending_extension"]) == ("pending", "long")
    deadline = pending["task"]["deadline_at"]

    async def grant(grant: bool = True) -> httpx.Response:
        return await stack.http.post(
            f"/v1/ops/tasks/{task_id}/extension-decision",
            json={"request_id": "long", "grant": grant},
            headers=stack.ops_headers,
        )

    granted = await twice(grant)
    assert granted["extension"] == "granted"
    assert granted["task"]["deadline_at"] > deadline
    assert (await grant(False)).status_code == 409
    types = await counts(stack, case_id)
    assert (types["ExtensionRequested"], types["OplysningDeadlineExtended"]) == (1, 1)


async def test_a_retried_submission_must_carry_the_documents_it_first_carried(stack: Stack) -> None:
    case_id = (await stack.apply("461"))["case_id"]
    task_id = await stack.open_task(case_id)
    part = {"idempotency_key": "part-1", "final": False, "documents": [document()]}
    first = await twice(lambda: stack.kpost("461", task_id, "submissions", part))
    other_pdf = base64.b64encode(b"%PDF-1.4 another work history").decode()
    changes: list[tuple[dict[str, Any], str]] = [
        ({"documents": [{**document(), "content_base64": other_pdf}]}, "documents[0]: differs from the document"),
        ({"documents": [{**document(), "filename": "other.pdf"}]}, "documents[0]: differs from the document"),
        # The workflow compares the request (its document ids) with the first: the extra document is taken away.
        ({"documents": [document(), document("pension")]}, "idempotency key 'part-1' was already used for another"),
    ]
    for change, message in changes:
        r = await stack.kpost("461", task_id, "submissions", {**part, **change})
        assert (r.status_code, r.json()["detail"]["code"]) == (409, "conflict"), r.text
        assert r.json()["detail"]["message"].startswith(message), r.text
    assert (await stack.kpost("461", task_id, "submissions", part)).json() == first
    assert await stack.pool.fetchval("SELECT count(*) FROM documents WHERE task_id = $1", task_id) == 1
    assert (await counts(stack, case_id))["OplysningPartReceived"] == 1


async def test_a_submission_whose_documents_were_stored_but_not_recorded_is_checked_against_them(stack: Stack) -> None:
    # The state a lost reply leaves: the API stored the documents, then the update never reached the workflow.
    case_id = (await stack.apply("461"))["case_id"]
    task_id = await stack.open_task(case_id)
    part = {"idempotency_key": "part-lost", "final": False, "documents": [document()]}
    doc_id = document_id(task_id, "part-lost", 0)
    await Documents(stack.pool).store(
        stack.documents,
        "461",
        task_id,
        "work_history.pdf",
        "application/pdf",
        b"%PDF-1.4 first",
        document_id=doc_id,
    )
    r = await stack.kpost("461", task_id, "submissions", part)
    assert (r.status_code, r.json()["detail"]["code"]) == (409, "conflict"), r.text
    assert (await stack.task("461", task_id))["submissions"] == []
    same = {**part, "documents": [{**document(), "content_base64": base64.b64encode(b"%PDF-1.4 first").decode()}]}
    accepted = await stack.kpost("461", task_id, "submissions", same)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["task"]["documents"] == [str(doc_id)]
