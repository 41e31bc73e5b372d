"""A kommune can never see or touch another kommune's task; without a valid key nothing is reachable; a kommune key
opens no operations endpoint."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from eventlog.access import AccessLog
from tests.api.conftest import Stack

PDF = base64.b64encode(b"%PDF-1.4 test").decode()

# Every kommune write, with a body that would be accepted from the task's own kommune.
WRITES: dict[str, dict[str, Any]] = {
    "submissions": {
        "idempotency_key": "s-1",
        "final": False,
        "documents": [
            {
                "document_type": "work_history",
                "filename": "a.pdf",
                "content_type": "application/pdf",
                "content_base64": PDF,
            }
        ],
    },
    "extension-requests": {"idempotency_key": "e-1", "extend_by": {"quantity": 10, "unit": "seconds"}},
    "questions": {"idempotency_key": "q-1", "text": "Hvilken periode?"},
    "answers": {"question_id": "q-0", "text": "Svar."},
    "returns": {"idempotency_key": "r-1", "correct_kommune_kode": "751"},
}


@pytest.fixture(scope="module")
async def task(stack: Stack) -> tuple[str, str]:
    """An open task of kommune 461 (an inbox kommune, so nobody answers it but the tests)."""
    created = await stack.apply("461")
    return created["case_id"], await stack.open_task(created["case_id"])


async def snapshot(stack: Stack, case_id: str, task_id: str) -> tuple[Any, ...]:
    own = await stack.task("461", task_id)
    documents = await stack.pool.fetchval("SELECT count(*) FROM documents")
    return tuple(await stack.types(case_id)), own, documents


@pytest.mark.parametrize("what", list(WRITES))
async def test_another_kommunes_write_is_not_found_and_changes_nothing(
    stack: Stack, task: tuple[str, str], what: str
) -> None:
    case_id, task_id = task
    before = await snapshot(stack, case_id, task_id)
    r = await stack.kpost("851", task_id, what, WRITES[what])
    assert r.status_code == 404, r.text
    assert r.json()["detail"] == {"code": "not_found", "message": "task not found"}
    # Same answer as for a task that does not exist: nothing tells the caller the task is real.
    missing = await stack.kpost("851", "00000000-0000-0000-0000-000000000000", what, WRITES[what])
    assert (missing.status_code, missing.json()) == (r.status_code, r.json())
    assert await snapshot(stack, case_id, task_id) == before


async def test_another_kommune_cannot_read_the_task_or_find_it_in_its_inbox(
    stack: Stack, task: tuple[str, str]
) -> None:
    case_id, task_id = task
    r = await stack.http.get(f"/v1/kommune/tasks/{task_id}", headers=stack.kommune("851"))
    assert (r.status_code, r.json()["detail"]["code"]) == (404, "not_found")
    assert (await stack.task("461", task_id))["case_id"] == case_id

    inbox = await stack.http.get("/v1/kommune/tasks", headers=stack.kommune("851"))
    assert inbox.status_code == 200
    assert all(m["message"]["task_id"] != task_id for m in inbox.json()["messages"])
    own = await stack.http.get("/v1/kommune/tasks", headers=stack.kommune("461"))
    assert task_id in {m["message"]["task_id"] for m in own.json()["messages"]}


KOMMUNE_CALLS = [("GET", "/v1/kommune/tasks", None), ("GET", "/v1/kommune/tasks/{task}", None)] + [
    ("POST", f"/v1/kommune/tasks/{{task}}/{what}", body) for what, body in WRITES.items()
]
OPS_CALLS: list[tuple[str, str, Any]] = [
    ("GET", "/v1/ops/backlog", None),
    ("GET", "/v1/ops/cases/{case}?purpose=peek", None),
    ("POST", "/v1/ops/cases/{case}/decision", {"idempotency_key": "d-1", "outcome": "granted"}),
    ("POST", "/v1/ops/cases/{case}/withdrawal", {"idempotency_key": "w-1"}),
    ("POST", "/v1/ops/cases/{case}/transfer", {"idempotency_key": "t-1", "to_kommune_kode": "751"}),
    ("POST", "/v1/ops/tasks/{task}/extension-decision", {"request_id": "e-1", "grant": True}),
    ("POST", "/v1/applications", {"idempotency_key": "a-1", "application": {}}),
]
BAD_KEYS = [
    None,
    "Bearer",
    "garbage",
    "sfk.0123456789abcdef.not-the-secret",
    "sfo.0123456789abcdef.not-the-secret",
    "Basic dXNlcjpwYXNz",
]


async def call(stack: Stack, task: tuple[str, str], method: str, path: str, body: Any, headers: dict[str, str]) -> int:
    case_id, task_id = task
    url = path.format(case=case_id, task=task_id)
    r = await stack.http.request(method, url, json=body, headers=headers)
    if r.status_code == 401:
        assert r.json() == {"detail": "Not authenticated"}  # no hint why
        assert r.headers["www-authenticate"] == "Bearer"
    return r.status_code


def auth(key: str | None) -> dict[str, str]:
    if key is None:
        return {}
    return {"Authorization": key if key.startswith(("Basic", "Bearer")) else f"Bearer {key}"}


async def test_without_a_valid_key_every_endpoint_is_closed(stack: Stack, task: tuple[str, str]) -> None:
    case_id, task_id = task
    before = await snapshot(stack, case_id, task_id)
    for method, path, body in KOMMUNE_CALLS + OPS_CALLS:
        for key in BAD_KEYS:
            assert await call(stack, task, method, path, body, auth(key)) == 401, (method, path, key)
    # A kommune key tampered with, the retired ops prefix on a real key, a key with a trailing dot.
    real = stack.keys["461"]
    for key in (real[:-2] + "xx", real.replace("sfk.", "sfo.", 1), real + "."):
        for method, path, body in KOMMUNE_CALLS:
            assert await call(stack, task, method, path, body, auth(key)) == 401, (method, path)
    assert await snapshot(stack, case_id, task_id) == before


async def test_a_kommune_key_opens_no_operations_endpoint(stack: Stack, task: tuple[str, str]) -> None:
    case_id, task_id = task
    before = await snapshot(stack, case_id, task_id)
    for method, path, body in OPS_CALLS:
        for kode in ("461", "851"):  # the task's own kommune included
            # Known, but not a person: 403 (the role matrix, tests/api/test_role_matrix.py, has every route).
            assert await call(stack, task, method, path, body, stack.kommune(kode)) == 403, (method, path, kode)
    # Nor does a person pass as a kommune.
    for method, path, body in KOMMUNE_CALLS:
        assert await call(stack, task, method, path, body, stack.ops_headers) == 403, (method, path)
    assert await snapshot(stack, case_id, task_id) == before
    assert "peek" not in {a.purpose for a in await AccessLog(stack.pool).find(case_id=case_id)}
