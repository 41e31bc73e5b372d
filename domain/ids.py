"""Case and task ids as people paste them.

Our ids are uuids; the workflows that carry them are named `case-<uuid>` and `task-<uuid>`, and that workflow id is
what the Temporal Web UI and `temporal workflow list` show. An operator copies it from there, so every place that
takes a case or task id takes either form and works on the bare uuid from then on.
"""

from __future__ import annotations

import re
import uuid
from typing import Literal

Kind = Literal["case", "task"]

# The canonical text form only (8-4-4-4-12 hex digits): `uuid.UUID` would also take braces, `urn:uuid:` and
# unhyphenated forms, which no one copies from our screens and which the schema's pattern could not describe.
UUID_PATTERN = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_FORM = {kind: re.compile(rf"(?:{kind}-)?({UUID_PATTERN})") for kind in ("case", "task")}


def id_pattern(kind: Kind) -> str:
    """The accepted forms as a regular expression, for the OpenAPI schema."""
    return rf"^({kind}-)?{UUID_PATTERN}$"


def id_problem(kind: Kind) -> str:
    """What a refused id is told (it never repeats the input: a pasted CPR number must not come back)."""
    return f"expected a {kind} id: a uuid, or {kind}-<uuid> as the Temporal Web UI shows it"


def parse_id(kind: Kind, text: str) -> str:
    """The bare, lower-case uuid of a case or task id given as `<uuid>` or `<kind>-<uuid>`; ValueError otherwise."""
    match = _FORM[kind].fullmatch(text)
    if match is None:
        raise ValueError(id_problem(kind))
    return str(uuid.UUID(match.group(1)))


def parse_case_id(text: str) -> str:
    return parse_id("case", text)


def parse_task_id(text: str) -> str:
    return parse_id("task", text)
