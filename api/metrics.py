"""Prometheus metrics of the business: backlog per kommune and status, overdue tasks, projection lag.

Figures are read from the projections at scrape time (no background state to go stale), through eventlog.figures as
the ops API's backlog is; kommune codes and counts only, never personal data. Workflows that wait for operations
(stopped because the event log refused their events, or failed) are counted from Temporal's visibility store, where
operations find them in the Web UI too. The worker exports the Temporal SDK's metrics and the append latency itself.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from temporalio.client import Client
from temporalio.service import RPCError

from api.state import deps_of
from runtime.logs import get_logger
from workflows.models import CASE_WORKFLOW, TASK_WORKFLOW
from workflows.search_attributes import NEEDS_OPERATIONS

log = get_logger(__name__)

router = APIRouter(tags=["ops"])


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics (text exposition format)",
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(request: Request) -> Response:
    deps = deps_of(request)
    figures = deps.stores.figures
    registry = CollectorRegistry()
    backlog = Gauge("sagsflow_backlog_tasks", "Open kommune tasks", ["kommune_kode", "status"], registry=registry)
    overdue = Gauge(
        "sagsflow_overdue_tasks", "Open kommune tasks past their deadline", ["kommune_kode"], registry=registry
    )
    cases = Gauge("sagsflow_open_cases", "Active cases", ["kommune_kode", "status"], registry=registry)
    lag = Gauge(
        "sagsflow_projection_lag_events", "Events appended but not yet projected", ["projection"], registry=registry
    )
    now = await figures.backlog()
    for row in now.tasks:
        backlog.labels(row.kommune_kode, row.status).set(row.tasks)
    for kode, n in now.overdue_by_kommune().items():
        overdue.labels(kode).set(n)
    for crow in now.cases:
        cases.labels(crow.kommune_kode, crow.status).set(crow.cases)
    lag.labels("case_views").set(await figures.projection_lag())
    if deps.client is not None:
        await _operations_gauges(deps.client, registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def _operations_gauges(client: Client, registry: CollectorRegistry) -> None:
    waiting = Gauge(
        "sagsflow_workflows_needing_operations",
        "Running case and task workflows stopped because the event log refused their events",
        ["workflow_type"],
        registry=registry,
    )
    failed = Gauge(
        "sagsflow_workflows_failed", "Case and task workflows that failed", ["workflow_type"], registry=registry
    )
    try:
        for workflow_type in (CASE_WORKFLOW, TASK_WORKFLOW):
            of_type = f'WorkflowType = "{workflow_type}"'
            stopped = f'{of_type} AND ExecutionStatus = "Running" AND {NEEDS_OPERATIONS.name} = true'
            waiting.labels(workflow_type).set((await client.count_workflows(stopped)).count)
            failed.labels(workflow_type).set(
                (await client.count_workflows(f'{of_type} AND ExecutionStatus = "Failed"')).count
            )
    except RPCError as exc:
        # The business figures above still count; these come back when Temporal does.
        log.warning("metrics: Temporal visibility unavailable", status=str(exc.status))
