"""No answer of the API repeats personal data it was sent: a CPR number or a name put into any field, path parameter,
query parameter or key of any route (walked from the app's own OpenAPI document, so a new route is covered the day
it is added) never comes back in a response body, whatever the status.

Refusals are where this goes wrong: validation messages quote input ("Input tag '0101701234' found ..."), an
unknown key is named in the error's location, a content type is repeated in a 415. The stack is the production
app as `sagsflow api` builds it (tests/api/conftest.py), with a real case and task so that calls on them get past
"not found" to the checks behind it.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

import httpx
import pytest
from pydantic import Base64Bytes, BaseModel, ConfigDict, Field, HttpUrl, Json, ValidationError

from api.app import public_error
from tests.api.conftest import Stack, application

# A CPR number with a real birth date (1 January 1970) in both written forms, and a person's name.
CPR_PLAIN = "0101701234"
CPR_DASHED = "010170-1234"
NAME = "Mette Sørensen Hansen"
POISONS = (CPR_PLAIN, CPR_DASHED, NAME)
# What must never appear in an answer: each poison, and the number in any of its written forms.
FORBIDDEN = (CPR_PLAIN, CPR_DASHED, "010170 1234", "Sørensen", "S\\u00f8rensen", "Hansen")


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, Any]
    content: bytes | None
    what: str


@pytest.fixture
async def real(stack: Stack) -> dict[str, str]:
    """Ids of a real case and its open task (kommune 461, which the tests play), for the parameters not poisoned;
    one per test, as a walk may withdraw its case (a valid withdrawal whose reason is the poison)."""
    created = await stack.apply("461")
    case_id = created["case_id"]
    return {"case_id": case_id, "task_id": await stack.open_task(case_id)}


@pytest.fixture(scope="module")
async def openapi(stack: Stack) -> dict[str, Any]:
    r = await stack.http.get("/openapi.json")
    assert r.status_code == 200
    document: dict[str, Any] = r.json()
    return document


def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = doc["components"]["schemas"][name]
    return schema


# Ids a caller chooses: given good values in one variant, so that a call gets past its key to the checks on the
# rest (the domain's, in the workflow's update validator).
KEY_FIELDS = frozenset({"idempotency_key", "request_id", "question_id", "submission_id"})


def _fill(
    schema: dict[str, Any],
    doc: dict[str, Any],
    poison: str,
    *,
    keep_tags: bool,
    good_keys: bool = False,
    depth: int = 0,
) -> Any:
    """A value for `schema` whose every leaf is `poison`: strings, numbers, dates, enums. With `keep_tags` a field
    with a fixed value (a union's tag) keeps it, so the fields behind the tag are checked too; with `good_keys`
    the caller's ids are good ones."""
    schema = _resolve(schema, doc)
    if depth > 8:
        return poison
    for key in ("oneOf", "anyOf"):
        if key in schema:
            options = [_resolve(s, doc) for s in schema[key]]
            chosen = next((o for o in options if o.get("type") not in ("null", None) or "properties" in o), options[0])
            return _fill(chosen, doc, poison, keep_tags=keep_tags, good_keys=good_keys, depth=depth + 1)
    if "allOf" in schema:
        return _fill(schema["allOf"][0], doc, poison, keep_tags=keep_tags, good_keys=good_keys, depth=depth + 1)
    if keep_tags and "const" in schema:
        return schema["const"]
    if keep_tags and "enum" in schema and len(schema["enum"]) == 1:
        return schema["enum"][0]
    if schema.get("type") == "object" or "properties" in schema:
        return {
            name: f"k-{uuid.uuid4().hex}"
            if good_keys and name in KEY_FIELDS
            else _fill(prop, doc, poison, keep_tags=keep_tags, good_keys=good_keys, depth=depth + 1)
            for name, prop in schema.get("properties", {}).items()
        }
    if schema.get("type") == "array":
        return [_fill(schema.get("items", {}), doc, poison, keep_tags=keep_tags, good_keys=good_keys, depth=depth + 1)]
    return poison


def _with_unknown_keys(value: Any, poison: str) -> Any:
    """`value` with `poison` added as a key to every object in it: a key can be personal data as well."""
    if isinstance(value, dict):
        return {**{k: _with_unknown_keys(v, poison) for k, v in value.items()}, poison: "x"}
    if isinstance(value, list):
        return [_with_unknown_keys(v, poison) for v in value]
    return value


def _variants(body_schema: dict[str, Any] | None, doc: dict[str, Any], poison: str) -> Iterator[tuple[str, bytes]]:
    if body_schema is not None:
        tagged = _fill(body_schema, doc, poison, keep_tags=True)
        yield "every field", json.dumps(tagged).encode()
        yield "every field and tag", json.dumps(_fill(body_schema, doc, poison, keep_tags=False)).encode()
        yield "unknown keys", json.dumps(_with_unknown_keys(tagged, poison)).encode()
    yield "body a string", json.dumps(poison).encode()
    yield "malformed JSON", f'{{"idempotency_key": {poison}, "x": "{poison}'.encode()


def _headers(stack: Stack, path: str) -> dict[str, str]:
    return stack.kommune("461") if path.startswith("/v1/kommune") else dict(stack.ops_headers)


def _calls(stack: Stack, doc: dict[str, Any], real: dict[str, str], poison: str) -> Iterator[Call]:
    operations = [
        (method, path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method != "parameters"
    ]
    late: list[Call] = []
    for method, path, op in operations:
        parameters = op.get("parameters", [])
        path_names = [p["name"] for p in parameters if p["in"] == "path"]
        query = [p for p in parameters if p["in"] == "query"]
        body_schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        good_path = {n: real.get(n, str(uuid.uuid4())) for n in path_names}
        # Required query parameters get a good value (the purpose of a read), so the one poisoned is the culprit.
        good_query = {p["name"]: "test: personal data walk" for p in query if p.get("required")}
        headers = _headers(stack, path)
        body = json.dumps(_fill(body_schema, doc, "x", keep_tags=True)).encode() if body_schema else None
        json_headers = {**headers, "Content-Type": "application/json"} if body is not None else headers

        def url(values: dict[str, str], path: str = path) -> str:
            return path.format(**{k: httpx.URL(f"/{v}").raw_path.decode()[1:] for k, v in values.items()})

        for name in path_names:
            bad = url({**good_path, name: poison})
            yield Call(method, bad, good_query, json_headers, body, f"path {name}")
        for p in query:
            yield Call(
                method, url(good_path), {**good_query, p["name"]: poison}, json_headers, body, f"query {p['name']}"
            )
        if method in ("post", "put", "patch"):
            for what, content in _variants(body_schema, doc, poison):
                ctype = {**headers, "Content-Type": "application/json"}
                yield Call(method, url(good_path), good_query, ctype, content, f"body: {what}")
            # A header is bytes on the wire: the name goes as UTF-8, as a careless client would send it.
            sent_as: dict[str, Any] = {**headers, "Content-Type": f"text/plain; name={poison}".encode()}
            yield Call(method, url(good_path), good_query, sent_as, poison.encode(), "content type")
        if body_schema is not None:
            # Last, as these may be carried out (a withdrawal whose reason is the poison ends the case's task).
            good_keys = json.dumps(_fill(body_schema, doc, poison, keep_tags=True, good_keys=True)).encode()
            ctype = {**headers, "Content-Type": "application/json"}
            late.append(
                Call(method, url(good_path), good_query, ctype, good_keys, "body: good keys, the rest poisoned")
            )
    yield from late


def _leaks(text: str) -> list[str]:
    return [f for f in FORBIDDEN if f in text]


@pytest.mark.parametrize("poison", POISONS)
async def test_no_route_echoes_personal_data(
    stack: Stack, openapi: dict[str, Any], real: dict[str, str], poison: str
) -> None:
    leaks: list[str] = []
    calls = list(_calls(stack, openapi, real, poison))
    assert len(calls) > 50, "the walk found too few calls: is the OpenAPI document read right?"
    for call in calls:
        r = await stack.http.request(
            call.method.upper(), call.path, params=call.params, headers=call.headers, content=call.content
        )
        assert r.status_code != 500, (call, r.text)
        found = _leaks(r.text)
        if found:
            leaks.append(f"{call.method.upper()} {call.path} ({call.what}) -> {r.status_code}: {found} in {r.text}")
    assert not leaks, "\n".join(leaks)


async def test_a_refused_document_names_neither_its_content_type_nor_its_file(
    stack: Stack, real: dict[str, str]
) -> None:
    document = {
        "document_type": "LÆ 145",
        "filename": f"{NAME} {CPR_DASHED}.pdf",
        "content_type": f"application/x-{CPR_PLAIN}",
        "content_base64": base64.b64encode(b"%PDF-1.4 x").decode(),
    }
    r = await stack.kpost(
        "461",
        real["task_id"],
        "submissions",
        {"idempotency_key": f"sub-{uuid.uuid4().hex}", "final": False, "documents": [document]},
    )
    assert r.status_code == 415, r.text
    assert r.json()["detail"]["code"] == "unsupported_content_type", r.text
    assert not _leaks(r.text), r.text


async def test_a_purpose_holding_a_cpr_number_is_refused_by_name_only(stack: Stack, real: dict[str, str]) -> None:
    for purpose, status in ((f"opslag på {CPR_DASHED}", 422), ("opslag på 010170 1234", 400), (f"x{CPR_PLAIN}y", 400)):
        r = await stack.http.get(
            f"/v1/ops/cases/{real['case_id']}", params={"purpose": purpose}, headers=stack.ops_headers
        )
        assert r.status_code == status, (purpose, r.text)
        assert not _leaks(r.text), r.text
        if status == 400:
            assert r.json()["detail"] == {"code": "contains_cpr", "message": "purpose: must not contain a CPR number"}


async def test_a_valid_application_with_unknown_keys_names_them_only_as_unknown(stack: Stack) -> None:
    body = {
        "idempotency_key": f"app-{uuid.uuid4().hex}",
        "application": {**application("461"), CPR_DASHED: 1},
        CPR_PLAIN: NAME,
    }
    r = await stack.http.post("/v1/applications", json=body, headers=stack.intake_headers)
    assert r.status_code == 422, r.text
    assert not _leaks(r.text), r.text
    locs = sorted(tuple(e["loc"]) for e in r.json()["detail"])
    assert locs == [("body", "(unknown field)"), ("body", "application", "(unknown field)")], r.text


async def test_a_refusal_quoting_an_id_masks_a_cpr_number_in_it(stack: Stack, real: dict[str, str]) -> None:
    # An id may hold digits glued to letters (uuid hex does), so the boundary lets this one in; the refusal that
    # quotes it ("question '…' is not open") must not hand the number back.
    r = await stack.kpost("461", real["task_id"], "answers", {"question_id": f"q{CPR_PLAIN}x", "text": "svar"})
    assert r.status_code == 404, r.text
    assert not _leaks(r.text), r.text


class _Granted(BaseModel):
    outcome: Literal["granted"]


class _Rejected(BaseModel):
    outcome: Literal["rejected"]


class _EveryKind(BaseModel):
    """A field of each kind whose pydantic message could quote its input, whether or not a route has one today."""

    model_config = ConfigDict(extra="forbid")
    decision: Annotated[_Granted | _Rejected, Field(discriminator="outcome")]
    ref: uuid.UUID
    link: HttpUrl
    raw: Json[dict[str, int]]
    blob: Base64Bytes
    counts: dict[str, int]
    when: date
    kind: Literal["a", "b"]


@pytest.mark.parametrize("poison", POISONS)
def test_public_errors_never_quote_the_input(poison: str) -> None:
    sent = {
        "decision": {"outcome": poison},
        "ref": poison,
        "link": poison,
        "raw": poison,
        "blob": f"{poison}=",
        "counts": {poison: poison},
        "when": poison,
        "kind": poison,
        poison: poison,
    }
    with pytest.raises(ValidationError) as refused:
        _EveryKind.model_validate(sent)
    errors = [public_error(e) for e in refused.value.errors()]
    assert len(errors) >= len(sent) - 1
    assert not _leaks(json.dumps(errors, ensure_ascii=False)), errors
    assert ["(unknown field)"] in [e["loc"] for e in errors]
