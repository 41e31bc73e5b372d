"""`sagsflow forecast` as a person runs it on a kept simulation: one JSON object, from where the simulated log stops
to the next forum meeting, the same for the same seed, a what-if beside the baseline."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from domain.calendar import COPENHAGEN
from runtime.embedded import venv_binary

RUN = ["simulate", "--weeks", "3", "--rate", "20", "--jobs", "1", "--start", "2021-01-04", "--name", "x"]


def sagsflow(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_binary("sagsflow"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_forecast_of_a_kept_simulation(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SAGSFLOW_DATA_DIR": str(tmp_path / "data")}
    done = sagsflow(RUN, env, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    args = ["forecast", "--simulation", "x", "--json", "--runs", "200", "--what-if", "intake=1.5"]
    first = sagsflow(args, env, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    result = json.loads(first.stdout)
    # From the end of the simulated three weeks to the forum's March meeting.
    assert datetime.fromisoformat(result["as_of"]) < datetime(2021, 1, 25, tzinfo=COPENHAGEN)
    assert datetime.fromisoformat(result["to"]) == datetime(2021, 3, 1, tzinfo=COPENHAGEN)
    assert result["parameters"]["intake_per_week"] > 0
    base, what_if = result["baseline"], result["what_if"]
    assert base["scenario"] == "baseline" and what_if["scenario"] == "intake=1.5"
    for figure in ("open_cases", "waiting", "waiting_share", "overdue", "decisions"):
        b = base["total"][figure]
        assert b["p10"] <= b["median"] <= b["p90"], figure
    assert base["start"]["open_cases"] > 0
    assert what_if["total"]["open_cases"]["median"] > base["total"]["open_cases"]["median"]
    assert base["path"][-1]["at"] == result["to"]

    again = sagsflow(args, env, tmp_path)
    assert json.loads(again.stdout)["baseline"] == base

    table = sagsflow(["forecast", "--simulation", "x", "--runs", "50", "--as-of", "2021-01-18"], env, tmp_path)
    assert table.returncode == 0, table.stderr[-3000:]
    assert "waiting share" in table.stdout and "2021-01-17T23:00:00+00:00" in table.stdout

    bad = sagsflow(["forecast", "--simulation", "x", "--what-if", "speed=2"], env, tmp_path)
    assert bad.returncode == 2 and "expected intake=1.3" in bad.stderr and "Traceback" not in bad.stderr
