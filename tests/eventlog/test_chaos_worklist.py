"""The chaos soak's caseworker worklist (bench/chaos.py): the kommune questions it finds open in the event log are
exactly those asked by a kommune, unanswered, on a task still open, and asked long enough ago."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from bench.chaos import OPEN_KOMMUNE_QUESTIONS
from domain.commands import AnswerQuestion, AskQuestion, MarkDelivered, RecordPreScreening, RequestOplysning, SubmitPart
from domain.events import Channel, Party, RequestReason, Verdict
from eventlog.store import EventStore
from tests.eventlog.builders import LogCase

T0 = datetime(2021, 1, 4, 9, 0, tzinfo=UTC)


def _case_with_task(case_id: str) -> LogCase:
    case = LogCase(case_id, now=T0)
    case.receive()
    case.do(RecordPreScreening(verdict=Verdict.DISPATCH, details={"note": "ok"}), at=T0 + timedelta(minutes=5))
    case.do(
        RequestOplysning(task_id=f"{case_id}-t1", reason=RequestReason.INITIAL, policy_id="standard-2021.1"),
        at=T0 + timedelta(minutes=6),
    )
    case.do(MarkDelivered(task_id=f"{case_id}-t1", channel=Channel.PUSH), at=T0 + timedelta(minutes=7))
    return case


def _ask(case: LogCase, question_id: str, by_kommune: bool = True) -> None:
    case.do(
        AskQuestion(
            task_id=f"{case.case_id}-t1",
            question_id=question_id,
            asked_by=Party.KOMMUNE if by_kommune else Party.CASEWORKER,
            kommune_kode="329" if by_kommune else None,
            text="Må vi indhente journaler?",
        ),
        at=T0 + timedelta(days=1),
    )


async def _open(pool: asyncpg.Pool, after: float = 0.0) -> set[tuple[str, str]]:
    rows = await pool.fetch(OPEN_KOMMUNE_QUESTIONS, after)
    return {(r["task_id"], r["question_id"]) for r in rows}


async def test_open_kommune_questions_on_open_tasks_only(store: EventStore, pool: asyncpg.Pool) -> None:
    waiting = _case_with_task("c-wait")
    _ask(waiting, "q-open")
    _ask(waiting, "q-answered")
    waiting.do(AnswerQuestion(task_id="c-wait-t1", question_id="q-answered", text="Ja."), at=T0 + timedelta(days=2))
    ours = _case_with_task("c-ours")
    _ask(ours, "q-caseworker", by_kommune=False)
    done = _case_with_task("c-done")
    _ask(done, "q-done")
    done.do(AnswerQuestion(task_id="c-done-t1", question_id="q-done", text="Ja."), at=T0 + timedelta(days=2))
    done.do(
        SubmitPart(task_id="c-done-t1", kommune_kode="329", submission_id="s1", document_ids=("d1",), final=True),
        at=T0 + timedelta(days=3),
    )
    for case in (waiting, ours, done):
        await store.append(case.case_id, 0, case.events)

    assert await _open(pool) == {("c-wait-t1", "q-open")}
    # Only questions recorded a while ago: these were recorded just now.
    assert await _open(pool, after=3600.0) == set()
