"""`sagsflow dev up`: the whole system on the embedded default, on loopback, stopped by Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import typer

from api.app import load_or_create_token
from eventlog.migrate import migrate_dsn
from sagsflow.config import Settings, get_settings
from sagsflow.embedded import (
    EmbeddedError,
    EmbeddedPostgres,
    TemporalDevServer,
    port_open,
    stop_process,
    venv_binary,
    wait_for_port,
)
from sagsflow.logs import configure_logging, get_logger

log = get_logger(__name__)

# The demo policy counts a day as a second; the simulated kommuner do the same, so their answer times relative to
# the deadline look like the real ones. Applications arrive faster than a day per second would give (300 a week
# would then be 43 a second, more than two cores carry): about one every two seconds.
DEMO_SIM_COMPRESSION = 86400
DEMO_LOAD_COMPRESSION = 1000


class AlreadyRunning(Exception):
    pass


@contextlib.contextmanager
def single_instance(data_dir: Path) -> Iterator[None]:
    """One dev stack per data dir: a second `dev up` must say so, not fight over ports and files."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_path = data_dir / "dev-up.lock"
    fh: IO[str] = open(lock_path, "a+")  # noqa: SIM115 - held for the stack's lifetime
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        pid = fh.read().strip() or "?"
        fh.close()
        raise AlreadyRunning(
            f"a Sagsflow dev stack is already running from {data_dir} (pid {pid}); stop it with Ctrl-C first"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    try:
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


class DevStack:
    """Starts what is not configured externally, in order, and stops it in reverse order."""

    def __init__(self, settings: Settings, *, demo: bool = False) -> None:
        self.settings = settings
        self.demo = demo
        self.data_dir = settings.data_dir.resolve()
        self.postgres: EmbeddedPostgres | None = None
        self.temporal: TemporalDevServer | None = None
        self._stoppers: list[Callable[[], None]] = []
        self.ops_token = settings.ops_token or load_or_create_token(self.data_dir / "ops-token")

    @property
    def database_url(self) -> str:
        if self.settings.database_url:
            return self.settings.database_url
        assert self.postgres is not None
        return self.postgres.url

    @property
    def temporal_address(self) -> str:
        if self.settings.temporal_address:
            return self.settings.temporal_address
        assert self.temporal is not None
        return self.temporal.address

    def _check_port_free(self, port: int, what: str) -> None:
        if port_open(port):
            raise EmbeddedError(f"port {port} for {what} is already in use: set another with the settings")

    def start(self) -> None:
        s = self.settings
        if not s.database_url:
            self._check_port_free(s.postgres_port, "PostgreSQL (SAGSFLOW_POSTGRES_PORT)")
            self.postgres = EmbeddedPostgres(
                self.data_dir / "pgdata", s.postgres_port, log_file=self.data_dir / "postgres.log"
            )
            self.postgres.start()
            self._stoppers.append(self.postgres.stop)
        self._check_port_free(s.api_port, "the API (SAGSFLOW_API_PORT)")
        self._check_port_free(s.sim_port, "the kommune simulator (SAGSFLOW_SIM_PORT)")
        if s.worker_metrics_port:
            self._check_port_free(s.worker_metrics_port, "the worker's metrics (SAGSFLOW_WORKER_METRICS_PORT)")
        if not s.temporal_address:
            self._check_port_free(s.temporal_port, "Temporal (SAGSFLOW_TEMPORAL_PORT)")
            self._check_port_free(s.temporal_ui_port, "the Temporal Web UI (SAGSFLOW_TEMPORAL_UI_PORT)")
            self.temporal = TemporalDevServer(
                port=s.temporal_port,
                ui_port=s.temporal_ui_port,
                metrics_port=s.temporal_metrics_port,
                db_file=self.data_dir / "temporal.db",
                codec_endpoint=f"http://{s.api_host}:{s.api_port}/codec/t/{self.ops_token}",
                log_file=self.data_dir / "temporal.log",
            )
            self.temporal.start()
            self._stoppers.append(self.temporal.stop)
        applied = asyncio.run(migrate_dsn(self.database_url))
        log.info("migrations applied", versions=applied)
        self._spawn("api", ["api"], wait_port=s.api_port)
        self._spawn("worker", ["worker"], wait_port=s.worker_metrics_port or None)
        # The simulator plays the 98 kommune systems: deliveries are pushed to it (or polled from the inbox).
        self._run(["sim", "keys"])
        sim_args = ["sim", "serve", "--compression", str(DEMO_SIM_COMPRESSION), "--extension-unit", "seconds"]
        self._spawn("sim", sim_args if self.demo else ["sim", "serve"], wait_port=s.sim_port)
        if self.demo:
            self._spawn(
                "load", ["sim", "load", "--compression", str(DEMO_LOAD_COMPRESSION), "--intake-token", self.ops_token]
            )
            self._spawn("caseworkers", ["sim", "caseworkers", "--ops-token", self.ops_token])

    def _run(self, args: list[str]) -> None:
        done = subprocess.run([venv_binary("sagsflow"), *args], env=self.child_env(), capture_output=True, text=True)
        if done.returncode != 0:
            raise EmbeddedError(f"`sagsflow {' '.join(args)}` failed: {done.stderr.strip()[-500:]}")

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            TEMPORAL_ADDRESS=self.temporal_address,
            DATABASE_URL=self.database_url,
            SAGSFLOW_DATA_DIR=str(self.data_dir),
        )
        if self.demo:
            # New cases start under the demo policy: the standard rules scaled to seconds.
            env["SAGSFLOW_SLA_POLICY"] = "demo-1"
        return env

    def _spawn(self, name: str, args: list[str], *, wait_port: int | None = None) -> None:
        """Run `sagsflow <args>` as a child with the stack's addresses; its output goes to <data dir>/<name>.log."""
        log_path = self.data_dir / f"{name}.log"
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                [venv_binary("sagsflow"), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.child_env(),
                start_new_session=True,
            )
        self._stoppers.append(lambda: stop_process(proc))
        if wait_port is not None:
            try:
                wait_for_port(wait_port, proc, f"sagsflow {name}", timeout=60)
            except EmbeddedError as exc:
                raise EmbeddedError(f"{exc}; see {log_path}") from None

    def stop(self) -> None:
        while self._stoppers:
            with contextlib.suppress(Exception):
                self._stoppers.pop()()

    def _sample_kommune_key(self) -> str | None:
        try:
            keys: dict[str, str] = json.loads((self.data_dir / "sim-keys.json").read_text())
        except (OSError, ValueError):
            return None
        return keys.get("329")

    def banner(self) -> str:
        ui = self.temporal.ui_url if self.temporal else "(external Temporal: see your cluster's UI)"
        lines = [
            "Sagsflow dev stack is up.",
            f"  Temporal Web UI : {ui}",
            f"  Temporal address: {self.temporal_address} (namespace {self.settings.temporal_namespace})",
            f"  API             : http://{self.settings.api_host}:{self.settings.api_port}  (OpenAPI: /docs)",
            f"  ops token       : {self.ops_token}  (also the codec token; kept in {self.data_dir / 'ops-token'})",
            f"  DATABASE_URL    : {self.database_url}",
            f"  data dir        : {self.data_dir}",
            f"  API metrics     : http://{self.settings.api_host}:{self.settings.api_port}/metrics",
            f"  kommune sim     : http://127.0.0.1:{self.settings.sim_port} (plays the 98 kommune systems)",
        ]
        key = self._sample_kommune_key()
        if key:
            lines.append(f"  kommune key 329 : {key}  (Ringsted; try GET /v1/kommune/tasks with it as a bearer token)")
        lines += [
            "Find cases in the Web UI or with the CLI, e.g.:",
            f"  temporal workflow list --address {self.temporal_address} --query 'KommuneKode=\"329\"'",
            f"  temporal workflow list --address {self.temporal_address} "
            "--query 'KommuneKode=\"329\" AND SlaOverdue=true'",
            f"  temporal workflow list --address {self.temporal_address} --query 'CaseStatus=\"ready_for_decision\"'",
            "Press Ctrl-C to stop.",
        ]
        return "\n".join(lines)


def run_dev_up(settings: Settings, *, demo: bool) -> int:
    try:
        with single_instance(settings.data_dir.resolve()):
            stack = DevStack(settings, demo=demo)
            stopping = False

            def _terminate(signum: int, _frame: object) -> None:
                nonlocal stopping
                if not stopping:
                    stopping = True
                    raise KeyboardInterrupt

            signal.signal(signal.SIGTERM, _terminate)
            try:
                stack.start()
                print(stack.banner(), flush=True)
                signal.pause() if hasattr(signal, "pause") else asyncio.run(asyncio.Event().wait())
            except KeyboardInterrupt:
                pass
            finally:
                print("Stopping the dev stack...", file=sys.stderr, flush=True)
                stack.stop()
            return 0
    except AlreadyRunning as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except EmbeddedError as exc:
        print(f"dev up failed: {exc}", file=sys.stderr)
        return 1


def register(app: typer.Typer) -> None:
    dev = typer.Typer(help="The embedded development stack.", no_args_is_help=True)

    @dev.command("up")
    def up(
        demo: bool = typer.Option(False, "--demo", help="Also run the demo load under the demo SLA policy."),
    ) -> None:
        """Start Temporal (with Web UI), PostgreSQL and migrations on loopback; Ctrl-C stops them."""
        settings = get_settings()
        configure_logging(settings.log_level, settings.log_format)
        raise typer.Exit(run_dev_up(settings, demo=demo))

    app.add_typer(dev, name="dev")
