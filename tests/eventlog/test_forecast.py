"""The forecast's estimator against a synthetic log of known behaviour, in a real PostgreSQL: it recovers the
parameters the log was made with, and as of a date it reads nothing stamped after it."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from domain.calendar import local_date
from domain.commands import (
    CloseCase,
    MakeDecision,
    MarkDelivered,
    NotifyCitizen,
    RecordPreScreening,
    RequestOplysning,
    ReturnTask,
    SubmitPart,
)
from domain.events import Channel, Event, Outcome, RequestReason, Verdict
from domain.forecast import forecast
from eventlog import figures
from eventlog.forecast import ForecastStore
from eventlog.store import EventStore
from eventlog.timeline import case_timeline
from tests.eventlog.builders import LogCase

START = datetime(2021, 1, 4, 9, 0, tzinfo=UTC)
AS_OF = START + timedelta(weeks=16)
END = START + timedelta(weeks=20)
# The behaviour the log is made with: what the estimator must find again.
INTAKE_PER_WEEK = 40
ANSWER_RATE = {"101": 0.5, "329": 0.15}  # per week: a kommune closes (answers or returns) a task at this rate
RETURN_SHARE = 0.1
CASEWORKER_RATE = 1.0  # per week, on a case ready for decision
SUPPLEMENTARY_SHARE = 0.2
OTHER = {"101": "329", "329": "101"}


@dataclass
class Synthetic:
    cases: list[LogCase]


def _weeks(rng: random.Random, rate: float) -> timedelta:
    return timedelta(weeks=rng.expovariate(rate))


def synthetic_log(seed: int = 7) -> Synthetic:
    """Cases arriving evenly, 40 a week for 20 weeks, alternating between a fast and a slow kommune; every time
    drawn from the exponential distribution of the rate above, every event made by the domain (decide + evolve)."""
    rng = random.Random(seed)
    cases: list[LogCase] = []
    n_cases = INTAKE_PER_WEEK * 20
    for n in range(n_cases):
        t = START + timedelta(weeks=n / INTAKE_PER_WEEK)
        kommune = "101" if n % 2 == 0 else "329"
        case = LogCase(f"case-fc-{n:04d}", now=t)
        case.receive(kommune_kode=kommune, received_on=local_date(t).isoformat())
        case.do(RecordPreScreening(verdict=Verdict.DISPATCH), at=t + timedelta(minutes=1))
        at, reason, round_no = t + timedelta(minutes=2), RequestReason.INITIAL, 0
        while at < END:
            round_no += 1
            task_id = f"{case.case_id}-t{round_no}"
            case.do(RequestOplysning(task_id=task_id, reason=reason, policy_id="standard-2021.1"), at=at)
            case.do(MarkDelivered(task_id=task_id, channel=Channel.PUSH), at=at + timedelta(minutes=1))
            here = case.state.kommune_kode
            assert here is not None
            at = at + timedelta(minutes=2) + _weeks(rng, ANSWER_RATE[here])
            if at >= END:
                break
            if rng.random() < RETURN_SHARE:
                case.do(ReturnTask(task_id=task_id, kommune_kode=here, correct_kommune_kode=OTHER[here]), at=at)
                reason = RequestReason.REROUTED
                at += timedelta(minutes=1)
                continue
            case.do(SubmitPart(task_id=task_id, kommune_kode=here, submission_id=f"s{round_no}", final=True), at=at)
            at += _weeks(rng, CASEWORKER_RATE)
            if at >= END:
                break
            if rng.random() < SUPPLEMENTARY_SHARE:
                reason = RequestReason.SUPPLEMENTARY
                continue
            case.do(MakeDecision(outcome=Outcome.GRANTED, decided_by="cw-1"), at=at)
            case.do(NotifyCitizen(message_id="m1"), at=at + timedelta(minutes=1))
            case.do(CloseCase(), at=at + timedelta(minutes=2))
            break
        cases.append(case)
    return Synthetic(cases)


def _until(events: list[Event], t: datetime) -> list[Event]:
    return [e for e in events if e.occurred_at <= t]


async def test_the_estimator_finds_the_logs_behaviour_and_reads_nothing_after_the_date(
    pool: asyncpg.Pool, store: EventStore
) -> None:
    log = synthetic_log()
    # First only what had happened by AS_OF...
    for case in log.cases:
        known = _until(case.events, AS_OF)
        if known:
            await store.append(case.case_id, 0, known)
    forecasts = ForecastStore(pool)
    before = await forecasts.read(AS_OF)

    p = before.parameters
    assert p.intake_per_week == pytest.approx(INTAKE_PER_WEEK, abs=1)
    assert p.kommune_shares == pytest.approx({"101": 0.5, "329": 0.5}, abs=0.02)
    assert p.return_share == pytest.approx(RETURN_SHARE, abs=0.04)
    assert p.supplementary_share == pytest.approx(SUPPLEMENTARY_SHARE, abs=0.07)
    assert p.caseworker_weekly == pytest.approx(1 - math.exp(-CASEWORKER_RATE), abs=0.08)
    assert p.formal_rejection_share == 0
    for kommune, rate in ANSWER_RATE.items():
        median = p.answer[kommune].median_weeks()
        assert median == pytest.approx(math.log(2) / rate, rel=0.2), kommune
    # The slow kommune is slow at every age it has data for, not only on average (the hazard is by age).
    assert all(p.answer["329"].at(k) < p.answer["101"].at(k) for k in range(8))

    # The forecast starts where the report's definitions stand at AS_OF.
    timelines = [tl for c in log.cases if (tl := case_timeline(_until(c.events, AS_OF))) is not None]
    waiting = len(figures.waiting_on_kommune(timelines, AS_OF + timedelta(microseconds=1)))
    assert sum(1 for c in before.snapshot.cases if c.task_kommune is not None) == waiting
    assert before.last_event_at is not None and before.last_event_at <= AS_OF
    # Sixteen weeks of history: no caution. Two weeks in, the rates come from two weeks, and the forecast says so.
    assert before.caution() is None
    early = await forecasts.read(START + timedelta(weeks=2))
    assert early.first_event_at is not None and early.first_event_at >= START
    assert "covers only 14.0 days" in (early.caution() or "")
    assert "no events" in ((await forecasts.read(START - timedelta(days=1))).caution() or "")

    # ...then everything after it: the answers, decisions and new cases of the next four weeks.
    for case in log.cases:
        known = _until(case.events, AS_OF)
        later = case.events[len(known) :]
        if later:
            await store.append(case.case_id, len(known), later)
    after = await forecasts.read(AS_OF)
    assert after == before
    assert await forecasts.last_event_at() is not None
    assert (await forecasts.last_event_at() or AS_OF) > AS_OF

    # The same input and seed give the same forecast, from a log read twice.
    to = AS_OF + timedelta(weeks=4)
    one = forecast(before.snapshot, before.parameters, to, runs=200, seed=3)
    two = forecast(after.snapshot, after.parameters, to, runs=200, seed=3)
    assert one.as_dict() == two.as_dict()
