"""Ids and instants as people paste them, over real HTTP against the dev stack.

- A case or task id works as the bare uuid and as the workflow id the Temporal Web UI shows (`case-<uuid>`,
  `task-<uuid>`); anything else is a 422 on that path parameter, with words rather than a regular expression.
- `as_of` takes an ISO 8601 instant with an offset, also when curl's form decoding turned its `+` into a space;
  it refuses a missing offset, numbers (no Unix time) and instants outside what UTC can hold, never with a 500.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from eventlog.access import AccessLog
from tests.api.conftest import Stack

ID_PROBLEM = "expected a {kind} id: a uuid, or {kind}-<uuid> as the Temporal Web UI shows it"


@pytest.fixture(scope="module")
async def task(stack: Stack) -> tuple[str, str]:
    """An open task of kommune 461 (an inbox kommune: nobody answers it but the tests)."""
    created = await stack.apply("461")
    return created["case_id"], await stack.open_task(created["case_id"])


def field_errors(body: dict[str, Any]) -> list[tuple[tuple[Any, ...], str, str]]:
    return [(tuple(e["loc"]), e["type"], e["msg"]) for e in body["detail"]]


async def test_a_case_reads_the_same_by_its_uuid_and_by_its_workflow_id(stack: Stack, task: tuple[str, str]) -> None:
    case_id, _ = task
    bare = await stack.case(case_id)
    for given in (f"case-{case_id}", f"case-{case_id.upper()}", case_id.upper()):
        summary = await stack.case(given, purpose="test: id as the Web UI shows it")
        assert summary["case_id"] == case_id
        assert summary["status"] == bare["status"]
    # The access log names the case by its uuid whichever form was asked for, so an auditor finds every read.
    purposes = [r.purpose for r in await AccessLog(stack.pool).find(case_id=case_id)]
    assert purposes.count("test: id as the Web UI shows it") == 3


async def test_a_task_reads_the_same_by_its_uuid_and_by_its_workflow_id(stack: Stack, task: tuple[str, str]) -> None:
    _, task_id = task
    r = await stack.http.get(f"/v1/kommune/tasks/task-{task_id}", headers=stack.kommune("461"))
    assert r.status_code == 200, r.text
    assert r.json() == await stack.task("461", task_id)


async def test_ids_that_are_not_ours_are_refused_on_the_parameter(stack: Stack, task: tuple[str, str]) -> None:
    case_id, task_id = task
    for bad in (f"task-{case_id}", "no-such-case", f"case-{case_id}x", f"urn:uuid:{case_id}", "010357-1234"):
        r = await stack.http.get(f"/v1/ops/cases/{bad}", params={"purpose": "peek"}, headers=stack.ops_headers)
        assert r.status_code == 422, (bad, r.text)
        assert field_errors(r.json()) == [(("path", "case_id"), "case_id", ID_PROBLEM.format(kind="case"))]
    for method, path in (
        ("GET", f"/v1/kommune/tasks/case-{task_id}"),
        ("POST", "/v1/kommune/tasks/task-123/questions"),
        ("POST", f"/v1/ops/tasks/{task_id[:-1]}/extension-decision"),
    ):
        headers = stack.kommune("461") if "kommune" in path else stack.ops_headers
        r = await stack.http.request(method, path, headers=headers, json={})
        assert r.status_code == 422, (path, r.text)
        assert (("path", "task_id"), "task_id", ID_PROBLEM.format(kind="task")) in field_errors(r.json())
    # A well-formed id of no case is still "not found", not a format error.
    r = await stack.http.get(
        "/v1/ops/cases/case-00000000-0000-4000-8000-000000000000", params={"purpose": "peek"}, headers=stack.ops_headers
    )
    assert r.status_code == 404


async def test_a_write_by_workflow_id_reaches_the_case(stack: Stack) -> None:
    case_id = (await stack.apply("751"))["case_id"]
    await stack.wait_case(case_id, "awaiting_kommune")
    r = await stack.http.post(
        f"/v1/ops/cases/case-{case_id}/withdrawal", json={"idempotency_key": "w-ui-1"}, headers=stack.ops_headers
    )
    assert r.status_code == 200, r.text
    assert (await stack.wait_case(case_id, "withdrawn"))["case_id"] == case_id


async def backlog(stack: Stack, raw_query: str) -> Any:
    # The query string goes out as written, the way a shell hands it to curl: "+" is not escaped.
    return await stack.http.get(f"/v1/ops/backlog?{raw_query}", headers=stack.ops_headers)


async def test_as_of_with_its_plus_turned_into_a_space_by_curl(stack: Stack) -> None:
    await stack.projected()
    pasted = await backlog(stack, "as_of=2021-03-02T00:00:00+01:00")
    assert pasted.status_code == 200, pasted.text
    encoded = await backlog(stack, "as_of=2021-03-02T00%3A00%3A00%2B01%3A00")
    in_utc = await backlog(stack, "as_of=2021-03-01T23:00:00Z")
    assert encoded.status_code == in_utc.status_code == 200
    assert datetime.fromisoformat(pasted.json()["as_of"]) == datetime.fromisoformat("2021-03-01T23:00:00+00:00")
    assert pasted.json() == encoded.json()
    assert (pasted.json()["tasks"], pasted.json()["cases"]) == (in_utc.json()["tasks"], in_utc.json()["cases"])
    # A negative offset never had the problem; it still reads as it is.
    west = await backlog(stack, "as_of=2021-03-02T00:00:00-05:00")
    assert datetime.fromisoformat(west.json()["as_of"]) == datetime.fromisoformat("2021-03-02T05:00:00+00:00")


@pytest.mark.parametrize(
    ("as_of", "says"),
    [
        ("2021-03-02T00:00:00", "the offset is missing"),
        ("2021-03-02", "expected an ISO 8601 date and time with an offset"),
        ("0.5", "a number is not an instant"),
        ("1614639600", "a number is not an instant"),
        ("1e9", "a number is not an instant"),
        ("0001-01-01T00:00:00%2B14:00", "outside the years 1 to 9999"),
        ("9999-12-31T23:59:59-14:00", "outside the years 1 to 9999"),
        ("2021-02-30T00:00:00Z", "not a valid date, time or offset"),
        ("2021-03-02T00:00:00%2B24:00", "not a valid date, time or offset"),
        ("2021-03-02T00:00:00  01:00", "expected an ISO 8601 date and time with an offset"),
    ],
)
async def test_as_of_refusals_name_the_parameter_and_the_reason(stack: Stack, as_of: str, says: str) -> None:
    r = await backlog(stack, f"as_of={as_of}")
    assert r.status_code == 422, r.text
    [(loc, kind, message)] = field_errors(r.json())
    assert (loc, kind) == (("query", "as_of"), "instant")
    assert message.startswith(says), message


@pytest.mark.parametrize("as_of", ["0001-01-01T00:00:00-14:00", "9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00Z"])
async def test_as_of_at_the_edges_that_exist_in_utc_is_answered(stack: Stack, as_of: str) -> None:
    r = await backlog(stack, f"as_of={as_of.replace('+', '%2B')}")
    assert r.status_code == 200, r.text
    assert datetime.fromisoformat(r.json()["as_of"]) == datetime.fromisoformat(as_of)


async def test_the_schema_tells_clients_the_forms(stack: Stack) -> None:
    spec = (await stack.http.get("/openapi.json")).json()
    [as_of] = [p for p in spec["paths"]["/v1/ops/backlog"]["get"]["parameters"] if p["name"] == "as_of"]
    assert {"type": "string", "format": "date-time"} in as_of["schema"]["anyOf"]
    assert "offset" in as_of["description"]
    for path, name in (("/v1/ops/cases/{case_id}", "case_id"), ("/v1/kommune/tasks/{task_id}", "task_id")):
        [param] = [p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == name]
        kind = name.removesuffix("_id")
        assert param["schema"]["pattern"].startswith(f"^({kind}-)?")
        assert "422" in spec["paths"][path]["get"]["responses"]
