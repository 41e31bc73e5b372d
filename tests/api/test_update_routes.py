"""The update tables: each body field lands in its own argument field, and nothing reaches the argument that the
table does not name. A field added to a body but not to its update argument (or the reverse) fails here, before a
running workflow's fingerprint of a retried call could change under it."""

from __future__ import annotations

from typing import Any

import pytest

from api.auth import KommunePrincipal
from api.calls import UpdateRoute
from api.kommune_routes import UPDATES
from api.ops import CASE_UPDATES, TASK_UPDATES
from runtime.identity import Staff

ROUTES: list[tuple[UpdateRoute[Any], Any]] = [
    *((route, KommunePrincipal(kommune_kode="147", key_id="k")) for route in UPDATES),
    *(
        (route, Staff("karin", "Karin", frozenset({"caseworker", "team-lead"})))
        for route in (*CASE_UPDATES, *TASK_UPDATES)
    ),
]


@pytest.mark.parametrize(("route", "caller"), ROUTES, ids=[route.name for route, _ in ROUTES])
def test_every_argument_field_comes_from_the_body_or_the_caller(route: UpdateRoute[Any], caller: Any) -> None:
    from_body = {route.key if name == "idempotency_key" else name for name in route.body.model_fields}
    from_caller = set(route.caller(caller))
    assert not from_body & from_caller, "the caller must never be able to set a field through the body"
    given = from_body | from_caller
    assert given <= set(route.argument.model_fields), "the argument has no field for this body field"
    required = {name for name, f in route.argument.model_fields.items() if f.is_required()}
    assert required <= given, "the argument requires a field neither the body nor the caller gives"
    assert route.key in from_body, "the caller's idempotency key is the argument's key field"
    if isinstance(caller, Staff):
        # Every staff action names the person who took it, in the event it records.
        assert from_caller & {"by", "decided_by"}, "a staff update must record who acted"


def test_the_tables_are_all_there() -> None:
    assert {route.update for route, _ in ROUTES} >= {
        "request_extension",
        "ask_question",
        "answer_question",
        "return_task",
        "decide",
        "withdraw",
        "transfer",
        "decide_extension",
    }
