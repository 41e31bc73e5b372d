"""`GET /v1/ops/forecast` through the production app on a real log: the same JSON as `sagsflow forecast --json` for
the same options, and bad input refused field by field without repeating it (roles: tests/api/test_role_matrix.py)."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from typing import Any

from api.ops import MAX_FORECAST_RUNS
from runtime.embedded import venv_binary
from tests.api.conftest import Stack


async def _cli(*args: str) -> dict[str, Any]:
    # The stack's environment (DATABASE_URL and the rest) is the shell's an operator would run the command in.
    proc = await asyncio.create_subprocess_exec(
        venv_binary("sagsflow"),
        *args,
        env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-3000:]
    result: dict[str, Any] = json.loads(out)
    return result


async def test_forecast_route_answers_as_the_cli_does(stack: Stack) -> None:
    created = [await stack.apply(kode) for kode in ("461", "751", "461")]
    for case in created:
        await stack.open_task(case["case_id"])
    await asyncio.sleep(0.5)  # anything stamped before the instant below is in the log by the time it is read
    as_of = datetime.now(UTC).isoformat()
    await asyncio.sleep(0.5)
    options = {"as_of": as_of, "runs": "60", "seed": "3", "what_if": ["intake=1.5", "kommune=461:speed=2"]}

    r = await stack.http.get("/v1/ops/forecast", params=options, headers=stack.headers("Læser", "reader"))
    assert r.status_code == 200, r.text
    api = r.json()
    cli = await _cli(
        "forecast", "--json", "--as-of", as_of, "--runs", "60", "--seed", "3",
        "--what-if", "intake=1.5", "--what-if", "kommune=461:speed=2",
    )  # fmt: skip
    assert api.pop("seconds") >= 0 and cli.pop("seconds") >= 0  # the only field that is not the forecast's
    assert api == cli
    assert api["baseline"]["start"]["waiting"] >= 3 and api["what_if"]["scenario"] != "baseline"


async def test_bad_forecast_options_are_refused_by_field_without_echo(stack: Stack) -> None:
    headers = stack.ops_headers
    cases: list[tuple[dict[str, Any], list[object]]] = [
        ({"what_if": ["intake=1.2", "speed=2x9"]}, ["query", "what_if", 1]),
        ({"what_if": "kommune=999999:speed=2"}, ["query", "what_if", 0]),
        ({"runs": str(MAX_FORECAST_RUNS + 1)}, ["query", "runs"]),
        ({"as_of": "2021-02-30"}, ["query", "as_of"]),
        ({"as_of": "2021-03-01", "to": "2021-02-01"}, ["query", "to"]),
        ({"as_of": "2021-03-01", "to": "2121-03-01"}, ["query", "to"]),  # a century of weekly steps: no
        ({"as_of": "0001-01-02"}, ["query", "as_of"]),
    ]
    for params, loc in cases:
        r = await stack.http.get("/v1/ops/forecast", params=params, headers=headers)
        assert r.status_code == 422, (params, r.text)
        detail = r.json()["detail"]
        assert [e["loc"] for e in detail] == [loc], detail
        for value in params.values():
            for text in value if isinstance(value, list) else [value]:
                assert len(text) < 4 or text not in r.text, r.text
