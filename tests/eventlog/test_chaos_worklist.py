"""The chaos soak's caseworker worklist (bench/chaos.py): the kommune questions it finds open in the event log are
exactly those asked by a kommune, unanswered, on a task still open, and asked long enough ago."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from bench.chaos import OPEN_KOMMUNE_QUESTIONS
from domain.commands import AnswerQuestion, AskQuestion, SubmitPart
from domain.events import Party
from eventlog.store import EventStore
from tests.eventlog.builders import LogCase, delivered_case

T0 = datetime(2021, 1, 4, 9, 0, tzinfo=UTC)


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
    waiting = delivered_case("c-wait", T0)
    _ask(waiting, "q-open")
    _ask(waiting, "q-answered")
    waiting.do(AnswerQuestion(task_id="c-wait-t1", question_id="q-answered", text="Ja."), at=T0 + timedelta(days=2))
    ours = delivered_case("c-ours", T0)
    _ask(ours, "q-caseworker", by_kommune=False)
    done = delivered_case("c-done", T0)
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
