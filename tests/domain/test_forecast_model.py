"""The forecast's estimator finds a known seasonal intake and a regime change in a synthetic log (received cases'
states, as the log folds them; no database), and drawn rate uncertainty keeps "same seed, same forecast"."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from domain.calendar import is_closed, start_of_day
from domain.forecast import estimate, forecast
from domain.state import CaseState, CaseStatus
from tests.domain.test_forecast import TO, params, snap

START = datetime(2021, 1, 1, tzinfo=UTC)
JULY = 0.5  # July brings half the applications of another month
CLOSED = 0.3  # a weekend or holiday a third of a working day's


def received(days: int, rate: float, factor: object, seed: int = 3) -> list[CaseState]:
    """Applications arriving day by day at `rate` a working day times `factor(day)`, each received by the domain."""
    rng = random.Random(seed)
    states = []
    for d in range(days):
        day = date(2021, 1, 1) + timedelta(days=d)
        mean = rate * factor(day)  # type: ignore[operator]
        for n in range(_poisson(rng, mean)):
            at = start_of_day(day) + timedelta(hours=9, minutes=n)
            states.append(
                CaseState(
                    case_id=f"case-season-{d:03d}-{n:02d}",
                    status=CaseStatus.RECEIVED,
                    kommune_kode="101",
                    received_on=day,
                    received_at=at,
                    last_event_at=at,
                )
            )
    return states


def _poisson(rng: random.Random, lam: float) -> int:
    k, t = 0, rng.expovariate(lam) if lam > 0 else 2.0
    while t < 1.0:
        k, t = k + 1, t + rng.expovariate(lam)
    return k


def seasonal(day: date) -> float:
    return (JULY if day.month == 7 else 1.0) * (CLOSED if is_closed(day) else 1.0)


def test_the_estimator_finds_a_seasonal_intake_once_the_log_holds_a_year() -> None:
    states = received(400, 12.0, seasonal)
    as_of = start_of_day(date(2022, 2, 5))
    p = estimate(states, as_of)
    months = p.intake_month_factors
    assert len(months) == 12
    assert abs(months[6] / months[2] - JULY) < 0.1  # July against March
    assert abs(p.intake_closed_day_factor - CLOSED) < 0.05
    # Carried forward: a week in July expects about half a week in March; Easter week's fewer than in March.
    july = p.expected_intake(start_of_day(date(2022, 7, 4)), start_of_day(date(2022, 7, 11)))
    march = p.expected_intake(start_of_day(date(2022, 3, 7)), start_of_day(date(2022, 3, 14)))
    easter = p.expected_intake(start_of_day(date(2022, 4, 11)), start_of_day(date(2022, 4, 18)))
    assert abs(july / march - JULY) < 0.1
    assert easter < 0.85 * march  # Maundy Thursday and Good Friday closed
    # Under a year, no seasonality: the recent weeks' rate is carried as it is.
    short = estimate(states, start_of_day(date(2021, 11, 1)))
    assert short.intake_month_factors == ()
    assert short.expected_intake(as_of, as_of + timedelta(weeks=1)) == short.intake_per_week


def test_the_estimator_follows_an_intake_regime_and_reports_the_drift() -> None:
    # Steady for 20 weeks, then twice the intake for the last 10: the recent rate follows, and the drift shows.
    steady = received(140, 10.0, lambda day: 1.0)
    doubled = [
        s
        for s in received(210, 20.0, lambda day: 1.0, seed=4)
        if s.received_at and s.received_at >= START + timedelta(days=140)
    ]
    as_of = START + timedelta(days=210)
    p = estimate([*steady, *doubled], as_of)
    assert abs(p.intake_per_week - 140) < 15
    assert p.intake_drift > 0.15
    assert estimate(steady, START + timedelta(days=140)).intake_drift < 0.1


def test_rate_uncertainty_widens_the_intervals_and_the_same_seed_still_gives_the_same_forecast() -> None:
    drifting = params(intake_drift=0.3, speed_drift=0.3)
    one = forecast(snap(), drifting, TO, runs=100, seed=5)
    assert forecast(snap(), drifting, TO, runs=100, seed=5).as_dict() == one.as_dict()
    still = forecast(snap(), params(), TO, runs=100, seed=5)
    width = one.total.open_cases.p90 - one.total.open_cases.p10
    assert width > still.total.open_cases.p90 - still.total.open_cases.p10
