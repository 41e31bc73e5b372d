"""schemathesis against the live app over HTTP: for every operation, generated requests (valid and invalid, aimed at
unknown ids and at a real case and task) never get a 5xx, and every response is one the schema declares, with the
declared content type and body shape.

Generation runs in a worker thread with schemathesis's own (blocking) client, so the app keeps serving on the test's
event loop meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import Stack

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MAX_EXAMPLES = 20


@pytest.fixture(scope="module")
async def ids(stack: Stack) -> dict[str, str]:
    created = await stack.apply("461")
    task_id = await stack.open_task(created["case_id"])
    return {"case_id": created["case_id"], "task_id": task_id}


def run_operation(stack: Stack, operation: Any, ids: dict[str, str], failures: list[str]) -> None:
    path = operation.path
    headers = stack.kommune("461") if path.startswith("/v1/kommune/") else dict(stack.ops_headers)
    known = {name: ids[name] for name in ("case_id", "task_id") if "{" + name + "}" in path}
    strategies = [
        operation.as_strategy(generation_mode=mode, headers=headers, path_parameters=params)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        for params in ([None, known] if known else [None])
    ]

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies))
    def check(case: Case[Any]) -> None:
        response = case.call(base_url=stack.url, headers=headers, timeout=30)
        try:
            case.validate_response(response, checks=CHECKS)
        except AssertionError as exc:
            failures.append(f"{operation.label}: {response.status_code}: {exc}".splitlines()[0][:500])
            raise

    check()


async def test_every_operation_keeps_to_its_schema(stack: Stack, ids: dict[str, str]) -> None:
    schema = await asyncio.to_thread(schemathesis.openapi.from_url, f"{stack.url}/openapi.json")
    results = list(schema.get_all_operations())
    assert all(isinstance(r, Ok) for r in results), "the OpenAPI document has invalid operations"
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert len(operations) >= 18
    failures: list[str] = []
    errors: list[str] = []
    for operation in operations:
        try:
            await asyncio.to_thread(run_operation, stack, operation, ids, failures)
        except (Exception, BaseExceptionGroup) as exc:  # every operation's failures, reported together
            errors.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:1500]}")
    assert not errors, "\n\n".join(errors)
