"""The arrows docs/architecture.md draws, checked on the source: imports point down, SQL lives in eventlog/.

A new import that breaks one of these is a design change: change docs/architecture.md and this table together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Which of our packages each package may import. Lower layers first; cli/ is the top and may import anything.
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "runtime": {"domain"},
    "eventlog": {"domain", "runtime"},
    "reports": {"domain", "eventlog", "runtime"},
    # Workflows name their activities by importing the activity definitions (passed through the sandbox).
    "workflows": {"domain", "runtime", "activities"},
    "activities": {"domain", "runtime", "eventlog", "reports", "workflows"},
    "api": {"domain", "runtime", "eventlog", "workflows"},
    "workers": {"domain", "runtime", "eventlog", "reports", "workflows", "activities"},
    # The simulator plays the kommune systems over the API's own wire models; the worker it runs in-process is
    # handed to it by the caller (cli/, bench/, tests/), so nothing but the entry points imports workers/.
    "sim": {"domain", "runtime", "eventlog", "workflows", "activities", "api"},
    "cli": {"domain", "runtime", "eventlog", "reports", "workflows", "activities", "api", "workers", "sim"},
}
# Libraries a layer must not touch: the domain is pure (safe in the workflow sandbox); only the stores speak SQL.
FORBIDDEN_LIBRARIES: dict[str, set[str]] = {
    "domain": {"temporalio", "asyncpg", "httpx", "fastapi", "uvicorn", "structlog"},
    **{package: {"asyncpg"} for package in ALLOWED if package != "eventlog"},
}


def _imports(path: Path) -> set[str]:
    """Top-level names of every absolute import in the file, wherever it stands (also inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _modules() -> list[tuple[str, Path]]:
    return [(package, path) for package in ALLOWED for path in sorted((ROOT / package).rglob("*.py"))]


def test_every_top_level_package_has_a_place_in_the_table() -> None:
    setup = (ROOT / "pyproject.toml").read_text()
    listed = {line.strip().strip('",') for line in setup.split("packages = [", 1)[1].split("]", 1)[0].split(",")}
    top_level = {name.strip().strip('"') for name in listed if name.strip() and "." not in name.strip().strip('"')}
    assert top_level == set(ALLOWED), "a package was added or removed: give it its arrows here and in the docs"


@pytest.mark.parametrize(
    ("package", "path"), _modules(), ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else v
)
def test_imports_point_down(package: str, path: Path) -> None:
    imported = _imports(path)
    ours = (imported & set(ALLOWED)) - {package}
    assert ours <= ALLOWED[package], f"{package}/ may not import {sorted(ours - ALLOWED[package])}"
    forbidden = imported & FORBIDDEN_LIBRARIES.get(package, set())
    assert not forbidden, f"{package}/ may not import {sorted(forbidden)}"


def test_the_table_is_not_vacuous() -> None:
    # The parametrised test above must have something to check in every package.
    assert all(any(p == package for p, _ in _modules()) for package in ALLOWED)
    assert "asyncpg" in _imports(ROOT / "eventlog" / "store.py")


def test_the_architecture_page_describes_every_package() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    missing = [package for package in ALLOWED if f"| `{package}/` |" not in page]
    assert not missing, f"docs/architecture.md has no row for {missing}"
