"""Applications through the intake API → kommuner answer through the kommune API (the simulator for push kommuner,
the test for inbox kommuner) → caseworkers decide through the ops API → the event log, the backlog query and the
workflows' own states agree, and every event is stored exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from domain.events import DecisionMade
from domain.state import CaseStatus, fold
from tests.api.conftest import Stack, eventually

INACTIVE = (CaseStatus.DECIDED, CaseStatus.CLOSED, CaseStatus.WITHDRAWN, CaseStatus.REJECTED_FORMAL)
ONCE = ("ApplicationReceived", "PreScreeningCompleted", "OplysningRequested", "OplysningTaskDelivered")


async def answer_from_inbox(stack: Stack, kode: str, case_id: str) -> str:
    """Play an inbox kommune's system: poll with its key until the case's task shows up, then answer it in full."""
    found: dict[str, Any] = {}

    async def polled() -> bool:
        r = await stack.http.get("/v1/kommune/tasks", headers=stack.kommune(kode), params={"after": 0})
        assert r.status_code == 200, r.text
        for m in r.json()["messages"]:
            if m["message"]["case_id"] == case_id and m["message"]["kind"] == "task":
                found.update(m["message"])
        return bool(found)

    await eventually(polled, f"task of case {case_id} in the inbox of {kode}")
    task_id = str(found["task_id"])
    body = {"idempotency_key": f"final-{task_id}", "final": True, "documents": []}
    r = await stack.kpost(kode, task_id, "submissions", body)
    assert r.status_code == 200, r.text
    assert r.json()["task"]["status"] == "completed"
    return task_id


async def backlog_cases(stack: Stack) -> Counter[tuple[str, str]]:
    await stack.projected()
    r = await stack.http.get("/v1/ops/backlog", headers=stack.ops_headers)
    assert r.status_code == 200, r.text
    return Counter({(row["kommune_kode"], row["status"]): row["cases"] for row in r.json()["cases"]})


async def folded_counts(stack: Stack, case_ids: dict[str, str]) -> Counter[tuple[str, str]]:
    active = Counter[tuple[str, str]]()
    for case_id, kode in case_ids.items():
        state = fold(await stack.events(case_id))
        if state.status not in INACTIVE:
            active[(kode, state.status.value)] += 1
    return active


async def test_applications_answers_and_decisions_agree_everywhere(stack: Stack) -> None:
    kommuner = ["329", "101", "461", "751", "329", "461"]
    created = await asyncio.gather(*(stack.apply(k) for k in kommuner))
    cases = {c["case_id"]: k for c, k in zip(created, kommuner, strict=True)}
    assert all(c["status"] == "received" and not c["replayed"] for c in created)

    # The inbox kommuner have not answered yet: their cases wait on them, and the three views agree on that.
    inbox_cases = {cid: k for cid, k in cases.items() if k in ("461", "751")}
    for cid in inbox_cases:
        await stack.open_task(cid)
    for cid in cases:
        if cid not in inbox_cases:
            await stack.wait_case(cid, "ready_for_decision")
    waiting = await backlog_cases(stack)
    assert waiting == await folded_counts(stack, cases)
    assert waiting[("461", "awaiting_kommune")] == 2
    assert waiting[("751", "awaiting_kommune")] == 1
    statuses = Counter([(k, (await stack.case(cid))["status"]) for cid, k in cases.items()])
    assert statuses == waiting

    await asyncio.gather(*(answer_from_inbox(stack, k, cid) for cid, k in inbox_cases.items()))

    outcomes = {}
    for n, cid in enumerate(cases):
        await stack.wait_case(cid, "ready_for_decision")
        outcome = "rejected" if n % 3 == 2 else "granted"
        body = {
            "idempotency_key": f"decision-{cid}",
            "outcome": outcome,
            "reason_codes": ["test"] if outcome == "rejected" else [],
        }
        r = await stack.http.post(f"/v1/ops/cases/{cid}/decision", json=body, headers=stack.ops_headers)
        assert r.status_code == 200, r.text
        assert "DecisionMade" in r.json()["recorded"]
        outcomes[cid] = outcome

    for cid in cases:
        await stack.wait_case(cid, "closed")
    assert await backlog_cases(stack) == Counter()

    for cid, kode in cases.items():
        events = await stack.events(cid)  # asserts contiguous versions and unique event ids
        types = Counter[str](e.type for e in events)
        for t in (*ONCE, "OplysningCompleted", "DecisionMade", "CitizenNotified", "KommuneNotified", "CaseClosed"):
            assert types[t] == 1, (cid, t, types)
        (decision,) = [e for e in events if isinstance(e, DecisionMade)]
        assert decision.outcome.value == outcomes[cid]
        assert decision.decided_by == "staff:test-sagsbehandler"  # the person, by their subject
        state = fold(events)
        summary = await stack.case(cid)
        assert (summary["status"], summary["version"], summary["kommune_kode"]) == (
            state.status.value,
            len(events),
            kode,
        )
        assert summary["outcome"] == outcomes[cid]

    # The simulator answered every push kommune's task exactly once per planned action, all accepted.
    assert set(stack.sim.stats.actions) <= {"submit_part:200"}
