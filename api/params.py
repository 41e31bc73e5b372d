"""Path and query parameter types the routes share, so each rule is written once and the OpenAPI schema shows it.

- `CaseId` / `TaskId`: a uuid, or the workflow id `case-<uuid>` / `task-<uuid>` that the Temporal Web UI shows;
  the route gets the bare lower-case uuid.
- `Instant`: an ISO 8601 date and time with an explicit offset (or Z). Pasted into a shell's curl, the `+` of
  `+01:00` arrives as a space (form encoding); that exact form is read as the `+` it was. Numbers are refused
  rather than read as Unix time, and so is an instant that does not exist in UTC (year 1 at +14:00).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from domain.ids import Kind, id_pattern, id_problem, parse_id


def _id_validator(kind: Kind) -> BeforeValidator:
    def check(value: object) -> str:
        if not isinstance(value, str):
            raise PydanticCustomError(f"{kind}_id", id_problem(kind))
        try:
            return parse_id(kind, value)
        except ValueError:
            # Our own error type and message: pydantic's would repeat the pattern, not say what we want.
            raise PydanticCustomError(f"{kind}_id", id_problem(kind)) from None

    return BeforeValidator(check)


def _id_path(kind: Kind) -> object:
    # The pattern goes into the schema only: the validator above refuses with words instead of a regex.
    return Path(
        description=f"The {kind}'s uuid, or its workflow id {kind}-<uuid> as the Temporal Web UI shows it",
        json_schema_extra={"pattern": id_pattern(kind)},
        examples=[f"{kind}-0b7c3f52-1d7e-4b8a-9c41-2f6e5d4a3b21"],
    )


CaseId = Annotated[str, _id_validator("case"), _id_path("case")]
TaskId = Annotated[str, _id_validator("task"), _id_path("task")]
# A case id given as a query parameter (e.g. to filter the access log): the same rule, without the path's metadata.
CaseIdQuery = Annotated[str, _id_validator("case")]

INSTANT_EXAMPLE = "2021-03-02T00:00:00+01:00"
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_INSTANT = re.compile(
    r"(?P<local>\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?)"
    r"(?:(?P<utc>[Zz])|(?P<sign>[+\- ])(?P<hh>\d{2}):?(?P<mm>\d{2}))?"
)


def _invalid(message: str) -> PydanticCustomError:
    return PydanticCustomError("instant", message)


def parse_instant(value: object) -> datetime:
    """An aware datetime from ISO 8601 text with an offset or Z; PydanticCustomError with the reason otherwise."""
    if isinstance(value, datetime):
        text = value.isoformat()
    elif isinstance(value, str):
        text = value
    else:
        raise _invalid(f"expected an ISO 8601 date and time with an offset, e.g. {INSTANT_EXAMPLE}")
    if _NUMBER.fullmatch(text.strip()):
        raise _invalid(f"a number is not an instant (no Unix time): give e.g. {INSTANT_EXAMPLE}")
    match = _INSTANT.fullmatch(text)
    if match is None:
        raise _invalid(f"expected an ISO 8601 date and time with an offset, e.g. {INSTANT_EXAMPLE}")
    if match["utc"] is None and match["sign"] is None:
        raise _invalid(f"the offset is missing: add one or Z, e.g. {INSTANT_EXAMPLE} or 2021-03-01T23:00:00Z")
    local = match["local"].replace(",", ".")
    offset = (
        "+00:00" if match["utc"] else f"{'+' if match['sign'] == ' ' else match['sign']}{match['hh']}:{match['mm']}"
    )
    try:
        # Python 3.11 reads at most 6 fractional digits exactly; more than that is finer than we keep anyway.
        head, dot, fraction = local.partition(".")
        parsed = datetime.fromisoformat(f"{head}{dot}{fraction[:6].ljust(6, '0') if dot else ''}{offset}")
    except ValueError:
        raise _invalid("not a valid date, time or offset (offsets lie between -23:59 and +23:59)") from None
    try:
        parsed.astimezone(UTC)
    except OverflowError:
        raise _invalid("outside the years 1 to 9999 once converted to UTC") from None
    return parsed


def _instant_or_none(value: object) -> datetime | None:
    return None if value is None else parse_instant(value)


Instant = Annotated[datetime, BeforeValidator(parse_instant)]
# Optional parameters validate before the union, so a bad value gets one error, not one per member of the union.
OptionalInstant = Annotated[datetime | None, BeforeValidator(_instant_or_none)]
