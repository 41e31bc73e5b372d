"""Who may call what: every route of the API (its OpenAPI document, as served) × every kind of caller → the status the
role model promises, and on every refusal nothing changed: no new event in the case's log, no access-log line about
its citizen, no application filed, no document stored.

The callers: nobody, a garbage token, an expired staff token, a person holding each role alone, a person holding no
role, the owning kommune's key and another kommune's key. One case and its open task serve the whole matrix; the
calls a caller is allowed make real changes (a question asked, a document submitted), so "nothing changed" is judged
around each refused call, not over the whole run. A kommune key on another kommune's task gets exactly the answer a
missing task gets.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import pytest

from domain.events import QuestionAnswered, QuestionAsked
from eventlog.access import AccessLog
from runtime.identity import ROLES, Role
from tests.api.conftest import Stack, application

PDF = base64.b64encode(b"%PDF-1.4 role matrix").decode()
OWN, OTHER = "461", "851"  # inbox kommuner: nobody answers the task but this test
MISSING_CASE = str(uuid.UUID(int=1))
MISSING_TASK = str(uuid.UUID(int=2))
# The codec server is the gateway's: it takes the Web UI's and the Temporal CLI's callers (api/codec.py, its tests).
NOT_HERE = {("POST", "/codec/decode"), ("POST", "/codec/encode")}

Body = dict[str, Any] | Callable[[str], dict[str, Any]] | None
Kind = Literal["public", "anyone", "staff", "kommune"]


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    kind: Kind
    roles: tuple[Role, ...] = ()
    ok: int = 200  # what an allowed caller gets (not always 2xx: the row says why)
    body: Body = None
    params: dict[str, str] = field(default_factory=dict)
    # Allowed callers of a row whose success would end the case act on a case that does not exist (404 after the
    # door, from the workflow service); everyone else knocks on the real case's door.
    allowed_on_missing: bool = False
    other_kommune: int = 404  # another kommune's key on a task route: "not found", as a missing task


# Applications the intake role files in the matrix: another citizen than the matrix case's, whose log is watched.
FILED = application(OWN, applicant={"cpr": "020357-1357", "name": "Matrix Ansøger"})
# What the clock adds to a task's log while the matrix runs (the demo policy counts in seconds): nobody's call.
CLOCK_EVENTS = {"KommuneReminderSent", "OplysningOverdue"}
READERS: tuple[Role, ...] = ("caseworker", "team-lead", "reader")
CASEWORKERS: tuple[Role, ...] = ("caseworker", "team-lead")
PURPOSE = {"purpose": "test: role matrix"}

ROWS = [
    Row("GET", "/healthz", "public"),
    Row("GET", "/readyz", "public"),
    Row("GET", "/metrics", "public"),
    Row("GET", "/v1/whoami", "anyone"),
    Row(
        "POST",
        "/v1/applications",
        "staff",
        ("intake",),
        ok=201,
        body=lambda who: {"idempotency_key": f"matrix-{who}-{uuid.uuid4().hex}", "application": FILED},
    ),
    Row("GET", "/v1/ops/backlog", "staff", READERS),
    Row("GET", "/v1/ops/forecast", "staff", READERS, params={"runs": "20"}),
    Row("GET", "/v1/ops/cases/{case_id}", "staff", READERS, params=PURPOSE),
    # The case waits for its kommune: a decision is refused by the case (409), after the door let the caller in.
    Row(
        "POST",
        "/v1/ops/cases/{case_id}/decision",
        "staff",
        CASEWORKERS,
        ok=409,
        body={"idempotency_key": "d-1", "outcome": "granted"},
    ),
    Row(
        "POST",
        "/v1/ops/cases/{case_id}/withdrawal",
        "staff",
        ("team-lead",),
        ok=404,
        body={"idempotency_key": "w-1"},
        allowed_on_missing=True,
    ),
    Row(
        "POST",
        "/v1/ops/cases/{case_id}/transfer",
        "staff",
        ("team-lead",),
        ok=404,
        body={"idempotency_key": "t-1", "to_kommune_kode": "751"},
        allowed_on_missing=True,
    ),
    # No such pending request: the task says so (404) once the team lead is through the door.
    Row(
        "POST",
        "/v1/ops/tasks/{task_id}/extension-decision",
        "staff",
        ("team-lead",),
        ok=404,
        body={"request_id": "no-such-request", "grant": True},
    ),
    Row(
        "POST",
        "/v1/ops/tasks/{task_id}/questions",
        "staff",
        CASEWORKERS,
        body=lambda who: {"idempotency_key": f"q-{who}", "text": "Hvilken periode?"},
    ),
    # The questions the kommune asked before the matrix ran, one for each caseworker role.
    Row(
        "POST",
        "/v1/ops/tasks/{task_id}/answers",
        "staff",
        CASEWORKERS,
        body=lambda who: {"question_id": f"kq-{who}", "text": "Svar."},
    ),
    Row("GET", "/v1/ops/access-log", "staff", ("auditor",), params={"case_id": "{case_id}"}),
    Row(
        "POST",
        "/v1/ops/access-log/search",
        "staff",
        ("auditor",),
        body={"cpr": "010357-1234", "purpose": "test: role matrix"},
    ),
    Row("GET", "/v1/kommune/tasks", "kommune", other_kommune=200),  # each kommune its own inbox
    Row("GET", "/v1/kommune/tasks/{task_id}", "kommune"),
    Row("GET", "/v1/kommune/tasks/{task_id}/citizen", "kommune"),
    Row(
        "POST",
        "/v1/kommune/tasks/{task_id}/submissions",
        "kommune",
        body={
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
    ),
    Row(
        "POST",
        "/v1/kommune/tasks/{task_id}/extension-requests",
        "kommune",
        body={"idempotency_key": "e-1", "extend_by": {"quantity": 10, "unit": "seconds"}},
    ),
    Row("POST", "/v1/kommune/tasks/{task_id}/questions", "kommune", body={"idempotency_key": "kq-1", "text": "?"}),
    # Answers the caseworker's question of the row above (the rows run in order).
    Row("POST", "/v1/kommune/tasks/{task_id}/answers", "kommune", body={"question_id": "q-caseworker", "text": "!"}),
    # Returning the task to its own kommune is refused by the task (422), after the door let the kommune in.
    Row(
        "POST",
        "/v1/kommune/tasks/{task_id}/returns",
        "kommune",
        ok=422,
        body={"idempotency_key": "r-1", "correct_kommune_kode": OWN},
    ),
]

UNAUTHENTICATED = ("nobody", "garbage", "expired")
CALLERS: tuple[str, ...] = (*UNAUTHENTICATED, *ROLES, "no-role", "own-kommune", "other-kommune")


def expected(row: Row, caller: str) -> int:
    if row.kind == "public":
        return 200
    if caller in UNAUTHENTICATED:
        return 401
    if row.kind == "anyone":
        return 200
    if row.kind == "staff":
        return row.ok if caller in row.roles else 403
    if caller == "own-kommune":
        return row.ok
    return row.other_kommune if caller == "other-kommune" else 403


@dataclass
class Matrix:
    stack: Stack
    case_id: str
    task_id: str
    subject_id: str
    headers: dict[str, dict[str, str]]

    async def call(self, row: Row, caller: str, *, case_id: str, task_id: str) -> tuple[int, Any]:
        path = row.path.format(case_id=case_id, task_id=task_id)
        params = {k: v.format(case_id=case_id) for k, v in row.params.items()}
        body = row.body(caller) if callable(row.body) else row.body
        r = await self.stack.http.request(row.method, path, params=params, json=body, headers=self.headers[caller])
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, r.text

    async def snapshot(self) -> tuple[Any, ...]:
        pool = self.stack.pool
        return (
            [t for t in await self.stack.types(self.case_id) if t not in CLOCK_EVENTS],
            len(await AccessLog(pool).find(subject_id=self.subject_id)),
            await pool.fetchval("SELECT count(*) FROM intake_requests"),
            await pool.fetchval("SELECT count(*) FROM documents"),
        )


@pytest.fixture(scope="module")
async def matrix(stack: Stack) -> Matrix:
    case_id = str((await stack.apply(OWN))["case_id"])
    task_id = await stack.open_task(case_id)
    for who in CASEWORKERS:  # the kommune's questions the caseworkers' answers answer
        r = await stack.kpost(OWN, task_id, "questions", {"idempotency_key": f"kq-{who}", "text": "Hvornår?"})
        assert r.status_code == 200, r.text
    subject_id = await stack.pool.fetchval("SELECT subject_id FROM case_subjects WHERE case_id = $1", case_id)
    assert subject_id is not None
    everything = stack.issuer.mint("Udløbet Person", ROLES, ttl=timedelta(minutes=-5))
    headers: dict[str, dict[str, str]] = {
        "nobody": {},
        "garbage": {"Authorization": "Bearer garbage"},
        "expired": {"Authorization": f"Bearer {everything}"},
        **{role: stack.headers(f"Matrix {role}", role) for role in ROLES},
        "no-role": stack.headers("Matrix Ingen Rolle"),
        "own-kommune": stack.kommune(OWN),
        "other-kommune": stack.kommune(OTHER),
    }
    return Matrix(stack, case_id, task_id, subject_id, headers)


async def test_the_matrix_covers_every_route(stack: Stack) -> None:
    served = (await stack.http.get("/openapi.json")).json()["paths"]
    routes = {(method.upper(), path) for path, operations in served.items() for method in operations}
    assert routes - NOT_HERE == {(row.method, row.path) for row in ROWS}


@pytest.mark.parametrize("row", ROWS, ids=[f"{row.method} {row.path}" for row in ROWS])
async def test_every_caller_gets_what_its_role_allows(matrix: Matrix, row: Row) -> None:
    for caller in CALLERS:
        want = expected(row, caller)
        allowed = want == row.ok and caller not in UNAUTHENTICATED and want not in (401, 403)
        if row.kind == "kommune" and caller == "other-kommune":
            allowed = False  # judged as a refusal below, even where its own inbox answers 200
        missing = allowed and row.allowed_on_missing
        before = None if allowed else await matrix.snapshot()
        status, body = await matrix.call(
            row,
            caller,
            case_id=MISSING_CASE if missing else matrix.case_id,
            task_id=MISSING_TASK if missing else matrix.task_id,
        )
        assert status == want, (caller, body)
        if status == 401:
            assert body == {"detail": "Not authenticated"}  # the same answer whatever was wrong
        if before is not None:
            assert await matrix.snapshot() == before, f"{caller} was refused, yet something changed"
        if row.kind == "kommune" and caller == "other-kommune" and want == 404:
            # Exactly what a task that does not exist gets: nothing says the task is real.
            assert (status, body) == await matrix.call(row, caller, case_id=matrix.case_id, task_id=MISSING_TASK)


async def test_the_events_name_the_people_who_acted(matrix: Matrix) -> None:
    """Runs after the matrix (file order): the caseworkers' questions and answers name each person."""
    events = await matrix.stack.events(matrix.case_id)
    asked = {e.question_id: e.by for e in events if isinstance(e, QuestionAsked)}
    answered = {e.question_id: e.by for e in events if isinstance(e, QuestionAnswered)}
    assert {q: asked.get(q) for q in ("q-caseworker", "q-team-lead", "kq-caseworker")} == {
        "q-caseworker": "staff:matrix-caseworker",
        "q-team-lead": "staff:matrix-team-lead",
        "kq-caseworker": None,  # the kommune asked: its kommune code says who
    }
    assert answered["kq-caseworker"] == "staff:matrix-caseworker"
    assert answered["q-caseworker"] is None  # the kommune answered
