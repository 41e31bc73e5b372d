"""A simulated system's token comes from a file or SAGSFLOW_STAFF_TOKEN, never from its arguments (which `ps` shows
to everyone); a missing one is a message saying how to give it, not a request without credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.staff_token import NoToken, staff_token


def test_a_token_file_wins_over_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("eyJ.from-file\n")
    assert staff_token(path, {"SAGSFLOW_STAFF_TOKEN": "eyJ.from-env"}) == "eyJ.from-file"
    assert staff_token(None, {"SAGSFLOW_STAFF_TOKEN": " eyJ.from-env "}) == "eyJ.from-env"


def test_no_token_says_how_to_give_one(tmp_path: Path) -> None:
    with pytest.raises(NoToken, match="SAGSFLOW_STAFF_TOKEN"):
        staff_token(None, {})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(NoToken, match="empty"):
        staff_token(tmp_path / "empty", {})
    with pytest.raises(NoToken, match="--token-file"):
        staff_token(tmp_path / "missing", {})
