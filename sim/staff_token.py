"""The token a simulated system acts under: read from a file or the environment, never taken as an argument.

A process's arguments are everyone's to read (`ps`, /proc/<pid>/cmdline); its environment and a 0600 file are its
owner's. `sagsflow dev up --demo` mints the demo's intake and caseworker identities and hands each child its token
in `SAGSFLOW_STAFF_TOKEN`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

STAFF_TOKEN_ENV = "SAGSFLOW_STAFF_TOKEN"


class NoToken(ValueError):
    pass


def staff_token(token_file: Path | None, environ: Mapping[str, str] | None = None) -> str:
    """The token in `token_file` if one is named, else in SAGSFLOW_STAFF_TOKEN; NoToken says how to give one."""
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise NoToken(f"--token-file {token_file}: {exc.strerror}") from None
        if not token:
            raise NoToken(f"--token-file {token_file} is empty")
        return token
    token = (os.environ if environ is None else environ).get(STAFF_TOKEN_ENV, "").strip()
    if not token:
        raise NoToken(
            f"no token: set {STAFF_TOKEN_ENV} (e.g. from `sagsflow staff add NAME --role R`) or pass --token-file"
        )
    return token
