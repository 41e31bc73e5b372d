"""Office calendar and deadline arithmetic (DOMAIN.md "Time").

Closed days: Danish public holidays from `holidays` (store bededag only up to 2023, as the package has it), plus
Grundlovsdag (5 June), 24 and 31 December, Saturdays and Sundays. Deadlines run in the unit the rule states; the
start day does not count; a deadline ending on a closed day moves to the next working day. A deadline day is open
until the start of the next day in Copenhagen.
"""

from __future__ import annotations

import calendar as _cal
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import cache
from zoneinfo import ZoneInfo

import holidays
from pydantic import BaseModel, ConfigDict, Field

COPENHAGEN = ZoneInfo("Europe/Copenhagen")


class Unit(StrEnum):
    SECONDS = "seconds"  # only for the demo policy: no calendar, no rolling
    DAYS = "days"
    WEEKS = "weeks"
    MONTHS = "months"
    WORKING_DAYS = "working_days"


class Duration(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    quantity: int = Field(ge=0, le=10_000)
    unit: Unit

    def __str__(self) -> str:
        return f"{self.quantity} {self.unit.value}"


@cache
def _public_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("DK", years=year).keys())


def is_closed(day: date) -> bool:
    if day.weekday() >= 5:
        return True
    if (day.month, day.day) in {(6, 5), (12, 24), (12, 31)}:
        return True
    return day in _public_holidays(day.year)


def is_working_day(day: date) -> bool:
    return not is_closed(day)


def roll_forward(day: date) -> date:
    while is_closed(day):
        day += timedelta(days=1)
    return day


def roll_back(day: date) -> date:
    while is_closed(day):
        day -= timedelta(days=1)
    return day


def add_months(day: date, months: int) -> date:
    """Same day-of-month `months` later; the 31st becomes the month's last day when the month is shorter."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, _cal.monthrange(year, month)[1]))


def add_working_days(day: date, n: int) -> date:
    step = 1 if n >= 0 else -1
    remaining = abs(n)
    while remaining:
        day += timedelta(days=step)
        if is_working_day(day):
            remaining -= 1
    return day


def add_to_date(day: date, duration: Duration) -> date:
    """The day `duration` after `day` (the start day does not count). No rolling."""
    match duration.unit:
        case Unit.DAYS:
            return day + timedelta(days=duration.quantity)
        case Unit.WEEKS:
            return day + timedelta(weeks=duration.quantity)
        case Unit.MONTHS:
            return add_months(day, duration.quantity)
        case Unit.WORKING_DAYS:
            return add_working_days(day, duration.quantity)
        case Unit.SECONDS:
            raise ValueError("a duration in seconds has no calendar date")


def subtract_from_date(day: date, duration: Duration) -> date:
    match duration.unit:
        case Unit.DAYS:
            return day - timedelta(days=duration.quantity)
        case Unit.WEEKS:
            return day - timedelta(weeks=duration.quantity)
        case Unit.MONTHS:
            return add_months(day, -duration.quantity)
        case Unit.WORKING_DAYS:
            return add_working_days(day, -duration.quantity)
        case Unit.SECONDS:
            raise ValueError("a duration in seconds has no calendar date")


def local_date(instant: datetime) -> date:
    return instant.astimezone(COPENHAGEN).date()


def start_of_day(day: date) -> datetime:
    """Midnight at the start of `day` in Copenhagen, as a UTC instant."""
    return datetime.combine(day, time(0, 0), tzinfo=COPENHAGEN).astimezone(UTC)


def at_local_time(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour, 0), tzinfo=COPENHAGEN).astimezone(UTC)


def deadline_day(start: datetime, duration: Duration) -> date:
    """The last day of a deadline of `duration` counted from `start`, rolled to a working day."""
    return roll_forward(add_to_date(local_date(start), duration))


def deadline_instant(day: date) -> datetime:
    """A deadline day is open until its end: the deadline instant is the start of the next day."""
    return start_of_day(day + timedelta(days=1))
