"""Bad input everywhere gets a clear 4xx naming the field, and changes nothing."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from eventlog.documents import MAX_DOCUMENT_BYTES
from tests.api.conftest import Stack, application


def document(data: bytes = b"%PDF-1.4 x", content_type: str = "application/pdf", **kw: str) -> dict[str, str]:
    return {
        "document_type": "work_history",
        "filename": "a.pdf",
        "content_type": content_type,
        "content_base64": base64.b64encode(data).decode(),
        **kw,
    }


@pytest.fixture(scope="module")
async def task(stack: Stack) -> tuple[str, str]:
    created = await stack.apply("461")
    return created["case_id"], await stack.open_task(created["case_id"])


async def unchanged(stack: Stack, case_id: str, task_id: str) -> tuple[Any, ...]:
    return (
        tuple(await stack.types(case_id)),
        await stack.task("461", task_id),
        await stack.pool.fetchval("SELECT count(*) FROM documents"),
        await stack.pool.fetchval("SELECT count(*) FROM intake_requests"),
    )


def locs(body: Any) -> list[tuple[Any, ...]]:
    assert isinstance(body["detail"], list), body
    for error in body["detail"]:
        assert error["msg"], error
    return [tuple(e["loc"]) for e in body["detail"]]


async def test_malformed_json_is_refused_with_its_position(stack: Stack, task: tuple[str, str]) -> None:
    case_id, task_id = task
    before = await unchanged(stack, case_id, task_id)
    calls = [
        ("/v1/applications", stack.intake_headers),
        (f"/v1/kommune/tasks/{task_id}/submissions", stack.kommune("461")),
        (f"/v1/kommune/tasks/{task_id}/returns", stack.kommune("461")),
        (f"/v1/ops/cases/{case_id}/decision", stack.ops_headers),
    ]
    for path, headers in calls:
        for content in (b'{"idempotency_key": "x", ', b"not json", b"[1, 2]", b""):
            r = await stack.http.post(path, content=content, headers={**headers, "Content-Type": "application/json"})
            assert r.status_code == 422, (path, content, r.text)
            assert all(loc[0] == "body" for loc in locs(r.json())), r.text
    assert await unchanged(stack, case_id, task_id) == before


SCHEMA_VIOLATIONS: list[tuple[str, str, dict[str, Any], tuple[Any, ...]]] = [
    ("kommune", "submissions", {"idempotency_key": "s", "documents": []}, ("body", "final")),
    ("kommune", "submissions", {"idempotency_key": "s", "final": True, "extra": 1}, ("body", "(unknown field)")),
    ("kommune", "submissions", {"idempotency_key": "has space", "final": True}, ("body", "idempotency_key")),
    ("kommune", "submissions", {"idempotency_key": "s", "final": "sometimes"}, ("body", "final")),
    (
        "kommune",
        "submissions",
        {"idempotency_key": "s", "final": True, "documents": [document(content_base64="%%%")]},
        ("body", "documents", 0, "content_base64"),
    ),
    (
        "kommune",
        "extension-requests",
        {"idempotency_key": "e", "extend_by": {"quantity": -1, "unit": "days"}},
        ("body", "extend_by", "quantity"),
    ),
    (
        "kommune",
        "extension-requests",
        {"idempotency_key": "e", "extend_by": {"quantity": 1, "unit": "fortnights"}},
        ("body", "extend_by", "unit"),
    ),
    ("kommune", "questions", {"idempotency_key": "q", "text": ""}, ("body", "text")),
    ("kommune", "answers", {"question_id": "q"}, ("body", "text")),
    ("kommune", "returns", {"idempotency_key": "r", "correct_kommune_kode": "12345"}, ("body", "correct_kommune_kode")),
    ("ops", "decision", {"idempotency_key": "d", "outcome": "maybe"}, ("body", "outcome")),
    ("ops", "transfer", {"idempotency_key": "t"}, ("body", "to_kommune_kode")),
    ("ops", "withdrawal", {"idempotency_key": "w", "reason": "x" * 2001}, ("body", "reason")),
]


@pytest.mark.parametrize(("who", "what", "body", "loc"), SCHEMA_VIOLATIONS)
async def test_schema_violations_name_the_field(
    stack: Stack, task: tuple[str, str], who: str, what: str, body: dict[str, Any], loc: tuple[Any, ...]
) -> None:
    case_id, task_id = task
    before = await unchanged(stack, case_id, task_id)
    if who == "kommune":
        r = await stack.kpost("461", task_id, what, body)
    else:
        r = await stack.http.post(f"/v1/ops/cases/{case_id}/{what}", json=body, headers=stack.ops_headers)
    assert r.status_code == 422, r.text
    assert loc in locs(r.json()), r.text
    assert await unchanged(stack, case_id, task_id) == before


async def test_bad_applications_and_queries_name_the_field(stack: Stack, task: tuple[str, str]) -> None:
    case_id, task_id = task
    before = await unchanged(stack, case_id, task_id)
    bad_apps = [
        ({"cpr": "not-a-cpr"}, ("body", "application", "applicant", "cpr")),
        ({"kommune_kode": "9999"}, ("body", "application", "kommune_kode")),
        ({"case_type": "holiday"}, ("body", "application", "case_type")),
    ]
    for change, loc in bad_apps:
        app = application("461")
        if "cpr" in change:
            app["applicant"] = {**app["applicant"], **change}
        else:
            app.update(change)
        r = await stack.http.post(
            "/v1/applications", json={"idempotency_key": "bad-1", "application": app}, headers=stack.intake_headers
        )
        assert r.status_code == 422, r.text
        assert any(found[: len(loc)] == loc for found in locs(r.json())), (loc, r.text)

    r = await stack.http.get(f"/v1/ops/cases/{case_id}", headers=stack.ops_headers)
    assert (r.status_code, locs(r.json())) == (422, [("query", "purpose")])
    r = await stack.http.get("/v1/ops/backlog", params={"as_of": "last tuesday"}, headers=stack.ops_headers)
    assert (r.status_code, locs(r.json())) == (422, [("query", "as_of")])
    r = await stack.http.get("/v1/kommune/tasks", params={"limit": 0}, headers=stack.kommune("461"))
    assert (r.status_code, locs(r.json())) == (422, [("query", "limit")])
    assert await unchanged(stack, case_id, task_id) == before


async def test_documents_over_the_limit_or_of_other_types_are_refused(stack: Stack, task: tuple[str, str]) -> None:
    case_id, task_id = task
    before = await unchanged(stack, case_id, task_id)
    too_large = b"%PDF-" + b"0" * (MAX_DOCUMENT_BYTES - 4)
    cases = [
        ([document(), document(too_large)], 413, "too_large"),
        ([document(), document(b"PK\x03\x04zip", "application/zip")], 415, "unsupported_content_type"),
        ([document(), document(b"GIF89a")], 422, "invalid_document"),  # says PDF, is not
        ([document(), document(b"\xff\xfe", "text/plain")], 422, "invalid_document"),
    ]
    for documents, status, code in cases:
        body = {"idempotency_key": f"doc-{status}-{code}", "final": False, "documents": documents}
        r = await stack.kpost("461", task_id, "submissions", body)
        assert r.status_code == status, r.text
        detail = r.json()["detail"]
        assert detail["code"] == code
        assert detail["message"].startswith("documents[1]: ")
    # Nothing of any of them was kept, not even the good first document.
    assert await unchanged(stack, case_id, task_id) == before


async def test_what_the_state_does_not_allow_is_a_conflict(stack: Stack, task: tuple[str, str]) -> None:
    case_id, task_id = task
    r = await stack.http.post(
        f"/v1/ops/cases/{case_id}/decision",
        json={"idempotency_key": "too-early", "outcome": "granted"},
        headers=stack.ops_headers,
    )
    assert (r.status_code, r.json()["detail"]["code"]) == (409, "conflict"), r.text
    r = await stack.kpost("461", task_id, "answers", {"question_id": "never-asked", "text": "Svar."})
    assert r.status_code in (404, 409), r.text
    asked = await stack.kpost("461", task_id, "questions", {"idempotency_key": "q-own", "text": "Hvilken periode?"})
    assert asked.status_code == 200, asked.text
    assert asked.json()["task"]["kommune_questions"] == ["q-own"]
    before = await unchanged(stack, case_id, task_id)
    r = await stack.kpost("461", task_id, "answers", {"question_id": "q-own", "text": "Den selv."})
    assert (r.status_code, r.json()["detail"]["code"]) == (409, "conflict"), r.text
    assert r.json()["detail"]["message"] == "question 'q-own' was asked by the kommune: the caseworker answers it"
    ops_asked = await stack.http.post(
        f"/v1/ops/tasks/{task_id}/questions", json={"idempotency_key": "q-cw", "text": "?"}, headers=stack.ops_headers
    )
    assert ops_asked.status_code == 200, ops_asked.text
    r = await stack.http.post(
        f"/v1/ops/tasks/{task_id}/answers", json={"question_id": "q-cw", "text": "!"}, headers=stack.ops_headers
    )
    assert (r.status_code, r.json()["detail"]["code"]) == (409, "conflict"), r.text
    assert (await stack.types(case_id))[len(before[0]) :] == ["QuestionAsked"]
    for who, path in (("ops", f"/v1/ops/tasks/{task_id}/answers"), ("kommune", f"/v1/kommune/tasks/{task_id}/answers")):
        question = "q-own" if who == "ops" else "q-cw"
        headers = stack.ops_headers if who == "ops" else stack.kommune("461")
        r = await stack.http.post(path, json={"question_id": question, "text": "Svar."}, headers=headers)
        assert r.status_code == 200, (who, r.text)
    r = await stack.kpost("461", task_id, "returns", {"idempotency_key": "r-x", "correct_kommune_kode": "9999"})
    assert (r.status_code, r.json()["detail"]["code"]) == (422, "invalid"), r.text
    assert "correct_kommune_kode" in r.json()["detail"]["message"]
    r = await stack.kpost("461", task_id, "returns", {"idempotency_key": "r-y", "correct_kommune_kode": "461"})
    assert r.status_code == 422, r.text

    final = {"idempotency_key": "final", "final": True, "documents": []}
    assert (await stack.kpost("461", task_id, "submissions", final)).status_code == 200
    await stack.wait_case(case_id, "ready_for_decision")
    before = await unchanged(stack, case_id, task_id)
    for what, body in [
        ("submissions", {"idempotency_key": "after", "final": False, "documents": [document()]}),
        ("submissions", {"idempotency_key": "after-2", "final": True}),
        ("questions", {"idempotency_key": "q-after", "text": "Hvad nu?"}),
        ("extension-requests", {"idempotency_key": "e-after", "extend_by": {"quantity": 5, "unit": "seconds"}}),
        ("returns", {"idempotency_key": "r-after", "correct_kommune_kode": "751"}),
    ]:
        r = await stack.kpost("461", task_id, what, body)
        assert r.status_code == 409, (what, r.text)
        assert r.json()["detail"]["code"] == "conflict"
    assert await unchanged(stack, case_id, task_id) == before
