"""Write requirements.lock: every runtime dependency of sagsflow, pinned to the version installed in this venv.

`make lock` runs it. The closure is read from pyproject.toml's `dependencies` (not the dev extra), then from each
installed distribution's own requirements (markers evaluated here: Linux, the image's platform), so the lock holds
exactly what `pip install .` would install and nothing that only the tests use. The image installs from the lock
(`pip install -r requirements.lock`, then the project with `--no-deps`), and so does `make venv`, so the tests and
the replay gate run on the libraries that production runs. tests/test_lock.py checks the lock against pyproject.

A dependency upgrade: change the pin or range in pyproject.toml, `pip install` it into the venv, `make lock`,
then the replay gate (`make test`'s tests/workflows/test_replay.py and deploy/replay-gate.sh against production
histories) before the new lock is deployed: the libraries the workflows import decide what a replay computes.
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
HEADER = """\
# Every runtime dependency of sagsflow, pinned: the image installs exactly these (pip install -r requirements.lock,
# then the project with --no-deps). Written by `make lock` (deploy/lock.py) from the venv; do not edit by hand.
# An upgrade goes through the replay gate before it is deployed: see deploy/lock.py and deploy/replay-gate.sh.
"""


def project_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[Requirement]:
    data = tomllib.loads(pyproject.read_text())
    return [Requirement(line) for line in data["project"]["dependencies"]]


def _applies(req: Requirement, extras: frozenset[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": extra}) for extra in extras or {""})


def runtime_closure(requirements: list[Requirement]) -> dict[str, str]:
    """Canonical name → installed version, for the requirements and everything they require (with the extras
    asked for). A requirement that is not installed is an error: the lock would not be complete."""
    found: dict[str, str] = {}
    todo: list[tuple[Requirement, frozenset[str]]] = [(r, frozenset()) for r in requirements]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req, parent_extras = todo.pop()
        if not _applies(req, parent_extras):
            continue
        name = canonicalize_name(req.name)
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"{req.name} is required but not installed: make venv first") from None
        found[name] = dist.version
        todo += [(Requirement(line), frozenset(req.extras)) for line in dist.requires or []]
    return found


def lock_text(closure: dict[str, str]) -> str:
    return HEADER + "".join(f"{name}=={version}\n" for name, version in sorted(closure.items()))


def read_lock(path: Path = LOCK) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def main() -> None:
    LOCK.write_text(lock_text(runtime_closure(project_requirements())))
    print(f"wrote {LOCK.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
