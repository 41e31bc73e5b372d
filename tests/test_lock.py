"""The libraries are part of what a replay computes: those the workflow code imports are pinned exactly in
pyproject.toml, and requirements.lock (what the image installs, written by `make lock`) holds every runtime
dependency and agrees with those pins. A dependency upgrade therefore shows up as a diff of both files and goes
through the replay gate (tests/workflows/test_replay.py, deploy/replay-gate.sh) before it is deployed."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK: dict[str, Any] = runpy.run_path(str(ROOT / "deploy" / "lock.py"))

# Run in a fresh interpreter: what importing the workflows and the data converter loads, plus what replaying every
# saved history loads on top (lazy imports while decoding and running the workflows), by distribution. What the
# replay module itself adds for its report (logging, masking) is left out, as is what the interpreter loaded first.
WORKFLOW_LIBRARIES = """
import sys
start = set(sys.modules)
import workflows.case, workflows.task, workflows.report, runtime.temporal
imported = set(sys.modules) - start
import asyncio, json
from importlib import metadata
from pathlib import Path
from runtime.crypto import KeyRing
from workflows.replay import from_files, replay
saved = Path("tests/histories")
before_replay = set(sys.modules)
report = asyncio.run(replay(from_files([saved]), KeyRing.from_json((saved / "test-keyring.json").read_text())))
assert report.ok, report.lines()
owners = metadata.packages_distributions()
loaded = {name.split(".")[0] for name in imported | (set(sys.modules) - before_replay)}
print(json.dumps(sorted({dist for top in loaded for dist in owners.get(top, [])})))
"""


def exact_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for req in LOCK["project_requirements"]():
        specs = list(req.specifier)
        if len(specs) == 1 and specs[0].operator == "==":
            pins[canonicalize_name(req.name)] = specs[0].version
    return pins


def test_every_library_the_workflow_code_imports_is_pinned_exactly() -> None:
    out = subprocess.run(
        [sys.executable, "-c", WORKFLOW_LIBRARIES], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    libraries = {canonicalize_name(d) for d in json.loads(out)} - {"sagsflow"}
    # The check would pass vacuously if nothing were found: these are certainly among them.
    assert {"temporalio", "pydantic", "pydantic-core", "holidays", "python-stdnum"} <= libraries
    unpinned = sorted(libraries - set(exact_pins()))
    assert unpinned == [], f"pin these with == in pyproject.toml (then `make lock`): {unpinned}"


def test_the_lock_holds_every_runtime_dependency_and_nothing_else() -> None:
    closure = LOCK["runtime_closure"](LOCK["project_requirements"]())
    locked = LOCK["read_lock"]()
    assert sorted(set(closure) - set(locked)) == [], "missing from requirements.lock: run `make lock`"
    assert sorted(set(locked) - set(closure)) == [], "requirements.lock holds what nothing requires: `make lock`"


def test_pyproject_and_the_lock_agree() -> None:
    locked = LOCK["read_lock"]()
    disagree = []
    for req in LOCK["project_requirements"]():
        version = locked.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            disagree.append(f"{req} (lock: {version})")
    assert disagree == [], f"pyproject.toml and requirements.lock disagree: {disagree}"


def test_the_lock_is_what_this_venv_runs() -> None:
    # `make venv` installs the lock first; a venv that drifted from it tests other libraries than production runs.
    assert LOCK["runtime_closure"](LOCK["project_requirements"]()) == LOCK["read_lock"]()
