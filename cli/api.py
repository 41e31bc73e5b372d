"""`sagsflow api`: serve the HTTP API (intake, kommune, ops, codec) with uvicorn."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import typer
import uvicorn
from fastapi import FastAPI

from runtime import services
from runtime.config import Settings, get_settings
from runtime.eventloop import run_fast
from runtime.logs import configure_logging


def database_url(settings: Settings) -> str:
    return services.database_url(settings)


def ui_origins(settings: Settings) -> list[str]:
    """SAGSFLOW_UI_ORIGINS, or the dev stack's Web UI: a deployed UI has an origin of its own, and the browser
    refuses its codec calls unless the API names that origin."""
    configured = [origin.strip().rstrip("/") for origin in settings.ui_origins.split(",") if origin.strip()]
    return configured or [
        f"http://127.0.0.1:{settings.temporal_ui_port}",
        f"http://localhost:{settings.temporal_ui_port}",
    ]


def build_app(settings: Settings) -> FastAPI:
    """The production app: connects to Temporal and PostgreSQL at start-up, closes them at shutdown."""
    from api.app import create_app
    from api.state import ApiDeps
    from eventlog.migrate import migrate_dsn
    from eventlog.stores import Stores
    from runtime.crypto import load_or_create_secret
    from runtime.identity import staff_verifier
    from runtime.kommune_config import KommuneSettings, documents_key_ring
    from runtime.production import require_settings_for
    from runtime.temporal import connect, key_ring

    require_settings_for(settings, KommuneSettings(), "api")
    if settings.subject_pepper_file is None:
        settings.dev_fallback("SAGSFLOW_SUBJECT_PEPPER_FILE")
    deps = ApiDeps(
        client=None,
        database=None,
        payload_ring=key_ring(settings),
        ui_origins=ui_origins(settings),
        namespace=settings.temporal_namespace,
        task_queue=settings.task_queue,
        documents_ring=documents_key_ring(settings, KommuneSettings()),
        subject_pepper=load_or_create_secret(
            settings.subject_pepper_file or settings.data_dir / "subject-pepper",
            create=settings.subject_pepper_file is None,
        ),
        sla_policy=settings.sla_policy,
        staff_verifier=staff_verifier(settings),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        dsn = database_url(settings)
        await migrate_dsn(dsn)
        deps.database = stores = await Stores.connect(dsn, max_size=20)
        deps.client = await connect(settings)
        try:
            yield
        finally:
            await stores.close()

    return create_app(deps, lifespan=lifespan)


def register(app: typer.Typer) -> None:
    @app.command("api")
    def api(
        host: str = typer.Option(None, help="Bind address (default SAGSFLOW_API_HOST, loopback)"),
        port: int = typer.Option(None, help="Port (default SAGSFLOW_API_PORT)"),
    ) -> None:
        """Serve the Sagsflow HTTP API."""
        settings = get_settings()
        configure_logging(settings.log_level, settings.log_format)
        config = uvicorn.Config(
            build_app(settings),
            host=host or settings.api_host,
            port=port or settings.api_port,
            log_config=None,
            access_log=False,
            proxy_headers=True,
        )

        async def serve() -> None:
            await reach_services(settings)
            await uvicorn.Server(config).serve()

        run_fast(serve())


async def reach_services(settings: Settings) -> None:
    """Connect once to PostgreSQL and Temporal before serving. uvicorn logs a failing start-up as a traceback and
    goes on to exit; this way an unreachable service is the CLI's one line instead (cli/main.py)."""
    from eventlog.db import reach
    from runtime.temporal import connect

    await reach(database_url(settings), connect_timeout=10)
    await connect(settings)
