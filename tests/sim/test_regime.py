"""`sagsflow simulate --regime`: the knob parses, changes the simulated kommune's answer times from its date (and
no other kommune's), scales intake over its span, and a bad one is refused with the form that works."""

from __future__ import annotations

import statistics
from datetime import date

import pytest

from sim.behaviour import (
    SimTask,
    completion_after,
    intake_factor,
    parse_regime,
    plan_kommune_response,
    profile_on,
    rng_for,
)
from sim.profiles import default_profiles
from sim.simulation import SimulationOptions

SLOWER = parse_regime("2021-07-01:kommune=329:speed=0.5")
BUSY = parse_regime("2021-10-01..2021-12-31:intake=1.3")


def median_answer_days(kode: str, day: date) -> float:
    profile = profile_on(default_profiles()[kode], (SLOWER, BUSY), day)
    days = []
    for n in range(300):
        task = SimTask(task_id=f"t{n}", case_id=f"c{n}", kommune_kode=kode)
        after = completion_after(plan_kommune_response(task, profile, rng_for(1, "plan", str(n))))
        if after is not None:
            days.append(after.total_seconds() / 86400)
    return statistics.median(days)


def test_a_speed_regime_slows_the_kommunes_answers_from_its_date_and_no_one_elses() -> None:
    before, after = median_answer_days("329", date(2021, 6, 30)), median_answer_days("329", date(2021, 7, 1))
    assert after == pytest.approx(2 * before, rel=0.02)  # the same draws, twice the time
    assert median_answer_days("101", date(2021, 7, 1)) == median_answer_days("101", date(2021, 6, 30))


def test_an_intake_regime_covers_its_span_both_days_included() -> None:
    assert [intake_factor((SLOWER, BUSY), d) for d in (date(2021, 9, 30), date(2021, 10, 1))] == [1.0, 1.3]
    assert [intake_factor((BUSY,), d) for d in (date(2021, 12, 31), date(2022, 1, 1))] == [1.3, 1.0]
    assert SLOWER.label() == "2021-07-01:kommune=329:speed=0.5" and BUSY.label() == "2021-10-01..2021-12-31:intake=1.3"


def test_bad_regimes_are_refused() -> None:
    for text in (
        "2021-07-01",
        "2021-07-01:speed=0.5",
        "july:intake=2",
        "2021-07-01:intake=0",
        "2021-07-01:x=1",
        "2021-09-01..2021-08-01:intake=2",
    ):
        with pytest.raises(ValueError, match="regime"):
            parse_regime(text)
    with pytest.raises(ValueError, match="not a kommune"):
        SimulationOptions(regimes=(parse_regime("2021-07-01:kommune=999:speed=2"),))
