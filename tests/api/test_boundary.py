"""The boundary rule through real HTTP: what the API accepts, the event log can hold; what it cannot, is refused with
a 4xx naming the field and changes nothing; and the answers that used to be 500s are answers.

Each probe here was a real failure once: a NUL in a reason code wedged a case, `Infinity` in an application was
answered "received" for a case that never existed, and the idempotency keys, cursors, NaN inputs, purposes and failed
workflows below each gave an unhandled 500.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError

from api.intake import CASE_IDS
from domain.application import Application, CaseType
from domain.events import ApplicationReceived
from tests.api.conftest import Stack, application, eventually
from tests.refused_events import refuse_events
from workflows.client import start_case
from workflows.models import CASE_WORKFLOW, CaseInput, case_workflow_id

PDF = base64.b64encode(b"%PDF-1.4 x").decode()
CPR = "010357-1234"
CPR_WORDS = "must not contain a CPR number (it is stored and shown in plain text)"


def document(**overrides: Any) -> dict[str, Any]:
    return {
        "document_type": "work_history",
        "filename": "a.pdf",
        "content_type": "application/pdf",
        "content_base64": PDF,
        **overrides,
    }


@pytest.fixture(scope="module")
async def task(stack: Stack) -> tuple[str, str]:
    created = await stack.apply("461")
    return created["case_id"], await stack.open_task(created["case_id"])


async def snapshot(stack: Stack, case_id: str) -> tuple[Any, ...]:
    """Everything a refused request could have changed."""
    return (
        tuple(await stack.types(case_id)),
        await stack.pool.fetchval("SELECT count(*) FROM documents"),
        await stack.pool.fetchval("SELECT count(*) FROM intake_requests"),
        await stack.pool.fetchval("SELECT count(*) FROM kommune_inbox"),
        await stack.pool.fetchval("SELECT count(*) FROM access_log"),
    )


def field_error(r: Any, loc: tuple[Any, ...]) -> str:
    """The 422's message for `loc` (the body must be JSON, naming the field; the input is never echoed)."""
    assert r.status_code == 422, r.text
    body = r.json()
    assert isinstance(body["detail"], list), body
    for error in body["detail"]:
        assert set(error) == {"loc", "msg", "type"}, error
        if tuple(error["loc"])[: len(loc)] == loc:
            return str(error["msg"])
    raise AssertionError(f"no error at {loc}: {r.text}")


async def test_keys_that_the_api_took_but_the_workflow_did_not_are_refused_before_anything_is_stored(
    stack: Stack, task: tuple[str, str]
) -> None:
    """101–200 characters: the HTTP schema allowed them, the inner model not (500, and an orphan document)."""
    case_id, task_id = task
    before = await snapshot(stack, case_id)
    key = "k" * 150
    for what, body in [
        ("submissions", {"idempotency_key": key, "final": False, "documents": [document()]}),
        ("questions", {"idempotency_key": key, "text": "Hvilken periode?"}),
        ("extension-requests", {"idempotency_key": key, "extend_by": {"quantity": 5, "unit": "seconds"}}),
        ("returns", {"idempotency_key": key, "correct_kommune_kode": "751"}),
    ]:
        r = await stack.kpost("461", task_id, what, body)
        assert "at most 100 characters" in field_error(r, ("body", "idempotency_key")), (what, r.text)
    r = await stack.http.post(
        "/v1/applications", json={"idempotency_key": key, "application": application()}, headers=stack.intake_headers
    )
    field_error(r, ("body", "idempotency_key"))
    assert await snapshot(stack, case_id) == before
    # The limit the schema states is the one that holds all the way in.
    exact = "k" * 100
    r = await stack.kpost("461", task_id, "questions", {"idempotency_key": exact, "text": "Hvilken periode?"})
    assert r.status_code == 200, r.text
    assert (await stack.types(case_id))[-1] == "QuestionAsked"


async def test_an_inbox_cursor_beyond_bigint_is_a_field_error(stack: Stack) -> None:
    headers = stack.kommune("751")
    r = await stack.http.get("/v1/kommune/tasks", params={"after": 2**63}, headers=headers)
    field_error(r, ("query", "after"))
    r = await stack.http.get("/v1/kommune/tasks", params={"after": 2**63 - 1}, headers=headers)
    assert (r.status_code, r.json()["messages"]) == (200, []), r.text


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e309"])
async def test_a_number_json_cannot_carry_back_is_refused_and_no_case_is_started(
    stack: Stack, task: tuple[str, str], number: str
) -> None:
    """`Infinity` was answered 201 "received"; the workflow then failed at its start, with nothing in the log."""
    case_id, _ = task
    before = await snapshot(stack, case_id)
    key = f"nan-{uuid.uuid4().hex}"
    for field in ("declared_weekly_work_capacity_hours", "residence_years_15_to_pension_age"):
        # Python's json reads NaN and Infinity (and 1e309 as infinity), as FastAPI does: written into the text.
        app = {**application(), field: "NUMBER"}
        body = json.dumps({"idempotency_key": key, "application": app}).replace('"NUMBER"', number)
        r = await stack.http.post(
            "/v1/applications", content=body, headers={**stack.intake_headers, "Content-Type": "application/json"}
        )
        field_error(r, ("body", "application", field))
    assert await snapshot(stack, case_id) == before
    r = await stack.http.get(
        f"/v1/ops/cases/{uuid.uuid5(CASE_IDS, key)}", params={"purpose": "test: no case"}, headers=stack.ops_headers
    )
    assert r.status_code == 404, r.text


async def test_the_boundary_refuses_what_postgresql_or_a_person_cannot_mean(
    stack: Stack, task: tuple[str, str]
) -> None:
    case_id, task_id = task
    before = await snapshot(stack, case_id)
    kommune: list[tuple[str, dict[str, Any], tuple[Any, ...]]] = [
        ("submissions", {"idempotency_key": CPR, "final": False, "documents": [document()]}, ("idempotency_key",)),
        ("submissions", {"idempotency_key": "s-nul\x00", "final": True}, ("idempotency_key",)),
        (
            "submissions",
            {"idempotency_key": "s-bidi", "final": False, "documents": [document(filename="passwd\u202efdp.exe")]},
            ("documents", 0, "filename"),
        ),
        (
            "submissions",
            {"idempotency_key": "s-type", "final": False, "documents": [document(document_type="LÆ\x00145")]},
            ("documents", 0, "document_type"),
        ),
        ("questions", {"idempotency_key": "q-nul", "text": "nul\x00byte"}, ("text",)),
        ("questions", {"idempotency_key": "q-esc", "text": "bell\x07 and \x1b[31mred"}, ("text",)),
        ("returns", {"idempotency_key": "r-fw", "correct_kommune_kode": "１０１"}, ("correct_kommune_kode",)),
        (
            "extension-requests",
            {"idempotency_key": "e-nul", "extend_by": {"quantity": 5, "unit": "seconds"}, "reason": "a\x00"},
            ("reason",),
        ),
        ("answers", {"question_id": "q\x00", "text": "svar"}, ("question_id",)),
    ]
    for what, body, loc in kommune:
        r = await stack.kpost("461", task_id, what, body)
        field_error(r, ("body", *loc))
    ops: list[tuple[str, dict[str, Any], tuple[Any, ...]]] = [
        (
            "decision",
            {"idempotency_key": "d-nul", "outcome": "rejected", "reason_codes": ["nul\x00code"]},
            ("reason_codes", 0),
        ),
        (
            "decision",
            {"idempotency_key": "d-doc", "outcome": "supplementary", "requested_documents": ["LÆ 145\x00"]},
            ("requested_documents", 0),
        ),
        (
            "decision",
            {"idempotency_key": "d-cpr", "outcome": "supplementary", "requested_documents": [f"Lægeerklæring {CPR}"]},
            ("requested_documents", 0),
        ),
        (
            "decision",
            {"idempotency_key": "d-code", "outcome": "rejected", "reason_codes": ["0103571234"]},
            ("reason_codes", 0),
        ),
        (
            "decision",
            {"idempotency_key": "d-rlo", "outcome": "rejected", "reason_codes": ["x\u202ey"]},
            ("reason_codes", 0),
        ),
        ("decision", {"idempotency_key": "d-reasons", "outcome": "granted", "reasons": "\x00"}, ("reasons",)),
        ("transfer", {"idempotency_key": "t-fw", "to_kommune_kode": "７５１"}, ("to_kommune_kode",)),
        ("withdrawal", {"idempotency_key": "w-c1", "reason": "a\x85b"}, ("reason",)),
    ]
    for what, body, loc in ops:
        r = await stack.http.post(f"/v1/ops/cases/{case_id}/{what}", json=body, headers=stack.ops_headers)
        field_error(r, ("body", *loc))
    applications: list[tuple[dict[str, Any], tuple[Any, ...]]] = [
        ({"kommune_kode": "１０１"}, ("kommune_kode",)),
        ({"kommune_kode": "٣٢٩"}, ("kommune_kode",)),
        ({"applicant": {"cpr": "０１０３５７１２３４", "name": "Testperson"}}, ("applicant", "cpr")),
        ({"applicant": {"cpr": CPR, "name": "Test\u202eperson"}}, ("applicant", "name")),
        ({"applicant": {"cpr": CPR, "name": "Test\x00person"}}, ("applicant", "name")),
        ({"received_on": "9999-12-31"}, ("received_on",)),
        ({"received_on": "0001-01-01"}, ("received_on",)),
        ({"latest_job_months": 10**12}, ("latest_job_months",)),
        ({"employment": [{"start": "1985-01-01", "end": None, "weekly_hours": 37}] * 201}, ("employment",)),
    ]
    for change, loc in applications:
        body = {"idempotency_key": f"app-{uuid.uuid4().hex}", "application": {**application("461"), **change}}
        r = await stack.http.post("/v1/applications", json=body, headers=stack.intake_headers)
        field_error(r, ("body", "application", *loc))
    r = await stack.http.post(
        "/v1/applications", json={"idempotency_key": CPR, "application": application()}, headers=stack.intake_headers
    )
    assert "CPR" in field_error(r, ("body", "idempotency_key"))
    for purpose in ("read\x00it", "read\u2028it", f"about {CPR}"):
        r = await stack.http.get(f"/v1/ops/cases/{case_id}", params={"purpose": purpose}, headers=stack.ops_headers)
        message = field_error(r, ("query", "purpose"))
        # In words, not as the regular expression behind them.
        assert message in ("must be one line of text without control characters", CPR_WORDS), r.text
    assert await snapshot(stack, case_id) == before

    # What a person means still goes through: a UUID key, Danish letters, line breaks in free text.
    key = str(uuid.uuid4())
    r = await stack.kpost("461", task_id, "questions", {"idempotency_key": key, "text": "Første linje\r\nanden\tlinje"})
    assert r.status_code == 200, r.text
    assert key in r.json()["task"]["open_questions"]


async def test_reading_a_case_whose_workflow_failed_says_so(stack: Stack) -> None:
    """A case whose stream someone else wrote fails (EventStreamDiverged); one that failed at its very start cannot
    even be replayed to answer a query. The latter was a 500; now both read as waiting for operations."""
    diverged = str(uuid.uuid4())
    intruder = ApplicationReceived(
        event_id=uuid.uuid4(),
        case_id=diverged,
        occurred_at=datetime(2021, 1, 1, tzinfo=UTC),
        case_type=CaseType.SENIORPENSION,
        kommune_kode="461",
        received_on=date(2021, 1, 1),
        subject_id="other",
    )
    await stack.store.append(diverged, 0, [intruder])
    inp = CaseInput(case_id=diverged, subject_id="subj-x", application=Application.model_validate(application("461")))
    failed = await start_case(stack.env.client, inp, task_queue=stack.task_queue)
    with pytest.raises(WorkflowFailureError):
        await failed.result()
    r = await stack.http.get(
        f"/v1/ops/cases/{diverged}", params={"purpose": "test: failed case"}, headers=stack.ops_headers
    )
    if r.status_code == 200:
        assert r.json()["needs_operations"] is True, r.text
        assert r.json()["phase"].startswith("The case's workflow failed"), r.text
    else:  # the replay that answers the query could not run just now (a loaded worker): said as plainly
        assert (r.status_code, r.json()["detail"]["code"]) == (503, "needs_operations"), r.text

    # A start no current code would make (an input the workflow cannot read): it fails before its first step.
    unreadable = str(uuid.uuid4())
    await stack.env.client.start_workflow(
        CASE_WORKFLOW, {"case_id": unreadable}, id=case_workflow_id(unreadable), task_queue=stack.task_queue
    )

    async def told() -> bool:
        r = await stack.http.get(
            f"/v1/ops/cases/{unreadable}", params={"purpose": "test: failed case"}, headers=stack.ops_headers
        )
        assert r.status_code in (200, 503), r.text
        return r.status_code == 503 and r.json()["detail"]["code"] == "needs_operations"

    await eventually(told, "the unreadable case read as waiting for operations")


async def test_an_append_the_log_refuses_is_answered_and_shown_to_operations(stack: Stack) -> None:
    """The database refuses the decision's event (as it refuses a NUL): the caseworker gets an error answer (the same
    on a retry) instead of a hanging call, the case reads as waiting for operations, and /metrics counts it."""
    created = await stack.apply("461")
    case_id = created["case_id"]
    task_id = await stack.open_task(case_id)
    final = {"idempotency_key": "final", "final": True, "documents": []}
    assert (await stack.kpost("461", task_id, "submissions", final)).status_code == 200
    await stack.wait_case(case_id, "ready_for_decision")
    before = await stack.types(case_id)

    await refuse_events(stack.pool, case_id, "DecisionMade")
    decision = {"idempotency_key": "decide-refused", "outcome": "granted"}
    for _ in range(2):
        r = await stack.http.post(f"/v1/ops/cases/{case_id}/decision", json=decision, headers=stack.ops_headers)
        assert (r.status_code, r.json()["detail"]["code"]) == (503, "needs_operations"), r.text
    other = {"idempotency_key": "decide-again", "outcome": "rejected"}
    r = await stack.http.post(f"/v1/ops/cases/{case_id}/decision", json=other, headers=stack.ops_headers)
    assert (r.status_code, r.json()["detail"]["code"]) == (503, "needs_operations"), r.text

    summary = await stack.case(case_id)
    assert (summary["status"], summary["needs_operations"]) == ("ready_for_decision", True)
    assert summary["phase"].startswith("Needs operations")
    assert await stack.types(case_id) == before

    async def counted() -> bool:
        text = (await stack.http.get("/metrics")).text
        return 'sagsflow_workflows_needing_operations{workflow_type="CaseWorkflow"} 1.0' in text

    await eventually(counted, "the stopped case in /metrics")

    # An intake whose first events the log refuses: answered "received" once (the start), never again.
    key = f"refused-{uuid.uuid4().hex}"
    refused_case = str(uuid.uuid5(CASE_IDS, key))
    await refuse_events(stack.pool, refused_case, "ApplicationReceived")
    body = {"idempotency_key": key, "application": application("461")}
    assert (await stack.http.post("/v1/applications", json=body, headers=stack.intake_headers)).status_code == 201

    async def retry_is_told() -> bool:
        r = await stack.http.post("/v1/applications", json=body, headers=stack.intake_headers)
        assert r.status_code in (200, 503), r.text
        return r.status_code == 503 and r.json()["detail"]["code"] == "needs_operations"

    await eventually(retry_is_told, "the intake retry told that the case waits for operations")
    assert await stack.types(refused_case) == []
    for workflow_id in (case_workflow_id(case_id), case_workflow_id(refused_case)):
        await stack.env.client.get_workflow_handle(workflow_id).terminate("test done")
