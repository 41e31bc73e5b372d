from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.application import CaseType
from domain.calendar import add_months
from domain.pension import (
    Span,
    YearsMonths,
    add_age,
    earliest_application_date,
    months_between,
    pension_age,
    pension_date,
    span_between,
    subtract_age,
    time_to_pension,
    window_opens,
)
from tests.domain.factories import d

SP = CaseType.SENIORPENSION
SFP = CaseType.SENIORFOERTIDSPENSION


@pytest.mark.parametrize(
    ("born", "age", "reached"),
    [
        ("1953-12-31", YearsMonths(65), "2018-12-31"),
        ("1954-01-01", YearsMonths(65, 6), "2019-07-01"),
        ("1954-06-30", YearsMonths(65, 6), "2019-12-30"),
        ("1954-07-01", YearsMonths(66), "2020-07-01"),
        ("1954-12-31", YearsMonths(66), "2020-12-31"),
        ("1955-01-01", YearsMonths(66, 6), "2021-07-01"),
        ("1955-06-30", YearsMonths(66, 6), "2021-12-30"),
        ("1955-07-01", YearsMonths(67), "2022-07-01"),
        ("1962-12-31", YearsMonths(67), "2029-12-31"),
        ("1963-01-01", YearsMonths(68), "2031-01-01"),
        ("1966-12-31", YearsMonths(68), "2034-12-31"),
        ("1967-01-01", YearsMonths(69), "2036-01-01"),
        ("1970-12-31", YearsMonths(69), "2039-12-31"),
        ("1971-01-01", YearsMonths(70), "2041-01-01"),
        ("1985-05-17", YearsMonths(70), "2055-05-17"),
    ],
)
def test_pension_age_table_and_date(born: str, age: YearsMonths, reached: str) -> None:
    assert pension_age(d(born)) == age
    assert pension_date(d(born)) == d(reached)


def test_half_year_ages_print_as_halves() -> None:
    assert str(YearsMonths(65, 6)) == "65½"
    assert str(YearsMonths(67)) == "67"
    assert str(YearsMonths(1, 2)) == "1 years 2 months"


@pytest.mark.parametrize(
    ("born", "reached"),
    [
        # 65½ from 31 March: 30 September is the last day of a short month, so the age is complete on 1 October.
        ("1954-03-31", "2019-10-01"),
        # Born 29 February: in a year without one, the age is reached on 1 March; in a leap year on 29 February.
        ("1956-02-29", "2023-03-01"),
        ("1964-02-29", "2032-02-29"),
        ("1955-08-31", "2022-08-31"),
    ],
)
def test_anniversaries_in_short_months(born: str, reached: str) -> None:
    assert pension_date(d(born)) == d(reached)


def test_seniorpension_window_and_earliest_application() -> None:
    born = d("1957-06-10")  # 67 on 10 June 2024
    assert window_opens(born, SP) == d("2018-06-10")  # 6 years before (§ 26 a, stk. 1)
    assert earliest_application_date(born, SP) == d("2017-12-10")  # 6 months before that (§ 26 b)


def test_seniorfoertidspension_window_is_five_years_without_early_application() -> None:
    born = d("1955-01-01")  # 66½ on 1 July 2021
    assert window_opens(born, SFP) == d("2016-07-01")
    assert earliest_application_date(born, SFP) == d("2016-07-01")


def test_window_opening_from_a_short_month() -> None:
    # Pension on 31 August 2022 (born 31 Aug 1955, 67): 6 years earlier is 31 August 2016; 6 months before that
    # there is no 31 February, so the earliest day with "at most 6½ years left" is 1 March.
    born = d("1955-08-31")
    assert window_opens(born, SP) == d("2016-08-31")
    assert earliest_application_date(born, SP) == d("2016-03-01")


def test_time_to_pension() -> None:
    born = d("1957-06-10")
    assert time_to_pension(born, d("2021-03-01")) == Span(3, 3, 9)
    assert time_to_pension(born, d("2024-06-10")) == Span(0, 0, 0)
    assert time_to_pension(born, d("2024-06-11")) == Span(0, 0, 1, negative=True)
    assert str(time_to_pension(born, d("2024-06-11"))) == "-0 years, 0 months, 1 days"


def test_months_between() -> None:
    assert months_between(d("2020-01-31"), d("2020-02-28")) == 0
    assert months_between(d("2020-01-31"), d("2020-02-29")) == 1  # the month's last day completes the month
    assert months_between(d("2021-01-15"), d("2021-07-14")) == 5
    assert months_between(d("2021-01-15"), d("2021-07-15")) == 6
    assert months_between(d("2021-07-15"), d("2021-01-15")) == 0


dates = st.dates(min_value=date(1930, 1, 1), max_value=date(2000, 12, 31))
ages = st.builds(YearsMonths, st.integers(0, 80), st.integers(0, 11))


@given(dates, dates)
def test_pension_age_never_falls_for_later_births(a: date, b: date) -> None:
    early, late = sorted((a, b))
    assert pension_age(early).total_months <= pension_age(late).total_months
    assert pension_date(early) <= pension_date(late)


@given(dates, ages)
def test_add_age_lands_on_or_just_after_the_anniversary(born: date, age: YearsMonths) -> None:
    reached = add_age(born, age)
    clipped = add_months(born, age.total_months)
    assert reached == clipped or (reached == clipped + timedelta(days=1) and reached.day == 1)


@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2060, 12, 31)), ages)
def test_subtract_age_is_the_first_day_with_at_most_that_long_left(day: date, age: YearsMonths) -> None:
    first = subtract_age(day, age)
    assert add_months(first, age.total_months) >= day
    assert add_months(first - timedelta(days=1), age.total_months) < day


@given(dates, st.dates(min_value=date(1930, 1, 1), max_value=date(2060, 12, 31)))
def test_span_between_adds_back_up(start: date, end: date) -> None:
    span = span_between(start, end)
    lo, hi = (start, end) if not span.negative else (end, start)
    assert span.negative == (end < start)
    assert 0 <= span.months < 12
    assert span.days >= 0
    assert add_months(lo, span.years * 12 + span.months) + timedelta(days=span.days) == hi
