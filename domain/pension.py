"""Folkepensionsalder and the age windows of seniorpension and seniorførtidspension (DOMAIN.md).

Ages are exact years and months (65½ = 65 years 6 months). A person reaches an age on the anniversary of the birth
date; when that day does not exist in the target month (born 29 February, or 31 March + 6 months), the age is
reached on the first day of the following month: the anniversary is only complete once the last day of the shorter
month has passed. This is the conservative reading: a window never opens a day early.
"""

from __future__ import annotations

import calendar as _cal
from datetime import date, timedelta
from typing import NamedTuple

from domain.application import CaseType
from domain.calendar import add_months


class YearsMonths(NamedTuple):
    years: int
    months: int = 0

    @property
    def total_months(self) -> int:
        return self.years * 12 + self.months

    def __str__(self) -> str:
        if self.months == 0:
            return str(self.years)
        if self.months == 6:
            return f"{self.years}½"
        return f"{self.years} years {self.months} months"


class Span(NamedTuple):
    """A calendar span between two dates in whole years, months and days (negative when the end is before)."""

    years: int
    months: int
    days: int
    negative: bool = False

    def __str__(self) -> str:
        parts = [f"{self.years} years", f"{self.months} months", f"{self.days} days"]
        return ("-" if self.negative else "") + ", ".join(parts)


# lov om social pension § 1 a (as amended 2025): (first birth date of the band, pension age). Ordered by date.
PENSION_AGE_BANDS: tuple[tuple[date, YearsMonths], ...] = (
    (date(1954, 1, 1), YearsMonths(65, 6)),
    (date(1954, 7, 1), YearsMonths(66)),
    (date(1955, 1, 1), YearsMonths(66, 6)),
    (date(1955, 7, 1), YearsMonths(67)),
    (date(1963, 1, 1), YearsMonths(68)),
    (date(1967, 1, 1), YearsMonths(69)),
    (date(1971, 1, 1), YearsMonths(70)),
)
BEFORE_1954_AGE = YearsMonths(65)

# How long before folkepensionsalder the benefit may run (the entitlement window).
WINDOW_BEFORE_PENSION: dict[CaseType, YearsMonths] = {
    CaseType.SENIORPENSION: YearsMonths(6),  # lov om social pension § 26 a, stk. 1
    CaseType.SENIORFOERTIDSPENSION: YearsMonths(5),  # the caseworkers' guide: at most 5 years
}

# How long before the window opens an application may be filed.
APPLY_BEFORE_WINDOW: dict[CaseType, YearsMonths] = {
    CaseType.SENIORPENSION: YearsMonths(0, 6),  # lov om social pension § 26 b
    # The guide and the old rules only say "at most 5 years"; no early application is documented for them.
    CaseType.SENIORFOERTIDSPENSION: YearsMonths(0, 0),
}


def _shift_months(day: date, months: int) -> date:
    """Same day-of-month `months` later (or earlier); a day the month lacks becomes the next month's first."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    last = _cal.monthrange(year, month)[1]
    if day.day > last:
        return date(year, month, last) + timedelta(days=1)
    return date(year, month, day.day)


def add_age(birth: date, age: YearsMonths) -> date:
    """The day a person born on `birth` reaches `age` (see the module docstring for short months)."""
    return _shift_months(birth, age.total_months)


def subtract_age(day: date, age: YearsMonths) -> date:
    """The first day from which at most `age` is left until `day`.

    That is the same day-of-month `age` earlier; when that month lacks the day (31 August less 6 months), the next
    month's first: on the month's last day the time left is still a little more than `age`.
    """
    return _shift_months(day, -age.total_months)


def pension_age(birth: date) -> YearsMonths:
    age = BEFORE_1954_AGE
    for first_born, band_age in PENSION_AGE_BANDS:
        if birth < first_born:
            break
        age = band_age
    return age


def pension_date(birth: date) -> date:
    """The day folkepensionsalder is reached."""
    return add_age(birth, pension_age(birth))


def window_opens(birth: date, case_type: CaseType) -> date:
    """The first day with at most 5 or 6 years to folkepensionsalder: the benefit may run from here."""
    return subtract_age(pension_date(birth), WINDOW_BEFORE_PENSION[case_type])


def earliest_application_date(birth: date, case_type: CaseType) -> date:
    return subtract_age(window_opens(birth, case_type), APPLY_BEFORE_WINDOW[case_type])


def span_between(start: date, end: date) -> Span:
    """Whole years, months and days from `start` to `end`."""
    if end < start:
        years, months, days, _ = span_between(end, start)
        return Span(years, months, days, negative=True)
    months = (end.year - start.year) * 12 + (end.month - start.month)
    if add_months(start, months) > end:
        months -= 1
    anchor = add_months(start, months)
    return Span(months // 12, months % 12, (end - anchor).days)


def time_to_pension(birth: date, on: date) -> Span:
    """Time left from `on` until folkepensionsalder (negative once it has been reached)."""
    return span_between(on, pension_date(birth))


def months_between(start: date, end: date) -> int:
    """Whole months from `start` to `end` (0 when `end` is before `start`)."""
    if end <= start:
        return 0
    span = span_between(start, end)
    return span.years * 12 + span.months
