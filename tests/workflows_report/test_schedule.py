"""The quarterly report schedule on the dev server: applied idempotently, and its workflow writes the report."""

from __future__ import annotations

import uuid
from pathlib import Path

from temporalio.client import ScheduleActionStartWorkflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.report import ReportActivities
from cli.schedules import QUARTERLY_REPORT_SCHEDULE_ID, apply_schedules
from runtime.temporal import sandbox_runner
from workflows.report import QuarterlyReportRequest, QuarterlyReportWorkflow, last_complete_quarter


def test_last_complete_quarter() -> None:
    assert last_complete_quarter(2021, 3) == "2020Q4"
    assert last_complete_quarter(2021, 6) == "2021Q1"
    assert last_complete_quarter(2021, 12) == "2021Q3"


async def test_apply_is_idempotent_and_the_report_runs(
    dev_env: WorkflowEnvironment, db_url: str, tmp_path: Path
) -> None:
    client = dev_env.client
    queue = f"reports-{uuid.uuid4().hex[:8]}"
    assert await apply_schedules(client, queue) == [f"{QUARTERLY_REPORT_SCHEDULE_ID}: created"]
    assert await apply_schedules(client, queue) == [f"{QUARTERLY_REPORT_SCHEDULE_ID}: updated"]
    ids = [s.id async for s in await client.list_schedules()]
    assert ids.count(QUARTERLY_REPORT_SCHEDULE_ID) == 1
    desc = await client.get_schedule_handle(QUARTERLY_REPORT_SCHEDULE_ID).describe()
    spec = desc.schedule.spec
    assert spec.time_zone_name == "Europe/Copenhagen"
    assert [r.start for r in spec.calendars[0].month] == [3, 6, 9, 12]
    assert isinstance(desc.schedule.action, ScheduleActionStartWorkflow)
    assert desc.schedule.action.task_queue == queue

    activities = ReportActivities(db_url, tmp_path)
    async with Worker(
        client,
        task_queue=queue,
        workflows=[QuarterlyReportWorkflow],
        activities=[activities.build_quarterly_report],
        workflow_runner=sandbox_runner(),
    ):
        result = await client.execute_workflow(
            QuarterlyReportWorkflow.run,
            QuarterlyReportRequest(quarter="2021Q1"),
            id=f"report-{uuid.uuid4()}",
            task_queue=queue,
        )
    assert result.quarter == "2021Q1"
    assert result.log_position == 0
    assert Path(result.files[0]).name == "quarterly-2021Q1.html"
    assert Path(result.files[0]).exists()
    # The workflow's report has the forecast section too (on this empty log: that there is nothing to forecast).
    assert 'id="naeste-moede"' in Path(result.files[0]).read_text()
    await client.get_schedule_handle(QUARTERLY_REPORT_SCHEDULE_ID).delete()
