"""`sagsflow worker`: the process that runs the case and task workflows and their activities.

`build_worker(client, pool, ...)` is the one place that wires workflows and activities together; the dev stack,
tests, the simulator and the benchmarks reuse it. Activities are registered by name, so passing an activity with
the name of a default one replaces the default. The kommune channel is `kommune=` (the simulator's kommuner, test
doubles) or the real `deliver_task` activity (`serve`); the citizen-letter adapter is chosen by `SAGSFLOW_LETTERS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import httpx
from temporalio import activity as _activity
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from activities.digital_post import DigitalPost, DigitalPostActivities, LogOnlyLetters, letters_from_settings
from activities.eventlog import EventLogActivities
from activities.kommune import KommuneActivities, KommuneChannel
from activities.kommune_delivery import KommuneDelivery
from activities.prescreen import prescreen_application
from activities.report import ReportActivities
from domain.kommuner import all_kommuner
from eventlog.db import Pool
from eventlog.migrate import migrate_dsn
from eventlog.projections import ProjectionRunner
from eventlog.store import EventStore
from eventlog.stores import Stores
from runtime import services
from runtime.config import Settings
from runtime.logs import get_logger
from runtime.temporal import connect, sandbox_runner
from workflows import activation_guard
from workflows.case import CaseWorkflow
from workflows.common import FAILURE_TYPES
from workflows.models import DELIVER_TASK
from workflows.report import QuarterlyReportWorkflow
from workflows.task import OplysningTaskWorkflow

log = get_logger(__name__)

WORKFLOWS: tuple[type, ...] = (CaseWorkflow, OplysningTaskWorkflow)


def _name(fn: Callable[..., Any]) -> str:
    defn = _activity._Definition.from_callable(fn)
    if defn is None or defn.name is None:
        raise ValueError(f"{fn!r} is not an activity")
    return defn.name


def default_activities(
    pool: Pool,
    *,
    kommune: KommuneChannel | None = None,
    digital_post: DigitalPost | None = None,
) -> list[Callable[..., Any]]:
    store = EventStore(pool)
    post_acts = DigitalPostActivities(digital_post or LogOnlyLetters())
    defaults: list[Callable[..., Any]] = [
        EventLogActivities(store).append_events,
        prescreen_application,
        post_acts.notify_citizen,
    ]
    if kommune is not None:
        defaults.append(KommuneActivities(kommune).deliver_task)
    return defaults


def warm_up() -> None:
    """Load the domain's reference data outside the sandbox (it reads package files once, then caches): request
    models validate kommune codes while the sandbox decodes workflow arguments, where file access is restricted."""
    all_kommuner()


def build_worker(
    client: Client,
    pool: Pool,
    *,
    task_queue: str,
    kommune: KommuneChannel | None = None,
    digital_post: DigitalPost | None = None,
    activities: Sequence[Callable[..., Any]] = (),
    workflows: Sequence[type] = (),
    **options: Any,
) -> Worker:
    """A worker for the case lifecycle on `task_queue`. `activities` with a default's name replace it."""
    warm_up()
    # Also done on import of workflows.common; explicit, because a worker without it accepts updates that can fail
    # their replay (see workflows/activation_guard.py).
    activation_guard.install()
    by_name = {_name(fn): fn for fn in default_activities(pool, kommune=kommune, digital_post=digital_post)}
    by_name.update({_name(fn): fn for fn in activities})
    if DELIVER_TASK not in by_name:
        # Without one, every task would wait for a delivery that no activity makes.
        raise ValueError("a worker needs a kommune channel: pass kommune= or a deliver_task activity")
    options.setdefault("graceful_shutdown_timeout", timedelta(seconds=10))
    options.setdefault("workflow_runner", sandbox_runner())
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[*WORKFLOWS, *workflows],
        activities=list(by_name.values()),
        workflow_failure_exception_types=list(FAILURE_TYPES),
        **options,
    )


def database_url(settings: Settings) -> str:
    # Unset → the embedded PostgreSQL that `sagsflow dev up` runs.
    return services.database_url(settings)


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run a worker until `stop` is set (or SIGINT/SIGTERM when no event is given), then shut down gracefully:
    no new tasks are polled, running activities get the grace period, workflows resume elsewhere."""
    stop = stop or _stop_on_signals()
    await migrate_dsn(database_url(settings))
    runtime = None
    if settings.worker_metrics_port:
        runtime = Runtime(
            telemetry=TelemetryConfig(
                metrics=PrometheusConfig(bind_address=f"{settings.worker_metrics_host}:{settings.worker_metrics_port}")
            )
        )
    client = await connect(settings, runtime=runtime)
    stores = await Stores.connect(database_url(settings))
    # Projections follow the log in every worker process; runners take turns per batch, so N workers are safe.
    projections = asyncio.create_task(ProjectionRunner(stores.pool).run(stop))
    http = httpx.AsyncClient()
    try:
        # The real kommune channel: signed push or inbox, per kommune.
        delivery = KommuneDelivery.from_settings(settings, stores.pool, http)
        # The quarterly report's Schedule starts its workflow on this task queue too (cli/schedules.py).
        reports = ReportActivities(database_url(settings), settings.data_dir / "reports")
        worker = build_worker(
            client,
            stores.pool,
            task_queue=settings.task_queue,
            digital_post=letters_from_settings(settings),
            activities=[delivery.deliver_task, reports.build_quarterly_report],
            workflows=[QuarterlyReportWorkflow],
            max_cached_workflows=settings.worker_max_cached_workflows,
        )
        async with worker:
            log.info(
                "worker started",
                task_queue=settings.task_queue,
                namespace=settings.temporal_namespace,
                max_cached_workflows=settings.worker_max_cached_workflows,
            )
            await stop.wait()
            log.info("worker stopping")
    finally:
        stop.set()
        await projections
        await http.aclose()
        await stores.close()
    log.info("worker stopped")


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop
