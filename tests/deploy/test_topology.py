"""The production topology without containers: deploy/compose.yaml, started as written.

A Temporal dev server and a PostgreSQL run apart from the app, as the cluster and the managed database would. Search
attributes are registered by the compose service that does it in production (its script, its environment). Then two
`sagsflow api` and two `sagsflow worker` processes start, each configured only through the environment and the secret
files compose gives its service: read from the file, `/run/secrets/<name>` written with test content, and host names
mapped to loopback (Temporal to the dev server, the OIDC provider to `sim/identity_provider.py` served here). Each
container has a network and a filesystem of its own; on one host each process gets a port and a working directory of
its own instead. Nothing sets development mode: these processes run in production mode for real.

What a deployment must get right across replicas: a case filed through one API is read, answered and decided through
the other; a document stored by one is read by the other; both compute the same subject ids, so an auditor's search
answers the same through either; the Web UI's origin may call the codec with a person's provider token; and killing
one worker with SIGKILL mid-case leaves the other to finish it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
import yaml
from fastapi import FastAPI
from google.protobuf import json_format
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from cli.api import ui_origins
from runtime.config import Settings
from runtime.crypto import KeyRing, load_or_create_secret, subject_id_of_cpr
from runtime.embedded import free_port, venv_binary
from runtime.httpserve import serve
from sim.identity_provider import IdentityProvider
from tests.api.conftest import eventually as eventually_within
from tests.api.conftest import fresh_database
from tests.domain.factories import application_json

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"
SECRETS_MOUNT = "/run/secrets/"
KOMMUNE = "461"  # an inbox kommune in the test's channels file: the test plays its system
CPR = "010357-1234"
# Files the embedded default generates when a secret is missing; production mode must generate none of them.
GENERATED = {
    "codec-keys.json",
    "eventlog-keys.json",
    "documents-keys.json",
    "subject-pepper",
    "staff-issuer-key.pem",
    "sim-push-secret",
}
PDF = b"%PDF-1.4 arbejdshistorik"


@dataclass(frozen=True)
class Service:
    """A compose service as far as it configures a process: its environment, secrets and command."""

    name: str
    environment: dict[str, str]
    secrets: tuple[str, ...]
    command: tuple[str, ...]
    entrypoint: tuple[str, ...]
    volumes: tuple[str, ...]


def compose_services() -> dict[str, Service]:
    spec = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(spec, dict)
    services: dict[str, Service] = {}
    for name, body in spec["services"].items():
        services[name] = Service(
            name=name,
            environment={str(k): str(v) for k, v in (body.get("environment") or {}).items()},
            secrets=tuple(body.get("secrets") or ()),
            command=tuple(body.get("command") or ()),
            entrypoint=tuple(body.get("entrypoint") or ()),
            volumes=tuple(body.get("volumes") or ()),
        )
    return services


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def secret_contents(database_url: str) -> dict[str, str]:
    """Test content for every secret the Sagsflow services mount, by compose secret name."""
    return {
        "database_url": database_url,
        "codec_keys": KeyRing.generate("codec-test-1").to_json(),
        "eventlog_keys": KeyRing.generate("eventlog-test-1").to_json(),
        "documents_keys": KeyRing.generate("documents-test-1").to_json(),
        "subject_pepper": base64.b64encode(secrets.token_bytes(32)).decode(),
        # The test's kommune polls its inbox; no other kommune is configured (nothing routes to a simulator).
        "channels": json.dumps({"kommuner": {KOMMUNE: {"kind": "inbox"}}}),
    }


def on_this_host(environment: Mapping[str, str], secrets_dir: Path, hosts: Mapping[str, str]) -> dict[str, str]:
    """A service's environment as on this host: secret mounts in `secrets_dir`, host names mapped to loopback."""
    mapped: dict[str, str] = {}
    for name, value in environment.items():
        if value.startswith(SECRETS_MOUNT):
            value = str(secrets_dir / value.removeprefix(SECRETS_MOUNT))
        for host, local in hosts.items():
            value = value.replace(host, local)
        mapped[name] = value
    return mapped


def clean_environment() -> dict[str, str]:
    """This machine's environment without any setting of ours: the test suite runs in development mode, and no
    process here may inherit that or any other setting compose does not give it."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SAGSFLOW_", "TEMPORAL_", "DATABASE_URL"))}


async def eventually(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    # Four processes starting on a shared machine: more patience than one in-process stack needs.
    await eventually_within(probe, what, within=45.0)


@dataclass
class Process:
    name: str
    proc: asyncio.subprocess.Process
    cwd: Path
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def identity_prefix(self) -> str:
        # The Temporal SDK names a worker "<pid>@<host>" in the histories it writes.
        return f"{self.proc.pid}@"


async def start(name: str, args: list[str], env: dict[str, str], root: Path) -> Process:
    cwd = root / name
    cwd.mkdir()
    log = root / f"{name}.log"
    with open(log, "wb") as out:
        proc = await asyncio.create_subprocess_exec(
            venv_binary("sagsflow"),
            *args,
            env=env,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    return Process(name, proc, cwd, log)


async def stop(process: Process) -> None:
    if process.proc.returncode is not None:
        return
    process.proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.proc.wait(), timeout=20)
    except TimeoutError:
        process.proc.kill()
        await process.proc.wait()


async def run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, f"{args[0]} failed: {err.decode(errors='replace')[-2000:]}"
    return out.decode()


@dataclass
class Topology:
    apis: list[str]
    workers: list[Process]
    api_processes: list[Process]
    idp: IdentityProvider
    temporal: Client
    database_url: str
    pepper: bytes
    kommune_key: str
    ui_origin: str
    roles_claim: str

    def person(self, subject: str, *roles: str) -> dict[str, str]:
        # The roles where compose tells the API to look for them (a dotted path for a nested claim).
        *outer, last = self.roles_claim.split(".")
        claim: dict[str, Any] = {last: list(roles)}
        for name in reversed(outer):
            claim = {name: claim}
        token = self.idp.token(subject, () if outer else roles, extra=claim if outer else None)
        return {"Authorization": f"Bearer {token}"}

    def kommune(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.kommune_key}"}


def identity_provider_app(idp: IdentityProvider, jwks_path: str) -> FastAPI:
    """The provider fake, publishing its keys at the path compose names (a real provider's certs address)."""
    app = idp.app()

    @app.get(jwks_path)
    async def jwks() -> dict[str, Any]:
        return idp.jwks()

    return app


@pytest.fixture
async def topology(pg_server_url: str, tmp_path: Path) -> AsyncIterator[Topology]:
    services = compose_services()
    api_service, worker_service = services["api"], services["worker"]
    registration = services["register-search-attributes"]
    ui = services["temporal-ui"].environment

    # The stand-in for the Temporal cluster: a dev server with nothing registered yet.
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=venv_binary("temporal"),
        dev_server_extra_args=[
            "--dynamic-config-value",
            "system.forceSearchAttributesCacheRefreshOnRead=true",
            "--log-level",
            "error",
        ],
        ui=False,
    )
    processes: list[Process] = []
    try:
        temporal_address = env.client.service_client.config.target_host
        issuer = api_service.environment["SAGSFLOW_OIDC_ISSUER"]
        jwks_url = api_service.environment["SAGSFLOW_OIDC_JWKS_URL"]
        # One provider behind both addresses; compose names it on both (the UI's login and the API's verifier).
        assert origin(jwks_url) == origin(issuer)
        idp_port = free_port()
        idp_origin = f"http://127.0.0.1:{idp_port}"
        hosts = {"temporal:7233": temporal_address, origin(issuer): idp_origin, "0.0.0.0": "127.0.0.1"}
        idp = IdentityProvider(
            issuer=issuer.replace(origin(issuer), idp_origin),
            audience=api_service.environment["SAGSFLOW_OIDC_AUDIENCE"],
        )

        # Search attributes as compose registers them: its service's script and environment.
        script_mount = next(v for v in registration.volumes if v.split(":")[1] == registration.entrypoint[-1])
        script = COMPOSE.parent / script_mount.split(":")[0]
        reg_env = clean_environment() | on_this_host(registration.environment, tmp_path, hosts)
        reg_env["PATH"] = f"{Path(venv_binary('temporal')).parent}:{reg_env.get('PATH', '')}"
        await run([*registration.entrypoint[:-1], str(script)], reg_env, tmp_path)

        async with (
            fresh_database(pg_server_url, migrated=False) as database_url,
            serve(identity_provider_app(idp, urlsplit(jwks_url).path), port=idp_port),
        ):
            secrets_dir = tmp_path / "secrets"
            secrets_dir.mkdir()
            contents = secret_contents(database_url)
            for name in {*api_service.secrets, *worker_service.secrets}:
                assert name in contents, f"compose mounts a secret {name!r} this test does not know"
                (secrets_dir / name).write_text(contents[name])

            def process_env(service: Service, **overrides: str) -> dict[str, str]:
                environment = clean_environment() | on_this_host(service.environment, secrets_dir, hosts) | overrides
                # Production for real: compose must not leave these processes in development mode.
                assert environment.get("SAGSFLOW_ENV", "auto") != "development"
                return environment

            api_env = process_env(api_service)
            for i in (1, 2):
                # Each worker's metrics port: in compose every container has its own network namespace.
                worker_env = process_env(worker_service, SAGSFLOW_WORKER_METRICS_PORT=str(free_port()))
                processes.append(await start(f"worker-{i}", list(worker_service.command), worker_env, tmp_path))
            apis: list[str] = []
            for i in (1, 2):
                port = free_port()
                command = list(api_service.command)
                command[command.index("--port") + 1] = str(port)
                command[command.index("--host") + 1] = "127.0.0.1"
                processes.append(await start(f"api-{i}", command, api_env, tmp_path))
                apis.append(f"http://127.0.0.1:{port}")

            async with httpx.AsyncClient(timeout=10) as http:
                for url, process in zip(apis, processes[2:], strict=True):

                    async def ready(url: str = url, process: Process = process) -> bool:
                        assert process.proc.returncode is None, f"{process.name} stopped:\n{process.output()[-3000:]}"
                        try:
                            return (await http.get(f"{url}/readyz")).status_code == 200
                        except httpx.TransportError:
                            return False

                    await eventually(ready, f"{process.name} ready")
            for process in processes[:2]:

                async def started(process: Process = process) -> bool:
                    assert process.proc.returncode is None, f"{process.name} stopped:\n{process.output()[-3000:]}"
                    return "worker started" in process.output()

                await eventually(started, f"{process.name} polling")

            # The kommune's system gets its key as an operator makes one: the CLI, in the API's environment.
            key = (await run([venv_binary("sagsflow"), "kommune", "add-key", KOMMUNE], api_env, tmp_path)).strip()
            pepper = load_or_create_secret(secrets_dir / "subject_pepper", create=False)
            client = await Client.connect(temporal_address, namespace=api_service.environment["TEMPORAL_NAMESPACE"])
            yield Topology(
                apis=apis,
                workers=processes[:2],
                api_processes=processes[2:],
                idp=idp,
                temporal=client,
                database_url=database_url,
                pepper=pepper,
                kommune_key=key,
                ui_origin=origin(ui["TEMPORAL_AUTH_CALLBACK_URL"]),
                roles_claim=api_service.environment.get("SAGSFLOW_OIDC_ROLES_CLAIM", "roles"),
            )
    finally:
        await asyncio.gather(*(stop(p) for p in processes))
        await env.shutdown()
    for process in processes:
        generated = [p.name for p in process.cwd.rglob("*") if p.name in GENERATED]
        assert generated == [], f"{process.name} generated {generated} in production mode"


def test_ui_origins_are_a_setting_with_the_dev_ui_as_default() -> None:
    assert ui_origins(Settings(ui_origins=" https://temporal.example.dk/, http://127.0.0.1:8080")) == [
        "https://temporal.example.dk",
        "http://127.0.0.1:8080",
    ]
    assert ui_origins(Settings(temporal_ui_port=9233)) == ["http://127.0.0.1:9233", "http://localhost:9233"]


def test_compose_gives_the_ui_and_the_api_one_provider_and_the_ui_origin() -> None:
    services = compose_services()
    api, ui = services["api"].environment, services["temporal-ui"].environment
    # The UI passes the person's access token from its login to our codec, which verifies it as the API does.
    assert ui["TEMPORAL_CODEC_PASS_ACCESS_TOKEN"] == "true"
    assert ui["TEMPORAL_AUTH_PROVIDER_URL"] == api["SAGSFLOW_OIDC_ISSUER"]
    # The browser calls the codec from the UI's page: the API admits that origin.
    assert origin(ui["TEMPORAL_AUTH_CALLBACK_URL"]) in api["SAGSFLOW_UI_ORIGINS"].split(",")
    assert ui["TEMPORAL_CODEC_ENDPOINT"].endswith("/codec")


async def test_two_apis_and_two_workers_configured_as_compose_configures_them(topology: Topology) -> None:
    api1, api2 = topology.apis
    caseworker = topology.person("karin-sagsbehandler", "caseworker")
    async with httpx.AsyncClient(timeout=30) as http:

        async def call(method: str, url: str, **kwargs: Any) -> httpx.Response:
            """As a client system calls: a 503 means retry later, with the same idempotency key (here: while
            Temporal hands the workflows the killed worker held to the other one)."""
            answered: list[httpx.Response] = []

            async def answers() -> bool:
                answered[:] = [await http.request(method, url, **kwargs)]
                return answered[0].status_code != 503

            await eventually(answers, f"{method} {url} answered")
            return answered[0]

        # Filed through API 1 by an intake system signed in at the provider.
        body = {"idempotency_key": f"topology-{uuid.uuid4().hex}", "application": application_json(KOMMUNE)}
        r = await http.post(f"{api1}/v1/applications", json=body, headers=topology.person("intake-system", "intake"))
        assert r.status_code == 201, r.text
        case_id = str(r.json()["case_id"])

        # Read through API 2.
        async def summary() -> dict[str, Any]:
            r = await http.get(
                f"{api2}/v1/ops/cases/{case_id}", params={"purpose": "topology: follow the case"}, headers=caseworker
            )
            assert r.status_code == 200, r.text
            found: dict[str, Any] = r.json()
            return found

        async def case_in(*statuses: str) -> bool:
            r = await http.get(
                f"{api2}/v1/ops/cases/{case_id}", params={"purpose": "topology: wait"}, headers=caseworker
            )
            # A query the killed worker held answers 503 until Temporal hands the case to the other one.
            assert r.status_code in (200, 503), r.text
            return r.status_code == 200 and r.json()["status"] in statuses

        await eventually(lambda: case_in("awaiting_kommune"), "the case waits for its kommune")
        task_id = str((await summary())["open_task_id"])

        async def delivered() -> bool:
            r = await http.get(f"{api2}/v1/kommune/tasks/{task_id}", headers=topology.kommune())
            return r.status_code == 200 and r.json()["status"] == "delivered"

        await eventually(delivered, "the task in the kommune's inbox")

        # Mid-case, the worker that ran the case's last step dies without a chance to say so.
        history = await topology.temporal.get_workflow_handle(f"case-{case_id}").fetch_history()
        ran = [
            e.workflow_task_completed_event_attributes.identity
            for e in history.events
            if e.HasField("workflow_task_completed_event_attributes")
        ]
        killed = next(w for w in topology.workers if ran[-1].startswith(w.identity_prefix))
        survivor = next(w for w in topology.workers if w is not killed)
        killed.proc.kill()
        await killed.proc.wait()
        steps_before_kill = len(ran)

        # The kommune reads whom the task concerns through API 2: the event log's personal data, sealed by a
        # worker with the shared event-log key, opened by another process.
        r = await call("GET", f"{api2}/v1/kommune/tasks/{task_id}/citizen", headers=topology.kommune())
        assert r.status_code == 200, r.text
        assert r.json()["cpr"] == CPR

        # A document stored through API 1 is read through API 2: the retried submission makes API 2 decrypt what
        # API 1 stored and compare it (the same document answers as the first time; other content is a conflict).
        document = {
            "document_type": "work_history",
            "filename": "arbejdshistorik.pdf",
            "content_type": "application/pdf",
            "content_base64": base64.b64encode(PDF).decode(),
        }
        part = {"idempotency_key": "part-1", "final": False, "documents": [document]}
        r = await call("POST", f"{api1}/v1/kommune/tasks/{task_id}/submissions", json=part, headers=topology.kommune())
        assert r.status_code == 200, r.text
        stored = r.json()["task"]["documents"]
        assert len(stored) == 1
        r = await call("GET", f"{api2}/v1/kommune/tasks/{task_id}", headers=topology.kommune())
        assert r.json()["documents"] == stored
        r = await call("POST", f"{api2}/v1/kommune/tasks/{task_id}/submissions", json=part, headers=topology.kommune())
        assert r.status_code == 200, r.text
        assert r.json()["task"]["documents"] == stored
        other = {**document, "content_base64": base64.b64encode(PDF + b" rettet").decode()}
        r = await call(
            "POST",
            f"{api2}/v1/kommune/tasks/{task_id}/submissions",
            json={**part, "documents": [other]},
            headers=topology.kommune(),
        )
        assert r.status_code == 409, r.text

        # Answered in full and decided through API 2; the surviving worker carries the case to its end.
        final = {"idempotency_key": "final-1", "final": True, "documents": []}
        r = await call("POST", f"{api2}/v1/kommune/tasks/{task_id}/submissions", json=final, headers=topology.kommune())
        assert r.status_code == 200, r.text
        await eventually(lambda: case_in("ready_for_decision"), "the case ready for decision")
        decision = {"idempotency_key": "decision-1", "outcome": "granted"}
        r = await call("POST", f"{api2}/v1/ops/cases/{case_id}/decision", json=decision, headers=caseworker)
        assert r.status_code == 200, r.text
        await eventually(lambda: case_in("closed"), "the case closed")
        history = await topology.temporal.get_workflow_handle(f"case-{case_id}").fetch_history()
        ran = [
            e.workflow_task_completed_event_attributes.identity
            for e in history.events
            if e.HasField("workflow_task_completed_event_attributes")
        ]
        assert {i.split("@")[0] for i in ran[steps_before_kill:]} == {str(survivor.proc.pid)}

        # Both APIs compute the subject id intake filed the case under.
        conn = await asyncpg.connect(topology.database_url)
        try:
            subject = await conn.fetchval("SELECT subject_id FROM case_subjects WHERE case_id = $1", case_id)
        finally:
            await conn.close()
        assert subject == subject_id_of_cpr(CPR, topology.pepper)
        # ...so an auditor's search by CPR number answers the same through either: every read, whichever API
        # served it (each search is itself logged, so the second answer has one more line: the first search).
        auditor = topology.person("revisor", "auditor")
        search = {"cpr": CPR, "purpose": "topology: who read this citizen"}
        r1 = await http.post(f"{api1}/v1/ops/access-log/search", json=search, headers=auditor)
        r2 = await http.post(f"{api2}/v1/ops/access-log/search", json=search, headers=auditor)
        assert r1.status_code == r2.status_code == 200, (r1.text, r2.text)
        reads1, reads2 = r1.json()["reads"], r2.json()["reads"]
        assert reads2[: len(reads1)] == reads1 and len(reads2) == len(reads1) + 1
        actors = {read["actor"] for read in reads1}
        assert "staff:karin-sagsbehandler" in actors and any(a.startswith(f"kommune:{KOMMUNE}:") for a in actors)

        # The Web UI's path: from its origin, with the person's provider token, the codec decodes the case's input.
        started = history.events[0].workflow_execution_started_event_attributes.input.payloads
        codec_headers = {**caseworker, "Origin": topology.ui_origin, "X-Namespace": "default"}
        r = await http.post(
            f"{api1}/codec/decode",
            json={"payloads": [json_format.MessageToDict(p) for p in started]},
            headers={**codec_headers, "X-Purpose": "topology: the case's input"},
        )
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == topology.ui_origin
        decoded = base64.b64decode(r.json()["payloads"][0]["data"])
        assert case_id.encode() in decoded
        # The origin compose names replaced the dev default: the embedded stack's UI origin is not admitted here.
        asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
        r = await http.options(f"{api2}/codec/decode", headers={"Origin": "http://127.0.0.1:8233", **asked})
        assert "access-control-allow-origin" not in r.headers

    for process in [*topology.api_processes, survivor]:
        assert process.proc.returncode is None, f"{process.name} stopped:\n{process.output()[-3000:]}"
