"""`sagsflow worker`: run the workflow worker process (workers/worker.py)."""

from __future__ import annotations

import typer

from runtime.config import get_settings
from runtime.eventloop import run_fast
from runtime.kommune_config import KommuneSettings
from runtime.logs import configure_logging
from runtime.production import require_settings_for
from workers.worker import serve


def register(app: typer.Typer) -> None:
    @app.command()
    def worker() -> None:
        """Run the workflow worker (case and task workflows, event-log and notification activities)."""
        settings = get_settings()
        configure_logging(settings.log_level, settings.log_format)
        require_settings_for(settings, KommuneSettings(), "worker")
        run_fast(serve(settings))
