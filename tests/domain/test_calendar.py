from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.calendar import (
    Duration,
    Unit,
    add_months,
    add_to_date,
    add_working_days,
    deadline_day,
    deadline_instant,
    is_closed,
    is_working_day,
    local_date,
    roll_back,
    roll_forward,
    subtract_from_date,
)
from tests.domain.factories import d

days = st.dates(min_value=date(2015, 1, 1), max_value=date(2035, 12, 31))
instants = st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC))
calendar_durations = st.builds(
    Duration,
    quantity=st.integers(0, 40),
    unit=st.sampled_from([Unit.DAYS, Unit.WEEKS, Unit.MONTHS, Unit.WORKING_DAYS]),
)


@pytest.mark.parametrize(
    "closed",
    [
        "2021-04-01",  # Maundy Thursday
        "2021-04-02",  # Good Friday
        "2021-04-04",  # Easter Sunday
        "2021-04-05",  # Easter Monday
        "2021-05-13",  # Ascension Day
        "2021-05-24",  # Whit Monday
        "2021-06-05",  # Grundlovsdag (a Saturday in 2021)
        "2023-06-05",  # Grundlovsdag on a Monday: closed although not a public holiday
        "2021-12-24",  # Christmas Eve
        "2021-12-31",  # New Year's Eve
        "2022-01-01",
        "2021-12-25",
        "2021-12-26",
        "2023-05-05",  # store bededag, the last year it was a holiday
        "2021-01-09",  # a Saturday
        "2021-01-10",  # a Sunday
    ],
)
def test_closed_days(closed: str) -> None:
    assert is_closed(d(closed))
    assert not is_working_day(d(closed))


@pytest.mark.parametrize(
    "open_day",
    [
        "2024-04-26",  # store bededag abolished from 2024: an ordinary Friday
        "2021-03-31",  # the Wednesday before Easter
        "2021-04-06",  # the Tuesday after Easter Monday
        "2023-12-22",
        "2023-12-27",
        "2021-06-04",
    ],
)
def test_open_days(open_day: str) -> None:
    assert is_working_day(d(open_day))


def test_known_rolls_and_additions() -> None:
    assert roll_forward(d("2021-04-01")) == d("2021-04-06")  # over the whole Easter
    assert roll_forward(d("2021-12-24")) == d("2021-12-27")
    assert roll_forward(d("2021-12-31")) == d("2022-01-03")
    assert roll_back(d("2021-04-05")) == d("2021-03-31")
    assert add_working_days(d("2021-03-31"), 1) == d("2021-04-06")
    assert add_working_days(d("2021-04-06"), -1) == d("2021-03-31")
    assert add_months(d("2021-01-31"), 1) == d("2021-02-28")
    assert add_months(d("2024-01-31"), 1) == d("2024-02-29")
    assert add_months(d("2021-11-30"), 3) == d("2022-02-28")
    # 3 months from 24 September 2021 is Christmas Eve: the deadline rolls to Monday 27 December.
    assert deadline_day(datetime(2021, 9, 24, 10, tzinfo=UTC), Duration(quantity=3, unit=Unit.MONTHS)) == d(
        "2021-12-27"
    )
    # The start day does not count: 2 weeks from Monday 4 January is Monday 18 January.
    assert add_to_date(d("2021-01-04"), Duration(quantity=2, unit=Unit.WEEKS)) == d("2021-01-18")


def test_seconds_have_no_calendar_date() -> None:
    with pytest.raises(ValueError, match="seconds"):
        add_to_date(d("2021-01-04"), Duration(quantity=5, unit=Unit.SECONDS))


def test_the_deadline_instant_is_midnight_after_the_deadline_day_in_copenhagen() -> None:
    assert deadline_instant(d("2021-12-27")) == datetime(2021, 12, 27, 23, 0, tzinfo=UTC)
    assert deadline_instant(d("2021-06-30")) == datetime(2021, 6, 30, 22, 0, tzinfo=UTC)  # summer time


@given(instants, calendar_durations)
def test_deadline_day_is_never_closed(start: datetime, duration: Duration) -> None:
    day = deadline_day(start, duration)
    assert is_working_day(day)
    assert day >= local_date(start)
    # It is the first working day on or after the plain date arithmetic.
    plain = add_to_date(local_date(start), duration)
    assert all(is_closed(plain + timedelta(days=i)) for i in range((day - plain).days))


@given(days)
def test_roll_forward_is_idempotent_and_lands_on_a_working_day(day: date) -> None:
    rolled = roll_forward(day)
    assert is_working_day(rolled)
    assert roll_forward(rolled) == rolled
    assert rolled >= day
    assert (rolled - day).days <= 5  # the longest closed run is Easter: Thursday to Monday
    back = roll_back(day)
    assert is_working_day(back)
    assert roll_back(back) == back
    assert back <= day


@given(days, st.integers(-60, 60))
def test_add_working_days_lands_on_working_days(day: date, n: int) -> None:
    result = add_working_days(day, n)
    if n == 0:
        assert result == day
        return
    assert is_working_day(result)
    # Exactly |n| working days from the day after the start up to and including the result, in either direction.
    step = timedelta(days=1 if n > 0 else -1)
    passed = [day + step * i for i in range(1, abs((result - day).days) + 1)]
    assert passed[-1] == result
    assert sum(is_working_day(x) for x in passed) == abs(n)


@given(days, st.integers(1, 60))
def test_working_days_forward_then_back_returns_to_a_working_day(day: date, n: int) -> None:
    there = add_working_days(day, n)
    assert add_working_days(there, -n) == (roll_back(day) if is_closed(day) else day)


@given(days, calendar_durations.filter(lambda x: x.unit is not Unit.WORKING_DAYS))
def test_subtract_undoes_add_for_days_and_weeks(day: date, duration: Duration) -> None:
    later = add_to_date(day, duration)
    assert later >= day
    if duration.unit is not Unit.MONTHS:
        assert subtract_from_date(later, duration) == day
