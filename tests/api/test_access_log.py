"""Reading a case through the ops API is written to the access log: which person, why, what, which case and whose."""

from __future__ import annotations

import uuid

from eventlog.access import AccessLog
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
    reader = stack.headers("Rita Læser", "reader")
    r = await stack.http.get(f"/v1/ops/cases/{case_id}", params={"purpose": "opfølgning"}, headers=reader)
    assert r.status_code == 200, r.text

    records = (await AccessLog(stack.pool).find(case_id=case_id))[before:]
    assert [(a.actor, a.purpose, a.what, a.case_id) for a in records] == [
        ("staff:test-sagsbehandler", "klage 2021-117: sagsgang", "case summary", case_id),
        ("staff:rita-laeser", "opfølgning", "case summary", case_id),
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
    assert await get(url, {"purpose": "peek"}, stack.kommune("561")) == 403  # a kommune, not a person
    assert await get(url, {"purpose": "peek"}, stack.headers("Ida Intake", "intake")) == 403  # files, never reads
    assert await get(url, {"purpose": "peek"}, stack.headers("Anna Revisor", "auditor")) == 403
    assert await get(url, {"purpose": "peek"}, {}) == 401
    unknown = str(uuid.uuid4())
    assert await get(f"/v1/ops/cases/{unknown}", {"purpose": "peek"}, stack.ops_headers) == 404
    assert await get("/v1/ops/cases/no-such-case", {"purpose": "peek"}, stack.ops_headers) == 422
    assert await AccessLog(stack.pool).find(case_id=case_id) == before
    assert await AccessLog(stack.pool).find(case_id=unknown) == []


async def test_an_auditor_asks_who_read_a_citizens_data_when_and_why(stack: Stack) -> None:
    cpr = "030357-2468"  # this test's own citizen: the module's other cases are all filed for another
    case_id = (await stack.apply("561", applicant={"cpr": cpr, "name": "Revision Testperson"}))["case_id"]
    await stack.open_task(case_id)  # a settled log (see above)
    reader = stack.headers("Rita Læser", "reader")
    r = await stack.http.get(f"/v1/ops/cases/{case_id}", params={"purpose": "klage 2021-118"}, headers=reader)
    assert r.status_code == 200, r.text

    auditor = stack.headers("Anna Revisor", "auditor")
    search = {"cpr": cpr, "purpose": "indsigtsanmodning 2021-7"}
    r = await stack.http.post("/v1/ops/access-log/search", json=search, headers=auditor)
    assert r.status_code == 200, r.text
    reads = [(a["actor"], a["purpose"], a["what"], a["case_id"]) for a in r.json()["reads"]]
    assert ("staff:rita-laeser", "klage 2021-118", "case summary", case_id) in reads
    # The search is itself a read of the citizen's data, recorded before it was answered: the last line.
    assert reads[-1] == ("staff:anna-revisor", "indsigtsanmodning 2021-7", "access log search", None)
    assert "2468" not in r.text  # the answer names the citizen by nothing but the ids of their cases

    # The same reads by case (the search named no case), and one person's reads by actor.
    by_case = await stack.http.get("/v1/ops/access-log", params={"case_id": case_id}, headers=auditor)
    assert by_case.status_code == 200, by_case.text
    assert [(a["actor"], a["purpose"], a["what"], a["case_id"]) for a in by_case.json()["reads"]] == reads[:-1]
    by_actor = await stack.http.get(
        "/v1/ops/access-log",
        params={
            "actor": "staff:rita-laeser",
            "since": r.json()["reads"][0]["at"],
            "until": r.json()["reads"][-1]["at"],
        },
        headers=auditor,
    )
    assert by_actor.status_code == 200, by_actor.text
    # Her reads of this case up to the search (until excludes its own instant: the search is the last line).
    assert {(a["actor"], a["case_id"]) for a in by_actor.json()["reads"]} >= {("staff:rita-laeser", case_id)}
    assert {a["actor"] for a in by_actor.json()["reads"]} == {"staff:rita-laeser"}

    # Refused searches search nothing and log nothing: no purpose, a purpose with a CPR number, no filter, no role.
    logged = len(await AccessLog(stack.pool).find(actor="staff:anna-revisor"))
    for body, headers, status in (
        ({"cpr": cpr}, auditor, 422),
        ({"cpr": cpr, "purpose": f"borger {cpr}"}, auditor, 422),
        ({"cpr": "310257-0000", "purpose": "indsigt"}, auditor, 422),  # no 31 February
        (search, stack.ops_headers, 403),
        (search, stack.headers("Rita Læser", "reader"), 403),
        (search, stack.kommune("561"), 403),
        (search, {}, 401),
    ):
        refused = await stack.http.post("/v1/ops/access-log/search", json=body, headers=headers)
        assert refused.status_code == status, refused.text
        assert "2468" not in refused.text  # never echoed
    assert (await stack.http.get("/v1/ops/access-log", headers=auditor)).status_code == 422
    assert len(await AccessLog(stack.pool).find(actor="staff:anna-revisor")) == logged
