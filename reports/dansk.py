"""Danish formatting for the report, the same in text, tables, charts and CSV files.

Written out by hand rather than through `locale`: the machine's locale settings must not change a report's bytes.
"""

from __future__ import annotations

from datetime import date, datetime

from domain.calendar import COPENHAGEN

NO_DATA = "–"
NBSP = "\u00a0"  # keeps "12,5 %" and "3.869 dage" on one line

MONTHS = (
    "januar",
    "februar",
    "marts",
    "april",
    "maj",
    "juni",
    "juli",
    "august",
    "september",
    "oktober",
    "november",
    "december",
)
WEEKDAYS = ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag")


def number(v: float | None, decimals: int = 0, *, thousands: bool = True) -> str:
    """3869 → "3.869", 12.25 → "12,3" (one decimal), None → "–"."""
    if v is None:
        return NO_DATA
    text = f"{v:,.{decimals}f}" if thousands else f"{v:.{decimals}f}"
    # Python writes 3,869.5: swap the separators.
    text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return "−" + text[1:] if text.startswith("-") else text


def days(v: float | None) -> str:
    return number(v, 1)


def percent(v: float | None, decimals: int = 1) -> str:
    return NO_DATA if v is None else f"{number(v, decimals)}{NBSP}%"


def signed(v: int | None) -> str:
    """A change: "+1.234", "−56", "0"."""
    if v is None:
        return NO_DATA
    return ("+" if v > 0 else "") + number(v)


def yes_no(v: bool) -> str:
    return "ja" if v else "nej"


def day(d: date) -> str:
    """4. januar 2021"""
    return f"{d.day}. {MONTHS[d.month - 1]} {d.year}"


def period(first: date, last: date | datetime) -> str:
    """1. januar – 31. marts 2021, or up to a moment: 1. april – 9. april 2021 kl. 00.57 (the year once when both
    ends share it)."""
    end = moment(last) if isinstance(last, datetime) else day(last)
    last_day = last.astimezone(COPENHAGEN).date() if isinstance(last, datetime) else last
    if first.year == last_day.year:
        return f"{first.day}. {MONTHS[first.month - 1]} – {end}"
    return f"{day(first)} – {end}"


def numeric_range(first: date, last: date) -> str:
    """29.3.–4.4. (short enough for a chart's axis)"""
    if first == last:
        return f"{first.day}.{first.month}."
    return f"{first.day}.{first.month}.–{last.day}.{last.month}."


def short_day(d: date) -> str:
    """4. jan."""
    return f"{d.day}. {MONTHS[d.month - 1][:3]}."


def day_range(first: date, last: date) -> str:
    """4.–10. jan., 29. mar.–4. apr."""
    if first.month == last.month:
        return f"{first.day}.–{short_day(last)}"
    return f"{short_day(first)}–{short_day(last)}"


def moment(t: datetime) -> str:
    """Danish time: "9. april 2021 kl. 00.57"."""
    local = t.astimezone(COPENHAGEN)
    return f"{day(local.date())} kl.{NBSP}{local.hour:02d}.{local.minute:02d}"
