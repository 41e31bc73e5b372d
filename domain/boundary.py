"""The boundary rule, written once: what a value from outside may look like.

Every text, number and date a caller sends can end up in the event log (PostgreSQL `jsonb`, which cannot hold
U+0000), in a plain table column, in a Temporal payload, or in a kommune's inbox, where people read it. These types
say what all of those can hold and what a person could mean, and they are used unchanged by the HTTP schema (so the
OpenAPI document tells clients the truth), by the workflows' request models and by the domain's commands (so
`decide` refuses the same, in the update validators, before anything enters history):

- text: no NUL or other control characters (C0, DEL, C1); line breaks and tabs only in free text a person writes
  (`FreeText…`, where CR LF and CR are stored as LF); no bidi override or isolate characters (U+202A–U+202E,
  U+2066–U+2069) in names, file names and the short labels a kommune's staff read, where they can disguise what
  is shown (`passwd\\u202efdp.exe` displays as `passwdexe.pdf`); no unpaired surrogates (pydantic refuses those for
  any constrained string);
- values stored in plain columns, event bodies or inbox messages (idempotency keys, request and submission ids,
  requested documents, reason codes, access-log purposes) must not look like a CPR number;
- numbers finite and within what a person could mean; dates within 1900–2100;
- kommune codes in ASCII digits (fullwidth `１０１` is not `101` to a kommune system).

Length limits are part of each type, so the API and the innermost model agree by construction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, StringConstraints, ValidationError
from stdnum.dk import cpr as stdnum_cpr
from stdnum.exceptions import ValidationError as StdnumValidationError

from domain.errors import DomainError
from domain.kommuner import all_kommuner

# The character classes, as regular expressions that pydantic (Rust `regex`), Python `re` (schemathesis and
# hypothesis generate from the OpenAPI document with it) and ECMAScript all read the same way.
_C0_C1 = r"\u0000-\u001f\u007f-\u009f"
_C0_C1_BUT_TAB_LF_CR = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f"
_LINE_SEPARATORS = r"\u2028\u2029"
_BIDI_CONTROLS = r"\u202a-\u202e\u2066-\u2069"

SINGLE_LINE_PATTERN = rf"^[^{_C0_C1}{_LINE_SEPARATORS}]*$"
NAME_PATTERN = rf"^[^{_C0_C1}{_LINE_SEPARATORS}{_BIDI_CONTROLS}]*$"
FREE_TEXT_PATTERN = rf"^[^{_C0_C1_BUT_TAB_LF_CR}]*$"
KEY_PATTERN = r"^[A-Za-z0-9._:\-]+$"
KOMMUNE_KODE_PATTERN = r"^[0-9]{1,4}$"
# As much of a CPR number's date as a pattern can say (day 01-31, month 01-12); `parse_cpr` checks the rest.
CPR_PATTERN = r"^(0[1-9]|[12][0-9]|3[01])(0[1-9]|1[0-2])[0-9]{2}[- ]?[0-9]{4}$"

# What each pattern asks for, in words: a refusal says this instead of quoting the expression.
PATTERN_WORDS: dict[str, str] = {
    SINGLE_LINE_PATTERN: "one line of text without control characters",
    NAME_PATTERN: "one line of text without control or bidi control characters",
    FREE_TEXT_PATTERN: "text without control characters (tab and line breaks are allowed)",
    KEY_PATTERN: "only the characters A-Z a-z 0-9 . _ : -",
    KOMMUNE_KODE_PATTERN: "a kommune code in ASCII digits",
    CPR_PATTERN: "a CPR number, DDMMYY-SSSS",
}

BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))

MAX_KEY = 100
MAX_LABEL = 200
MAX_NAME = 200
MAX_FILENAME = 255
MAX_PURPOSE = 200
MAX_REASON = 2000
MAX_MESSAGE = 5000
MAX_REASONS = 10_000
MAX_BIGINT = 2**63 - 1  # PostgreSQL bigint: sequence numbers and cursors
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2100, 12, 31)

# A CPR number written DDMMYY-SSSS or DDMMYYSSSS as a token of its own: not glued to letters or digits. Clients
# rightly use UUIDs and random hex as keys, and their hex runs hold ten digits in a row often enough (about 1 in
# 300 `uuid4().hex` keys) to refuse good keys by the thousand if a letter counted as a boundary. No UUID group is
# six or ten characters long, so a UUID never matches.
_CPR_RUN = re.compile(r"(?<![0-9A-Za-z])(\d{6})-?(\d{4})(?![0-9A-Za-z])")


def looks_like_cpr(value: str) -> bool:
    """True if `value` holds a number that reads as a CPR number (a real birth date with a serial number)."""
    for match in _CPR_RUN.finditer(value):
        try:
            stdnum_cpr.get_birth_date(match.group(1) + match.group(2))
        except (StdnumValidationError, ValueError):
            continue
        return True
    return False


def _no_cpr(value: str) -> str:
    if looks_like_cpr(value):
        raise ValueError("must not contain a CPR number (it is stored and shown in plain text)")
    return value


def _lines(value: str) -> str:
    """Free text keeps the person's line breaks, stored one way: CR LF and a lone CR become LF."""
    return value.replace("\r\n", "\n").replace("\r", "\n")


def _from_int(value: Any) -> Any:
    # A kommune code sent as a JSON number (101) means the same as "101"; a bool is not a number here.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Key = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_KEY, pattern=KEY_PATTERN),
    AfterValidator(_no_cpr),
    Field(
        description=f"An id the caller chooses (idempotency key): 1–{MAX_KEY} of A–Z a–z 0–9 . _ : -, "
        "not containing a CPR number",
        examples=["2b5c9e8a-2f0b-4f6e-9a51-0c1f3d2e4b6a"],
    ),
]
"""Idempotency keys, request, submission and question ids: stored in plain columns and event bodies."""

Label = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_LABEL, pattern=NAME_PATTERN),
    AfterValidator(_no_cpr),
    Field(
        description=f"A short label, 1–{MAX_LABEL} characters on one line: no control or bidi control characters, "
        "no CPR number",
        examples=["LÆ 145"],
    ),
]
"""Requested documents, reason codes, document types: plain text in event bodies and kommune inboxes."""

PersonName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN),
    Field(description=f"1–{MAX_NAME} characters on one line: no control or bidi control characters"),
]

FileName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_FILENAME, pattern=NAME_PATTERN),
    Field(
        description=f"1–{MAX_FILENAME} characters on one line: no control or bidi control characters "
        "(a bidi override can make `x\\u202efdp.exe` display as `xexe.pdf`)"
    ),
]

Purpose = Annotated[
    str,
    StringConstraints(min_length=3, max_length=MAX_PURPOSE, pattern=SINGLE_LINE_PATTERN),
    AfterValidator(_no_cpr),
    Field(description=f"3–{MAX_PURPOSE} characters on one line, no CPR number: it is shown to auditors"),
]

_FREE_TEXT = (
    "free text; tabs and line breaks allowed (CR LF is stored as LF), no other control characters; personal data: "
    "stored encrypted"
)
FreeText = Annotated[
    str,
    StringConstraints(max_length=MAX_REASON, pattern=FREE_TEXT_PATTERN),
    AfterValidator(_lines),
    Field(description=f"Up to {MAX_REASON} characters of {_FREE_TEXT}"),
]
"""A reason someone gives (extension, return, withdrawal)."""

Message = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_MESSAGE, pattern=FREE_TEXT_PATTERN),
    AfterValidator(_lines),
    Field(description=f"1–{MAX_MESSAGE} characters of {_FREE_TEXT}"),
]
"""A question or an answer."""

LongFreeText = Annotated[
    str,
    StringConstraints(max_length=MAX_REASONS, pattern=FREE_TEXT_PATTERN),
    AfterValidator(_lines),
    Field(description=f"Up to {MAX_REASONS} characters of {_FREE_TEXT}"),
]
"""The written reasons for a decision."""

KOMMUNE_CODES = sorted((k.kode for k in all_kommuner()), key=int)
KommuneKode = Annotated[
    str,
    BeforeValidator(_from_int),
    StringConstraints(pattern=KOMMUNE_KODE_PATTERN),
    Field(
        description="One of the 98 kommune codes, in ASCII digits ('0329' is read as '329')",
        examples=["329"],
        json_schema_extra={"enum": KOMMUNE_CODES},
    ),
]
"""A kommune code: checked here for its shape; that it is one of the 98 is the domain's check (a refusal that
names the field), and the schema lists them."""

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]

PlausibleDate = Annotated[
    date,
    Field(
        ge=EARLIEST_DATE,
        le=LATEST_DATE,
        description=f"A date from {EARLIEST_DATE.isoformat()} to {LATEST_DATE.isoformat()}",
        # JSON Schema has no bounds for dates: the years, as a pattern, say it to clients and generators.
        json_schema_extra={"pattern": r"^(19[0-9]{2}|20[0-9]{2}|2100)-[0-9]{2}-[0-9]{2}$"},
    ),
]

Cursor = Annotated[int, Field(ge=0, le=MAX_BIGINT)]
"""A position in a PostgreSQL bigint sequence (inbox `after`)."""


def describe(error: Mapping[str, Any]) -> str:
    """One of pydantic's errors in words: a pattern by what it asks for, a validator's own message without
    pydantic's "Value error, " in front."""
    if error.get("type") == "string_pattern_mismatch":
        words = PATTERN_WORDS.get(str((error.get("ctx") or {}).get("pattern")))
        if words is not None:
            return f"must be {words}"
    return str(error["msg"]).removeprefix("Value error, ")


def field_errors(exc: ValidationError) -> str:
    """A ValidationError in words that name fields and rules only: pydantic's own text quotes the input, which may
    be personal data."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {describe(e)}" for e in exc.errors(include_input=False)
    )


def check_model(model: BaseModel) -> None:
    """Refuse a model whose values break the boundary rule, with a `DomainError` ("invalid") naming the fields.

    Models are checked when they are built; this is for one that was built without validation (`model_construct`)
    or by code that assembles commands from several sources, before it can decide anything."""
    try:
        type(model).model_validate(model.model_dump())
    except ValidationError as exc:
        raise DomainError(field_errors(exc), code="invalid") from None
