"""Reading a case through the ops API is written to the access log: who, why, what, which case and person."""

from __future__ import annotations

import uuid

from eventlog.access import AccessLog
from eventlog.api_keys import ApiKeys, key_id_of
from tests.api.conftest import Stack


async def test_reading_a_case_is_access_logged_with_actor_and_purpose(stack: Stack) -> None:
    case_id = (await stack.apply("561"))["case_id"]
    # The case's status query runs ahead of its appends (events are folded first, then written): a read in that
    # moment is logged before the log knows the case's person, so start from a settled log, as an auditor's test must.
    await stack.open_task(case_id)
    before = len(await AccessLog(stack.pool).find(case_id=case_id))

    r = await stack.http.get(
        f"/v1/ops/cases/{case_id}", params={"purpose": "klage 2021-117: sagsgang"}, headers=stack.ops_headers
    )
    assert r.status_code == 200, r.text
    token = await ApiKeys(stack.pool).create_ops_token(label="caseworker 17")
    r = await stack.http.get(
        f"/v1/ops/cases/{case_id}", params={"purpose": "opfølgning"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200, r.text

    records = (await AccessLog(stack.pool).find(case_id=case_id))[before:]
    assert [(a.actor, a.purpose, a.what, a.case_id) for a in records] == [
        ("ops-token", "klage 2021-117: sagsgang", "case summary", case_id),
        (key_id_of(token), "opfølgning", "case summary", case_id),
    ]
    subject = await stack.pool.fetchval("SELECT subject_id FROM case_subjects WHERE case_id = $1", case_id)
    assert subject is not None
    assert {a.subject_id for a in records} == {subject}
    # The person's own view of who read their data shows the reads too.
    assert records[-1] in await AccessLog(stack.pool).find(subject_id=subject)


async def test_refused_reads_log_nothing(stack: Stack) -> None:
    case_id = (await stack.apply("561"))["case_id"]
    await stack.wait_case(case_id, "awaiting_kommune")
    before = await AccessLog(stack.pool).find(case_id=case_id)

    async def get(path: str, params: dict[str, str], headers: dict[str, str]) -> int:
        return (await stack.http.get(path, params=params, headers=headers)).status_code

    url = f"/v1/ops/cases/{case_id}"
    assert await get(url, {}, stack.ops_headers) == 422  # no purpose
    assert await get(url, {"purpose": "x"}, stack.ops_headers) == 422  # too short to say anything
    r = await stack.http.get(url, params={"purpose": "borger 010357-1234 ringede"}, headers=stack.ops_headers)
    assert r.status_code == 422, r.text
    # Refused at the boundary (the purpose's type says so in the OpenAPI document), naming the field.
    (error,) = r.json()["detail"]
    assert (error["loc"], "CPR number" in error["msg"]) == (["query", "purpose"], True)
    assert "010357" not in r.text  # the refusal does not echo the personal data back
    assert await get(url, {"purpose": "peek"}, stack.kommune("561")) == 401
    unknown = str(uuid.uuid4())
    assert await get(f"/v1/ops/cases/{unknown}", {"purpose": "peek"}, stack.ops_headers) == 404
    assert await get("/v1/ops/cases/no-such-case", {"purpose": "peek"}, stack.ops_headers) == 422
    assert await AccessLog(stack.pool).find(case_id=case_id) == before
    assert await AccessLog(stack.pool).find(case_id=unknown) == []
