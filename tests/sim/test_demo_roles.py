"""What the demo leaves to people (`sim.demo`): 147's share of the load, its late answers, 101 left undecided."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, timedelta

import pytest

from sim.behaviour import DEFAULT_DOCUMENTS, SimTask, SubmitPartAction, late_answer
from sim.caseworker import ready_cases_query
from sim.load import ApplicationFactory
from sim.population import PopulationSampler

DAY = date(2026, 3, 2)


def test_a_fixed_share_goes_to_the_kommune_a_person_plays() -> None:
    sampler = PopulationSampler(shares={"147": 0.1})
    drawn = Counter(sampler.sample(random.Random(i)) for i in range(5000))
    # The fixed share, plus 147's population share of the other nine in ten (about 1.8 %).
    assert 0.10 < drawn["147"] / 5000 < 0.135
    assert len(drawn) > 50  # the rest still spread over the kommuner by population


def test_without_shares_the_seeded_load_is_what_it_always_was() -> None:
    plain = ApplicationFactory(1)
    explicit = ApplicationFactory(1, PopulationSampler(shares={}))
    for n in range(1, 30):
        assert plain.generate(n, DAY).application == explicit.generate(n, DAY).application


@pytest.mark.parametrize(
    ("shares", "message"),
    [({"999": 0.1}, "not one of the kommuner"), ({"147": 1.5}, "between 0 and 1"), ({"147": 0.6, "101": 0.5}, "room")],
)
def test_impossible_shares_are_refused(shares: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PopulationSampler(shares=shares)


def test_a_late_kommune_answers_once_long_after_the_deadline() -> None:
    task = SimTask(task_id="t-1", case_id="c-1", kommune_kode="147", requested_documents=("LÆ 145",))
    (planned,) = late_answer(task, timedelta(days=365))
    assert planned.after == timedelta(days=365)
    assert planned.action == SubmitPartAction(documents=("LÆ 145",), final=True)
    bare = SimTask(task_id="t-2", case_id="c-2", kommune_kode="147")
    assert late_answer(bare, timedelta(days=1))[0].action == SubmitPartAction(documents=DEFAULT_DOCUMENTS, final=True)
    assert late_answer(SimTask(task_id="t-3", case_id="c-3", kommune_kode="147", kind="reminder"), timedelta(1)) == []


def test_the_demo_caseworkers_leave_the_kommuner_they_are_told_to() -> None:
    query = ready_cases_query(frozenset({"101"}))
    assert query.endswith(' AND KommuneKode!="101"')
    assert 'CaseStatus="ready_for_decision"' in query
    with pytest.raises(ValueError, match="not a kommune code"):
        ready_cases_query(frozenset({'101" OR KommuneKode!="x'}))
