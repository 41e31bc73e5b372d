"""Fuzzing the live app over HTTP, as an attacker or a careless integrator would: schemathesis generates requests
from the OpenAPI document (valid ones and invalid ones), sends them through the real app on the dev stack, and every
answer must keep three promises besides the schema's own (declared status, content type and body):

- no 5xx at all;
- a 2xx is in the event log within `WITHIN` seconds: the events an update's answer says it recorded (at the
  version it names), the `ApplicationReceived` of an accepted application, the access-log entry of a case read;
- a 4xx changes nothing the request names: no event carrying its key, none of the events only such a call makes
  (a caseworker's decision, a withdrawal, a move, a return, an operations' extension decision, a supplementary
  request), no document stored under its key, no intake key taken, no access-log entry.

Four passes, each with the checks above:
- stateless: schemathesis's fuzzing of every operation with every credential (a caseworker and team lead, the
  intake system, an auditor, kommune 461's key, none), positive and negative data, path parameters generated or
  real (a case of 461 ready for decision and an open task of 461, made anew whenever a call closed them);
- coverage: schemathesis's coverage phase, the schema's boundaries deterministically (every length and bound at,
  just inside and just outside its limit, every enum value, missing fields, wrong types);
- probes: what careless integrators and attackers send (`ATTACK_STRINGS`, `ATTACK_NUMBERS`: control characters,
  bidi controls, fullwidth digits, CPR numbers, keys over the limit, unpaired surrogates, NaN, infinities, numbers
  beyond a bigint) in every field of a valid request of every operation, on a case or task in the state the request
  is for; the cases of issue 12 are among them;
- stateful: schemathesis's state machine over the links the schema declares and those it infers (application →
  case → decision → task → submission ...), each call with the credential its path needs (a task's own kommune).

Size: `SAGSFLOW_FUZZ_EXAMPLES` examples per operation (stateless), `SAGSFLOW_FUZZ_SCENARIOS` scenarios of up to
`SAGSFLOW_FUZZ_STEPS` calls (stateful); the coverage and probe passes are fixed by the schema. `make test` runs the
defaults below (a few thousand calls; smaller than before the role matrix doubled the credentials, to keep
`make test` near its 15 minutes), derandomized; `make fuzz` runs a larger one with a new seed for before a release
(`SAGSFLOW_FUZZ_SEED` repeats one). Generation runs in worker threads with schemathesis's own (blocking) client, so
the app keeps serving on the test's event loop; the checks read the database back on that loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from requests.structures import CaseInsensitiveDict
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.intake import CASE_IDS
from api.kommune_schemas import document_id
from domain.kommuner import all_kommuner
from eventlog.api_keys import ApiKeys, key_id_of
from tests.api.conftest import PUSH_KOMMUNER, Stack, application

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = int(os.environ.get("SAGSFLOW_FUZZ_EXAMPLES", "40"))
SCENARIOS = int(os.environ.get("SAGSFLOW_FUZZ_SCENARIOS", "30"))
STEPS = int(os.environ.get("SAGSFLOW_FUZZ_STEPS", "8"))
SEED = os.environ.get("SAGSFLOW_FUZZ_SEED")
WITHIN = 60.0  # a 2xx's events in the log by then; a bound that turns a lost event into a failure, not a speed test
KOMMUNE = "461"
# Events no background work makes for a case of the test (the simulator plays 329 and 101 calmly: no questions,
# returns or extensions; no caseworkers run): when one appears, a call made it.
ONLY_BY_A_CALL = """
    (type = 'DecisionMade' AND data->>'decided_by' <> 'prescreening')
    OR type IN ('ApplicationWithdrawn', 'OplysningReturned', 'ExtensionRefused', 'QuestionAsked', 'QuestionAnswered',
                'ExtensionRequested')
    OR (type = 'CaseTransferred' AND data->>'reason' = 'moved')
    OR (type = 'OplysningDeadlineExtended' AND data->>'granted_by' = 'operations')
    OR (type = 'OplysningRequested' AND data->>'reason' = 'supplementary')
"""

T = TypeVar("T")


@dataclass(frozen=True)
class Named:
    """What a request names: the case and task it is about, and the caller's key."""

    path: str
    case_id: str | None
    task_id: str | None
    key: str | None
    purpose: str | None


@dataclass
class Fuzz:
    stack: Stack
    loop: asyncio.AbstractEventLoop
    keys: dict[str, str]
    failures: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    by_operation: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    # The simulator plays the push kommuner and reads the citizen of every task it receives (a task the fuzzer
    # returned to one of them, say) in the background: those reads are its own, not the judged call's.
    background_actors: tuple[str, ...] = ()
    auditor: dict[str, str] = field(default_factory=dict)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """From a generation thread: run on the app's loop and wait."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=WITHIN * 3)

    # -- credentials -----------------------------------------------------------------------------------------------

    def credentials(self) -> dict[str, dict[str, str]]:
        return {
            "ops": dict(self.stack.ops_headers),
            "intake": dict(self.stack.intake_headers),
            "auditor": dict(self.auditor),
            "kommune": self.stack.kommune(KOMMUNE),
            "none": {},
        }

    @staticmethod
    def right_name(path: str) -> str:
        """The credential an operation is for: its kommune, the intake system, an auditor, or a caseworker."""
        if path.startswith("/v1/kommune/"):
            return "kommune"
        if path == "/v1/applications":
            return "intake"
        return "auditor" if path.startswith("/v1/ops/access-log") else "ops"

    def right_credential(self, case: Case[Any]) -> dict[str, str]:
        path = case.operation.path
        if self.right_name(path) != "kommune":
            return self.credentials()[self.right_name(path)]
        task_id = (case.path_parameters or {}).get("task_id")
        kode = self.run(self.kommune_of(task_id)) if isinstance(task_id, str) else None
        return {"Authorization": f"Bearer {self.keys.get(kode or KOMMUNE, self.keys[KOMMUNE])}"}

    async def kommune_of(self, task_id: str) -> str | None:
        kode: str | None = await self.stack.pool.fetchval(
            "SELECT data->>'kommune_kode' FROM events WHERE type = 'OplysningRequested' AND data->>'task_id' = $1"
            " LIMIT 1",
            task_id,
        )
        return kode

    # -- what a request names, and what it may have changed ---------------------------------------------------------

    @staticmethod
    def named(case: Case[Any]) -> Named:
        params = case.path_parameters or {}
        body = case.body if isinstance(case.body, dict) else {}
        query = case.query or {}
        keys = [body[k] for k in ("idempotency_key", "question_id", "request_id") if isinstance(body.get(k), str)]
        key = storable(str(keys[0])) if keys else None
        case_id = str(params["case_id"]) if isinstance(params.get("case_id"), str) else None
        if case.operation.path == "/v1/applications" and key is not None:
            case_id = str(uuid.uuid5(CASE_IDS, key))
        task_id = str(params["task_id"]) if isinstance(params.get("task_id"), str) else None
        purpose = str(query["purpose"]) if isinstance(query.get("purpose"), str) else None
        return Named(case.operation.path, storable(case_id), storable(task_id), storable(key), storable(purpose))

    async def case_of(self, named: Named) -> str | None:
        if named.case_id is not None or named.task_id is None:
            return named.case_id
        found: str | None = await self.stack.pool.fetchval(
            "SELECT case_id FROM events WHERE type = 'OplysningRequested' AND data->>'task_id' = $1 LIMIT 1",
            named.task_id,
        )
        return found

    async def snapshot(self, named: Named) -> tuple[Any, ...]:
        pool = self.stack.pool
        case_id = await self.case_of(named)
        keyed = only_by_a_call = access = 0
        if case_id is not None:
            if named.key is not None:
                keyed = await pool.fetchval(
                    "SELECT count(*) FROM events WHERE case_id = $1 AND $2 IN"
                    " (data->>'submission_id', data->>'request_id', data->>'question_id')",
                    case_id,
                    named.key,
                )
            only_by_a_call = await pool.fetchval(
                f"SELECT count(*) FROM events WHERE case_id = $1 AND ({ONLY_BY_A_CALL})", case_id
            )
            access = await pool.fetchval(
                "SELECT count(*) FROM access_log WHERE case_id = $1 AND actor <> ALL($2::text[])",
                case_id,
                list(self.background_actors),
            )
        documents = 0
        if named.task_id is not None and named.key is not None:
            ids = [document_id(named.task_id, named.key, i) for i in range(20)]
            documents = await pool.fetchval("SELECT count(*) FROM documents WHERE document_id = ANY($1::uuid[])", ids)
        intake = 0
        if named.path == "/v1/applications" and named.key is not None:
            intake = await pool.fetchval("SELECT count(*) FROM intake_requests WHERE idempotency_key = $1", named.key)
        return (keyed, only_by_a_call, access, documents, intake)

    async def logged(self, case_id: str, recorded: list[str], version: int) -> str | None:
        """Why the events a 2xx names are not (yet) in the log; None once they are."""
        rows = await self.stack.pool.fetch("SELECT type FROM events WHERE case_id = $1", case_id)
        types = Counter(r["type"] for r in rows)
        if len(rows) < version:
            return f"stream of {case_id} at {len(rows)}, the answer says {version}"
        missing = [t for t in recorded if types[t] == 0]
        return f"{missing} not in the stream of {case_id}" if missing else None

    async def eventually(self, probe: Callable[[], Awaitable[str | None]]) -> str | None:
        deadline = time.monotonic() + WITHIN
        while True:
            why: str | None = await probe()
            if why is None or time.monotonic() > deadline:
                return why
            await asyncio.sleep(0.1)

    async def after_2xx(self, named: Named, body: Any, before: tuple[Any, ...]) -> str | None:
        if isinstance(body, dict) and isinstance(body.get("recorded"), list):
            summary = body.get("task") or body.get("case") or {}
            case_id, version = summary.get("case_id"), summary.get("version")
            if not isinstance(case_id, str) or not isinstance(version, int):
                return "an update's answer without the case and version it recorded at"
            recorded = [str(t) for t in body["recorded"]]
            return await self.eventually(lambda: self.logged(case_id, recorded, version))
        if named.path == "/v1/applications" and isinstance(body, dict):
            created = body.get("case_id")
            if not isinstance(created, str):
                return "an accepted application without its case id"
            return await self.eventually(lambda: self.logged(created, ["ApplicationReceived"], 1))
        if named.path == "/v1/ops/cases/{case_id}":
            after = await self.snapshot(named)
            return None if after[2] == before[2] + 1 else "a case read without its access-log entry"
        if named.path == "/v1/kommune/tasks/{task_id}/citizen":
            after = await self.snapshot(named)
            return None if after[2] == before[2] + 1 else "a citizen read without its access-log entry"
        return None

    # -- the check of one call --------------------------------------------------------------------------------------

    def check(self, case: Case[Any], response: Any, before: tuple[Any, ...], credential: str) -> None:
        """From a generation thread: the schema's checks, then the promises."""
        problems: list[str] = []
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # every kind of check failure, reported with the request
            problems.append(f"schema: {str(exc).splitlines()[0][:300]}")
        try:
            body = response.json()
        except ValueError:
            body = None
        label = f"{case.operation.label} [{credential}]"
        request = case.as_curl_command()
        self.run(self.judge(self.named(case), label, response.status_code, body, before, problems, request))

    async def judge(
        self,
        named: Named,
        label: str,
        status: int,
        body: Any,
        before: tuple[Any, ...],
        problems: list[str],
        request: str,
    ) -> None:
        self.calls += 1
        self.statuses[f"{status // 100}xx"] += 1
        self.by_operation[f"{label} -> {status}"] += 1
        if status >= 500:
            problems.append(f"a {status}")
        elif 200 <= status < 300:
            why = await self.after_2xx(named, body, before)
            if why is not None:
                problems.append(f"2xx not in the log within {WITHIN:.0f}s: {why}")
        elif 400 <= status < 500:
            after = await self.snapshot(named)
            if after != before:
                problems.append(
                    f"4xx changed something: (keyed, call-only, access, documents, intake) {before} -> {after}"
                )
        if problems:
            self.failures.append(f"{label} -> {status}: {'; '.join(problems)}\n    {request[:600]}")


def storable(value: str | None) -> str | None:
    """A value PostgreSQL could hold; None (nothing stored under it) for one it could not."""
    if value is None or "\x00" in value:
        return None
    try:
        value.encode()
    except UnicodeEncodeError:
        return None
    return value


@pytest.fixture(scope="module")
async def fuzz(stack: Stack) -> Fuzz:
    # A key for every kommune, so the stateful pass can act on any task as its own kommune.
    # The push kommuner's keys are the simulator's: the fuzzer acts on their tasks with keys of its own, so that
    # what the simulator reads in the background can be told from what a fuzzed call did.
    keys = {k: v for k, v in stack.keys.items() if k not in PUSH_KOMMUNER}
    for k in all_kommuner():
        if k.kode not in keys:
            keys[k.kode] = await ApiKeys(stack.pool).create_kommune_key(k.kode, label="fuzz")
    simulator = tuple(f"kommune:{k}:{key_id_of(stack.keys[k])}" for k in PUSH_KOMMUNER)
    auditor = stack.headers("Fuzz Revisor", "auditor")
    return Fuzz(stack, asyncio.get_running_loop(), keys, background_actors=simulator, auditor=auditor)


async def open_task(stack: Stack) -> tuple[str, str]:
    created = await stack.apply(KOMMUNE)
    return created["case_id"], await stack.open_task(created["case_id"])


async def ready_case(stack: Stack) -> str:
    case_id, task_id = await open_task(stack)
    final = {"idempotency_key": f"final-{uuid.uuid4().hex[:8]}", "final": True, "documents": []}
    assert (await stack.kpost(KOMMUNE, task_id, "submissions", final)).status_code == 200
    await stack.wait_case(case_id, "ready_for_decision")
    return case_id


@dataclass
class Real:
    """Real ids for path parameters: a case ready for decision and an open task, renewed once closed."""

    case_id: str = ""
    task_id: str = ""

    async def renew(self, stack: Stack) -> dict[str, str]:
        if not self.case_id or await stack.case_status(self.case_id) != "ready_for_decision":
            self.case_id = await ready_case(stack)
        task = await stack.http.get(f"/v1/kommune/tasks/{self.task_id}", headers=stack.kommune(KOMMUNE))
        if (
            not self.task_id
            or task.status_code != 200
            or task.json()["status"] not in ("delivered", "partially_received")
        ):
            _, self.task_id = await open_task(stack)
        return {"case_id": self.case_id, "task_id": self.task_id}


def hypothesis_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=SEED is None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: every failure is reported with its request
        suppress_health_check=list(HealthCheck),
    )


def stateless(fuzz: Fuzz, operation: Any, real: dict[str, str]) -> None:
    path = operation.path
    known = {name: real[name] for name in ("case_id", "task_id") if "{" + name + "}" in path}
    right = fuzz.right_name(path)
    credentials = fuzz.credentials()
    strategies: dict[tuple[str, GenerationMode, bool], Any] = {}
    choices: list[tuple[str, GenerationMode, bool]] = []
    for name in credentials:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for real_ids in [False, True] if known else [False]:
                # Mostly what gets past authentication and validation to the state: the right credential, valid
                # data, the real case or task. The rest tries every door with everything else.
                weight = (3 if name == right else 1) * (2 if mode is GenerationMode.POSITIVE else 1)
                choices += [(name, mode, real_ids)] * (weight * (2 if real_ids or not known else 1))

    def strategy(choice: tuple[str, GenerationMode, bool]) -> Any:
        if choice not in strategies:
            name, mode, real_ids = choice
            params = known if real_ids else None
            strategies[choice] = operation.as_strategy(
                generation_mode=mode, headers=credentials[name], path_parameters=params
            )
        return strategies[choice]

    @hypothesis_settings(EXAMPLES)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        choice = data.draw(st.sampled_from(choices), label="credential, mode, real ids")
        case: Case[Any] = data.draw(strategy(choice), label="request")
        before = fuzz.run(fuzz.snapshot(fuzz.named(case)))
        response = case.call(base_url=fuzz.stack.url, timeout=WITHIN)
        fuzz.check(case, response, before, choice[0])

    if SEED is not None:
        check = seed(int(SEED))(check)
    check()


def coverage(fuzz: Fuzz, schema: Any, operation: Any, real: dict[str, str]) -> None:
    """schemathesis's coverage phase: the schema's boundaries, deterministically (every length and bound at, just
    inside and just outside its limit, every enum value, each required field missing, wrong types), with the right
    credential; every other request names the real case or task instead of a generated id."""
    config = schema.config.generation_for(operation=operation, phase="coverage")
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    for n, case in enumerate(schema.iter_coverage_cases(operation, generation_modes=modes, generation_config=config)):
        if n % 2 and case.path_parameters:
            case.path_parameters = {
                **case.path_parameters,
                **{k: v for k, v in real.items() if k in case.path_parameters},
            }
        if case.headers is None:
            case.headers = CaseInsensitiveDict()
        case.headers.update(fuzz.right_credential(case))
        before = fuzz.run(fuzz.snapshot(fuzz.named(case)))
        response = case.call(base_url=fuzz.stack.url, timeout=WITHIN)
        fuzz.check(case, response, before, "coverage")


# What careless integrators and attackers send, in every string and every number of every request (the cases of
# issue 12 among them): control characters, bidi controls, fullwidth digits, a CPR number, keys just over the limit,
# an unpaired surrogate; numbers JSON cannot carry back, beyond a bigint, or of the wrong kind.
ATTACK_STRINGS = (
    "nul\x00byte",
    "bell\x07",
    "csi\x9b31m",
    "line\u2028separator",
    "passwd\u202efdp.exe",
    "iso\u2066late",
    "１０１",
    "010357-1234",
    "k" * 101,
    "k" * 201,
    "\ud800",
    "",
)
ATTACK_NUMBERS = ("NaN", "Infinity", "-Infinity", "1e309", "9223372036854775808", "-1", "0.5")


@dataclass(frozen=True)
class Probe:
    method: str
    path: str
    credential: str
    query: dict[str, Any] | None = None
    body: dict[str, Any] | None = None


def probes() -> list[Probe]:
    """A valid request of every operation that takes input, as its caller sends it."""
    pdf = base64.b64encode(b"%PDF-1.4 probe").decode()
    document = {
        "document_type": "LÆ 145",
        "filename": "a.pdf",
        "content_type": "application/pdf",
        "content_base64": pdf,
    }
    kommune, case, task = "/v1/kommune/tasks/{task_id}", "/v1/ops/cases/{case_id}", "/v1/ops/tasks/{task_id}"
    return [
        Probe(
            "POST",
            "/v1/applications",
            "intake",
            # Every field spelled out, so every one is attacked (the residence years once took Infinity: 201, lost).
            body={"idempotency_key": "K", "application": application(KOMMUNE, residence_years_15_to_pension_age=40)},
        ),
        Probe("GET", "/v1/kommune/tasks", "kommune", query={"after": 0, "limit": 10}),
        Probe(
            "POST",
            f"{kommune}/submissions",
            "kommune",
            body={"idempotency_key": "K", "final": False, "documents": [document]},
        ),
        Probe(
            "POST",
            f"{kommune}/extension-requests",
            "kommune",
            body={"idempotency_key": "K", "extend_by": {"quantity": 5, "unit": "seconds"}, "reason": "Travlt."},
        ),
        Probe("POST", f"{kommune}/questions", "kommune", body={"idempotency_key": "K", "text": "Hvilken periode?"}),
        Probe("POST", f"{kommune}/answers", "kommune", body={"question_id": "K", "text": "Svar."}),
        Probe(
            "POST",
            f"{kommune}/returns",
            "kommune",
            body={"idempotency_key": "K", "correct_kommune_kode": "751", "reason": "Flyttet."},
        ),
        Probe("GET", case, "ops", query={"purpose": "test: probe"}),
        Probe(
            "POST",
            f"{case}/decision",
            "ops",
            body={
                "idempotency_key": "K",
                "outcome": "rejected",
                "reason_codes": ["work_capacity"],
                "reasons": "Begrundelse.",
                "requested_documents": ["LÆ 145"],
            },
        ),
        Probe("POST", f"{case}/withdrawal", "ops", body={"idempotency_key": "K", "reason": "Fortrudt."}),
        Probe("POST", f"{case}/transfer", "ops", body={"idempotency_key": "K", "to_kommune_kode": "751"}),
        Probe("POST", f"{task}/extension-decision", "ops", body={"request_id": "K", "grant": True}),
        Probe("POST", f"{task}/questions", "ops", body={"idempotency_key": "K", "text": "Hvornår?"}),
        Probe("POST", f"{task}/answers", "ops", body={"question_id": "K", "text": "Nu."}),
        Probe("GET", "/v1/ops/access-log", "auditor", query={"actor": "staff:x", "since": "2021-03-02T00:00:00+01:00"}),
        Probe("POST", "/v1/ops/access-log/search", "auditor", body={"cpr": "010357-1234", "purpose": "test: probe"}),
    ]


Leaf = tuple[tuple[str | int, ...], Any]


def leaves(value: Any, at: tuple[str | int, ...] = ()) -> list[Leaf]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in leaves(v, (*at, k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in leaves(v, (*at, i))]
    return [(at, value)] if isinstance(value, str | int | float) and not isinstance(value, bool) else []


def replaced(value: Any, at: tuple[str | int, ...], new: Any) -> Any:
    if not at:
        return new
    head, rest = at[0], at[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    copy = list(value)
    copy[head] = replaced(copy[head], rest, new)  # type: ignore[index]
    return copy


async def attack(fuzz: Fuzz, probe: Probe, real: Real) -> None:
    """Each attack in each field of one probe, the rest of the request valid, on a case or task in the state the
    request is for (made anew after any call that changed it); a fresh key for every request."""
    stack = fuzz.stack
    headers = fuzz.credentials()[probe.credential]
    where = "query" if probe.query is not None else "body"
    base = probe.query if probe.query is not None else probe.body
    assert base is not None
    variants: list[tuple[str, Any]] = []
    for at, value in leaves(base):
        kinds: tuple[str, ...] = ATTACK_NUMBERS if isinstance(value, int | float) else ATTACK_STRINGS
        if where == "query":  # a URL cannot carry an unpaired surrogate at all
            kinds = tuple(k for k in kinds if storable(k) == k or "\x00" in k)
        variants += [
            (f"{'.'.join(map(str, at))}={kind!r}", (at, kind, isinstance(value, int | float))) for kind in kinds
        ]
    variants.append(("as given", None))  # last: the valid request changes the state the attacks are aimed at
    ids = await real.renew(stack)
    for what, change in variants:
        path = probe.path.replace("{task_id}", ids["task_id"]).replace("{case_id}", ids["case_id"])
        key = f"probe-{uuid.uuid4().hex[:12]}"
        fresh = replaced(base, ("idempotency_key",), key) if "idempotency_key" in base else base
        fresh = replaced(fresh, ("question_id",), key) if "question_id" in fresh else fresh
        fresh = replaced(fresh, ("request_id",), key) if "request_id" in fresh else fresh
        raw_number: str | None = None
        if change is not None:
            at, kind, numeric = change
            if numeric:
                fresh, raw_number = replaced(fresh, at, "RAW-NUMBER"), kind
            else:
                fresh = replaced(fresh, at, kind)
        key_now = storable(
            next((str(fresh[k]) for k in ("idempotency_key", "question_id", "request_id") if k in fresh), None)
        )
        case_id = str(uuid.uuid5(CASE_IDS, key_now)) if probe.path == "/v1/applications" and key_now else ids["case_id"]
        named = Named(
            probe.path,
            storable(case_id if "{case_id}" in probe.path or probe.path == "/v1/applications" else None),
            storable(ids["task_id"] if "{task_id}" in probe.path else None),
            storable(key_now),
            None,
        )
        label = f"{probe.method} {probe.path} [probe {what}]"
        before = await fuzz.snapshot(named)
        try:
            if where == "query":
                query = {k: (raw_number if v == "RAW-NUMBER" else v) for k, v in fresh.items()}
                response = await stack.http.request(probe.method, path, params=query, headers=headers)
            else:
                text = json.dumps(fresh)  # \ud800 is written as its escape, as a JSON client would
                if raw_number is not None:
                    text = text.replace('"RAW-NUMBER"', raw_number)
                response = await stack.http.request(
                    probe.method, path, content=text.encode(), headers={**headers, "Content-Type": "application/json"}
                )
        except httpx.TimeoutException:
            # An answer that never comes (a wedged case once looked like this).
            fuzz.failures.append(f"{label}: no answer within {stack.http.timeout.read}s\n    {probe.method} {path}")
            ids = await real.renew(stack)
            continue
        try:
            body = response.json()
        except ValueError:
            body = None
        problems = [] if body is not None else ["an answer that is not JSON"]
        await fuzz.judge(named, label, response.status_code, body, before, problems, f"{probe.method} {path} {where}")
        if 200 <= response.status_code < 300:
            ids = await real.renew(stack)


def stateful(fuzz: Fuzz, schema: Any) -> int:
    """Scenarios of linked calls; returns how many ran. A scenario's answers depend on what earlier ones left
    behind (the same key answered "created" once, "replayed" after), which Hypothesis reads as flaky generation and
    ends the suite on; as schemathesis's own runner does, the next suite (another seed) carries on."""
    machine = schema.as_state_machine()
    scenarios = 0

    class Machine(machine):  # type: ignore[misc, valid-type]
        def teardown(self) -> None:
            nonlocal scenarios
            scenarios += 1
            super().teardown()

        def before_call(self, case: Case[Any]) -> None:
            self._before = fuzz.run(fuzz.snapshot(fuzz.named(case)))
            # The credential the path needs, over any the generator made up for the security scheme.
            if case.headers is None:
                case.headers = CaseInsensitiveDict()
            case.headers.update(fuzz.right_credential(case))

        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"base_url": fuzz.stack.url, "timeout": WITHIN}

        def validate_response(self, response: Any, case: Case[Any], *args: Any, **kwargs: Any) -> None:
            fuzz.check(case, response, self._before, "stateful")

    base = int(SEED) if SEED is not None else 0
    for suite in range(20):
        if scenarios >= SCENARIOS:
            break
        run_settings = settings(
            hypothesis_settings(SCENARIOS - scenarios),
            derandomize=False,
            stateful_step_count=STEPS,
            phases=[Phase.generate],
        )
        with contextlib.suppress(Flaky):
            seed(base + suite)(Machine).run(settings=run_settings)
    return scenarios


@pytest.mark.slow
@pytest.mark.timeout(900)  # about 3 minutes on 2 busy cores; `make fuzz` lifts the limit
async def test_fuzzing_with_every_credential_keeps_the_promises(stack: Stack, fuzz: Fuzz) -> None:
    started = time.monotonic()
    schema = await asyncio.to_thread(schemathesis.openapi.from_url, f"{stack.url}/openapi.json")
    results = list(schema.get_all_operations())
    assert all(isinstance(r, Ok) for r in results), "the OpenAPI document has invalid operations"
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert len(operations) >= 18
    real = Real()
    errors: list[str] = []
    for operation in operations:
        ids = await real.renew(stack)
        try:
            await asyncio.to_thread(stateless, fuzz, operation, ids)
        except (Exception, BaseExceptionGroup) as exc:  # every operation's errors, reported together
            errors.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:1500]}")
    calls = {"stateless": fuzz.calls}
    for operation in operations:
        ids = await real.renew(stack)
        try:
            await asyncio.to_thread(coverage, fuzz, schema, operation, ids)
        except (Exception, BaseExceptionGroup) as exc:
            errors.append(f"coverage {operation.label}: {type(exc).__name__}: {str(exc)[:1500]}")
    calls["coverage"] = fuzz.calls - sum(calls.values())
    for probe in probes():
        await attack(fuzz, probe, real)
    calls["probes"] = fuzz.calls - sum(calls.values())
    scenarios = 0
    try:
        scenarios = await asyncio.to_thread(stateful, fuzz, schema)
    except (Exception, BaseExceptionGroup) as exc:
        errors.append(f"stateful: {type(exc).__name__}: {str(exc)[:1500]}")
    calls["stateful"] = fuzz.calls - sum(calls.values())
    summary = {
        "calls": calls,
        "statuses": dict(fuzz.statuses),
        "seconds": round(time.monotonic() - started),
        "examples_per_operation": EXAMPLES,
        "scenarios": scenarios,
        "steps": STEPS,
        "seed": SEED or "derandomized",
        "failures": len(fuzz.failures),
    }
    print(f"\nfuzz summary: {json.dumps(summary)}")  # the size and result of the run, for the record
    report = os.environ.get("SAGSFLOW_FUZZ_REPORT")
    if report:
        with open(report, "w") as fh:
            json.dump(
                {**summary, "by_operation": dict(sorted(fuzz.by_operation.items())), "failure_list": fuzz.failures},
                fh,
                indent=1,
            )
    assert not errors, "\n\n".join(errors)
    assert not fuzz.failures, f"{len(fuzz.failures)} broken promises:\n" + "\n".join(fuzz.failures[:40])
    # The fuzzer got past authentication and validation to the state, or it proved little.
    assert fuzz.statuses["2xx"] > 50, summary
