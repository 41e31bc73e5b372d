"""Simulated caseworkers for the demo: they find cases ready for decision and decide them through the ops API.

Cases are found the way operations staff find them (Temporal visibility, `CaseStatus="ready_for_decision"`); the
decision goes through `POST /v1/ops/cases/{id}/decision` like a real caseworker's. Seeded: about two in three are
granted (as in 2022-23), one in twenty goes back to the kommune for supplementary information. The cases of the
kommuner in `leave_kommuner` are left alone: the demo leaves København's to people (`sim.demo`), so a person
deciding one never races a demo caseworker.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

import httpx
from temporalio.client import Client

from runtime.logs import get_logger

log = get_logger(__name__)

GRANT_SHARE = 0.65
SUPPLEMENTARY_SHARE = 0.05


def choose_outcome(rng: random.Random) -> str:
    draw = rng.random()
    if draw < SUPPLEMENTARY_SHARE:
        return "supplementary"
    return "granted" if draw < SUPPLEMENTARY_SHARE + GRANT_SHARE else "rejected"


def ready_cases_query(leave_kommuner: frozenset[str] = frozenset()) -> str:
    query = 'WorkflowType="CaseWorkflow" AND CaseStatus="ready_for_decision" AND ExecutionStatus="Running"'
    for kode in sorted(leave_kommuner):
        if not kode.isdigit():  # kommune codes only: this goes into a visibility query
            raise ValueError(f"{kode!r} is not a kommune code")
        query += f' AND KommuneKode!="{kode}"'
    return query


async def decide_ready_cases(
    client: Client,
    http: httpx.AsyncClient,
    rng: random.Random,
    *,
    limit: int = 20,
    leave_kommuner: frozenset[str] = frozenset(),
) -> int:
    """One round: decide up to `limit` cases that wait for a caseworker. Returns how many were decided."""
    decided = 0
    query = ready_cases_query(leave_kommuner)
    async for wf in client.list_workflows(query, limit=limit):
        case_id = wf.id.removeprefix("case-")
        outcome = choose_outcome(rng)
        body = {
            "idempotency_key": f"demo-decision-{case_id}-{wf.run_id[:8]}",
            "outcome": outcome,
            "reason_codes": [] if outcome != "rejected" else ["work_capacity"],
            "requested_documents": ["LÆ 145"] if outcome == "supplementary" else [],
        }
        response = await http.post(f"/v1/ops/cases/{case_id}/decision", json=body)
        if response.status_code == 200:
            decided += 1
        elif response.status_code not in (404, 409):  # already decided or moved on: not an error in a demo
            log.warning("demo decision refused", status=response.status_code)
    return decided


async def run_caseworkers(
    client: Client,
    api_url: str,
    ops_token: str,
    *,
    seed: int = 1,
    interval_seconds: float = 5.0,
    stop: asyncio.Event | None = None,
    leave_kommuner: frozenset[str] = frozenset(),
) -> None:
    stop = stop or asyncio.Event()
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {ops_token}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as http:
        while not stop.is_set():
            try:
                n = await decide_ready_cases(client, http, rng, leave_kommuner=leave_kommuner)
                if n:
                    log.info("demo caseworkers decided cases", count=n)
            except (httpx.HTTPError, RuntimeError) as exc:
                log.warning("demo caseworkers could not reach the system", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_seconds)
