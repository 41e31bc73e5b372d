"""`sagsflow dev up`: the whole system on the embedded default, on loopback, stopped by Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import IO

import typer

from eventlog.migrate import migrate_dsn
from runtime.config import Settings, get_settings
from runtime.embedded import (
    EmbeddedError,
    EmbeddedPostgres,
    TemporalDevServer,
    free_port,
    port_open,
    stop_process,
    venv_binary,
    wait_for_port,
)
from runtime.identity import LOCAL_KEY_FILE, LocalIssuer
from runtime.logs import configure_logging, get_logger
from sim import demo as demo_roles
from sim.staff_token import STAFF_TOKEN_ENV
from workflows.search_attributes import REGISTRATION

log = get_logger(__name__)

# The demo policy counts a day as a second; the simulated kommuner do the same, so their answer times relative to
# the deadline look like the real ones. Applications arrive faster than a day per second would give (300 a week
# would then be 43 a second, more than two cores carry): about one every two seconds.
DEMO_SIM_COMPRESSION = 86400
DEMO_LOAD_COMPRESSION = 1000

ENV_FILE_NAME = "env"
# The demo's own systems act as named identities of the local issuer. They run as long as the demo does, so their
# tokens outlive a person's working-day token; they live only in those children's environment.
DEMO_TOKEN_TTL = timedelta(days=365)
HOW_TO_GET_A_TOKEN = "export TOKEN=$(sagsflow staff add 'Karin Sagsbehandler' --role caseworker --role team-lead)"
CODEC_AUTH = 'export TEMPORAL_CODEC_AUTH="Bearer $TOKEN"'

# Set by the env file: which services this dev stack started itself. A shell that sourced the env file and runs
# `sagsflow dev up` again must get the embedded servers again, not treat their addresses as external ones.
EMBEDDED_MARKER = "SAGSFLOW_DEV_EMBEDDED"


def embedded_postgres_url(port: int) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def without_own_addresses(settings: Settings, environ: dict[str, str] | None = None) -> Settings:
    """The settings with TEMPORAL_ADDRESS / DATABASE_URL dropped where they only repeat what a sourced env file
    said about servers a dev stack started itself (same address as the embedded one would have)."""
    embedded = set((environ if environ is not None else os.environ).get(EMBEDDED_MARKER, "").split())
    update: dict[str, object] = {}
    if "temporal" in embedded and settings.temporal_address == f"127.0.0.1:{settings.temporal_port}":
        update["temporal_address"] = None
    if "postgres" in embedded and settings.database_url == embedded_postgres_url(settings.postgres_port):
        update["database_url"] = None
    return settings.model_copy(update=update) if update else settings


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
        self.env_file_written: str | None = None

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
            # The real UI has no login: it listens where only the login gateway (on the public UI port) is told,
            # and its codec endpoint is the gateway's, which adds the signed-in person's token and purpose.
            self.temporal = TemporalDevServer(
                search_attributes=REGISTRATION,
                port=s.temporal_port,
                ui_port=free_port(),
                metrics_port=s.temporal_metrics_port,
                db_file=self.data_dir / "temporal.db",
                codec_endpoint=f"{self.web_ui_url}/codec",
                log_file=self.data_dir / "temporal.log",
            )
            self.temporal.start()
            self._stoppers.append(self.temporal.stop)
        applied = asyncio.run(migrate_dsn(self.database_url))
        log.info("migrations applied", versions=applied)
        self._spawn("api", ["api"], wait_port=s.api_port)
        if self.temporal is not None and self.temporal.ui_url:
            gateway = ["dev", "ui-gateway", "--port", str(s.temporal_ui_port)]
            gateway += ["--ui-url", self.temporal.ui_url, "--api-url", self.api_url]
            self._spawn("ui-gateway", gateway, wait_port=s.temporal_ui_port)
        self._spawn("worker", ["worker"], wait_port=s.worker_metrics_port or None)
        # The simulator plays the 98 kommune systems: deliveries are pushed to it (or polled from the inbox).
        self._run(["sim", "keys"])
        sim_args = ["sim", "serve", "--compression", str(DEMO_SIM_COMPRESSION), "--extension-unit", "seconds"]
        if self.demo:
            # What the demo leaves to people: see `sim.demo`.
            sim_args += ["--late-kommune", demo_roles.YOUR_KOMMUNE]
            sim_args += ["--late-after-days", str(demo_roles.YOUR_KOMMUNE_ANSWERS_AFTER_DAYS)]
        self._spawn("sim", sim_args if self.demo else ["sim", "serve"], wait_port=s.sim_port)
        if self.demo:
            intake, caseworker = self.demo_tokens()
            load_args = ["sim", "load", "--compression", str(DEMO_LOAD_COMPRESSION)]
            load_args += ["--kommune-share", f"{demo_roles.YOUR_KOMMUNE}={demo_roles.YOUR_KOMMUNE_SHARE}"]
            self._spawn("load", load_args, token=intake)
            caseworker_args = ["sim", "caseworkers", "--leave-kommune", demo_roles.LEFT_FOR_PEOPLE]
            self._spawn("caseworkers", caseworker_args, token=caseworker)

    def demo_tokens(self) -> tuple[str, str]:
        """The demo's intake system and its caseworkers, as identities the API checks like anyone else's."""
        if self.settings.oidc_issuer:
            raise EmbeddedError(
                "--demo signs its own staff tokens with the local issuer; unset SAGSFLOW_OIDC_ISSUER for the demo"
            )
        issuer = LocalIssuer(self.data_dir / LOCAL_KEY_FILE)
        intake = issuer.mint("Demo intake", ["intake"], subject="demo-intake", ttl=DEMO_TOKEN_TTL)
        caseworker = issuer.mint("Demo sagsbehandler", ["caseworker"], subject="demo-caseworker", ttl=DEMO_TOKEN_TTL)
        return intake, caseworker

    def _run(self, args: list[str]) -> None:
        done = subprocess.run([venv_binary("sagsflow"), *args], env=self.child_env(), capture_output=True, text=True)
        if done.returncode != 0:
            raise EmbeddedError(f"`sagsflow {' '.join(args)}` failed: {done.stderr.strip()[-500:]}")

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        # A token in the shell that started the stack belongs to that person, not to every child.
        env.pop(STAFF_TOKEN_ENV, None)
        env.update(
            TEMPORAL_ADDRESS=self.temporal_address,
            DATABASE_URL=self.database_url,
            SAGSFLOW_DATA_DIR=str(self.data_dir),
        )
        # The addresses above are this stack's own servers: its processes may generate their dev keys.
        env.setdefault("SAGSFLOW_ENV", "development")
        if self.demo:
            # New cases start under the demo policy: the standard rules scaled to seconds.
            env["SAGSFLOW_SLA_POLICY"] = "demo-1"
            # The kommune a person plays polls its inbox (the worker delivers there, the simulator reads it too).
            inbox = {k.strip() for k in env.get("SAGSFLOW_INBOX_KOMMUNER", "").split(",") if k.strip()}
            env["SAGSFLOW_INBOX_KOMMUNER"] = ",".join(sorted(inbox | {demo_roles.YOUR_KOMMUNE}))
        return env

    def _spawn(self, name: str, args: list[str], *, wait_port: int | None = None, token: str | None = None) -> None:
        """Run `sagsflow <args>` as a child with the stack's addresses; its output goes to <data dir>/<name>.log.
        A `token` goes into that child's environment only."""
        log_path = self.data_dir / f"{name}.log"
        env = self.child_env()
        if token is not None:
            env[STAFF_TOKEN_ENV] = token
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                [venv_binary("sagsflow"), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
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

    def _kommune_key(self, kode: str) -> str | None:
        try:
            keys: dict[str, str] = json.loads((self.data_dir / "sim-keys.json").read_text())
        except (OSError, ValueError):
            return None
        return keys.get(kode)

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    @property
    def web_ui_url(self) -> str:
        """The Web UI as people reach it: the login gateway on the public UI port."""
        return f"http://127.0.0.1:{self.settings.temporal_ui_port}"

    @property
    def env_file(self) -> Path:
        """As the user named the data dir (relative to where they ran `dev up`), so the banner reads naturally."""
        return self.settings.data_dir / ENV_FILE_NAME

    def env_vars(self) -> dict[str, str]:
        """What a second shell needs to reach this stack: the `temporal` CLI reads TEMPORAL_* (codec included),
        `sagsflow` reads TEMPORAL_ADDRESS, DATABASE_URL and SAGSFLOW_*, the guide's curl commands the rest."""
        s = self.settings
        values = {
            "TEMPORAL_ADDRESS": self.temporal_address,
            "TEMPORAL_NAMESPACE": s.temporal_namespace,
            # The CLI appends /decode. Its TEMPORAL_CODEC_AUTH is a person's own token, which this file never holds:
            # the person sets it after `sagsflow staff add` (the banner and the README say how).
            "TEMPORAL_CODEC_ENDPOINT": f"{self.api_url}/codec",
            "DATABASE_URL": self.database_url,
            # Without it, the addresses above would put a second shell's `sagsflow` into production mode.
            "SAGSFLOW_ENV": "development",
            "SAGSFLOW_DATA_DIR": str(self.data_dir),
            "SAGSFLOW_API": self.api_url,
        }
        if self.temporal is not None and self.temporal.ui_url:
            values["SAGSFLOW_WEB_UI"] = self.web_ui_url
        key = self._kommune_key(demo_roles.YOUR_KOMMUNE)
        if key:
            values["KOMMUNE_KODE"] = demo_roles.YOUR_KOMMUNE
            values["KOMMUNE_KEY"] = key
        # The ports too, so `sagsflow` commands that derive an address from them (and a `dev up` rerun from this
        # shell) find the same servers.
        ports = {
            "SAGSFLOW_TEMPORAL_PORT": s.temporal_port,
            "SAGSFLOW_TEMPORAL_UI_PORT": s.temporal_ui_port,
            "SAGSFLOW_TEMPORAL_METRICS_PORT": s.temporal_metrics_port,
            "SAGSFLOW_POSTGRES_PORT": s.postgres_port,
            "SAGSFLOW_API_PORT": s.api_port,
            "SAGSFLOW_SIM_PORT": s.sim_port,
            "SAGSFLOW_WORKER_METRICS_PORT": s.worker_metrics_port,
        }
        values.update({name: str(port) for name, port in ports.items()})
        embedded = [name for name, server in (("temporal", self.temporal), ("postgres", self.postgres)) if server]
        values[EMBEDDED_MARKER] = " ".join(embedded)
        return values

    def env_file_text(self) -> str:
        bin_dir = str(Path(venv_binary("temporal")).parent)
        lines = [
            f"# Written by `sagsflow dev up` (pid {os.getpid()}) for the stack running from {self.data_dir};",
            "# removed when it stops. Load it into a second shell with: source " + shlex.quote(str(self.env_file)),
            # The venv's bin first (temporal, sagsflow, python3), once however often the file is sourced.
            f'case :$PATH: in *:{shlex.quote(bin_dir)}:*) ;; *) export PATH={shlex.quote(bin_dir)}:"$PATH" ;; esac',
        ]
        lines += [f"export {name}={shlex.quote(value)}" for name, value in self.env_vars().items()]
        return "\n".join(lines) + "\n"

    def write_env_file(self) -> None:
        """Atomically, mode 0600 from the first byte (it holds a kommune's API key): a shell sourcing it while a restart
        rewrites it reads the old file or the new one, never half of one."""
        path = self.data_dir / ENV_FILE_NAME
        tmp = path.with_name(f".{ENV_FILE_NAME}.{os.getpid()}.tmp")
        text = self.env_file_text()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
        self.env_file_written = text
        # Stops run last-in first-out: the file goes first, so no one sources it while the stack winds down.
        self._stoppers.append(self.remove_env_file)

    def remove_env_file(self) -> None:
        """Only the file this stack wrote: a stopped stack's addresses must not be sourced as if it still ran."""
        path = self.data_dir / ENV_FILE_NAME
        try:
            if self.env_file_written is not None and path.read_text() == self.env_file_written:
                path.unlink()
        except FileNotFoundError:
            pass

    def banner(self) -> str:
        ui = f"{self.web_ui_url}/login" if self.temporal else "(external Temporal: see your cluster's UI)"
        where = "" if self.env_file.is_absolute() else " (from this directory)"
        you, left = demo_roles.YOUR_KOMMUNE, demo_roles.LEFT_FOR_PEOPLE
        lines = [
            "Sagsflow dev stack is up.",
            f"  Temporal Web UI : {ui}  (log in with your token; decodes payloads in your name)",
            f"  Temporal address: {self.temporal_address} (namespace {self.settings.temporal_namespace})",
            f"  API             : {self.api_url}  (OpenAPI: /docs, metrics: /metrics)",
            f"  DATABASE_URL    : {self.database_url}",
            f"  data dir        : {self.data_dir}",
            f"  kommune sim     : http://127.0.0.1:{self.settings.sim_port} (plays the 98 kommune systems)",
        ]
        key = self._kommune_key(you)
        if self.demo:
            minutes = round(demo_roles.YOUR_KOMMUNE_ANSWERS_AFTER_DAYS * 86400 / DEMO_SIM_COMPRESSION / 60)
            if key:
                lines.append(f"  kommune key {you} : {key}")
            lines += [
                f"You play kommune {you} ({demo_roles.YOUR_KOMMUNE_NAME})'s system: its tasks wait in its inbox, get "
                "reminders and go overdue;",
                f"  the simulator answers them only after {demo_roles.YOUR_KOMMUNE_ANSWERS_AFTER_DAYS} demo-days "
                f"(about {minutes} minutes).",
                f"Kommune {left} ({demo_roles.LEFT_FOR_PEOPLE_NAME})'s cases are left for you to decide; the demo "
                "caseworkers decide all others.",
            ]
        lines += [
            f"In a second shell{where}, load the addresses above, get yourself a token (for the API, the `temporal` "
            "CLI's codec and the Web UI's login), then try (the README's operations guide has more):",
            f"  $ source {shlex.quote(str(self.env_file))}",
            f"  $ {HOW_TO_GET_A_TOKEN}",
            f"  $ {CODEC_AUTH}",
            f'  $ temporal workflow list --query \'CaseStatus="ready_for_decision" AND KommuneKode="{left}"\'',
            "  $ temporal workflow list --query "
            f'\'WorkflowType="OplysningTaskWorkflow" AND KommuneKode="{you}" AND SlaOverdue=true\'',
        ]
        if self.demo and key:
            inbox = '"$SAGSFLOW_API/v1/kommune/tasks?limit=3"'
            lines.append(f'  $ curl -sS -H "Authorization: Bearer $KOMMUNE_KEY" {inbox}')
        lines.append("Press Ctrl-C to stop.")
        return "\n".join(lines)


def run_dev_up(settings: Settings, *, demo: bool) -> int:
    settings = without_own_addresses(settings)
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
                stack.write_env_file()
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

    @dev.command("ui-gateway", hidden=True)
    def ui_gateway(
        port: int = typer.Option(..., help="The public Web UI port to listen on (loopback)"),
        ui_url: str = typer.Option(..., help="The real Temporal UI, on its private loopback port"),
        api_url: str = typer.Option(..., help="Our API: checks tokens (/v1/whoami) and decodes (/codec)"),
    ) -> None:
        """The Web UI's login gateway, started by `dev up` (see api/ui_gateway.py)."""
        import uvicorn

        from api.ui_gateway import GatewayConfig, create_gateway

        settings = get_settings()
        configure_logging(settings.log_level, settings.log_format)
        gateway = create_gateway(GatewayConfig(ui_url=ui_url, api_url=api_url))
        # No access log: its lines would carry the UI's query strings, which people type case searches into.
        uvicorn.run(gateway, host="127.0.0.1", port=port, log_level="warning", access_log=False)

    app.add_typer(dev, name="dev")
