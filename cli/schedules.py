"""`sagsflow schedules apply`: create or update the Temporal Schedules, idempotently."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import NoReturn

import typer
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from runtime.config import get_settings
from workflows.report import QuarterlyReportRequest, QuarterlyReportWorkflow

QUARTERLY_REPORT_SCHEDULE_ID = "samarbejdsforum-quarterly-report"


def quarterly_report_schedule(task_queue: str) -> Schedule:
    """06:00 Copenhagen time on the 1st of March, June, September and December: the meeting months."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            QuarterlyReportWorkflow.run,
            QuarterlyReportRequest(),
            id="quarterly-report",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    month=[ScheduleRange(m) for m in (3, 6, 9, 12)],
                    day_of_month=[ScheduleRange(1)],
                    hour=[ScheduleRange(6)],
                    minute=[ScheduleRange(0)],
                    second=[ScheduleRange(0)],
                    comment="before each Samarbejdsforum meeting",
                )
            ],
            time_zone_name="Europe/Copenhagen",
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def apply_schedules(client: Client, task_queue: str) -> list[str]:
    """Create each schedule, or bring an existing one up to date. Returns what was done, per schedule."""
    desired = quarterly_report_schedule(task_queue)
    try:
        await client.create_schedule(QUARTERLY_REPORT_SCHEDULE_ID, desired)
        return [f"{QUARTERLY_REPORT_SCHEDULE_ID}: created"]
    except ScheduleAlreadyRunningError:
        pass

    def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
        # Keep the server's state (paused, notes); replace what we own: the action, spec and policy.
        return ScheduleUpdate(
            schedule=Schedule(
                action=desired.action,
                spec=desired.spec,
                policy=desired.policy,
                state=current.description.schedule.state,
            )
        )

    await client.get_schedule_handle(QUARTERLY_REPORT_SCHEDULE_ID).update(update)
    return [f"{QUARTERLY_REPORT_SCHEDULE_ID}: updated"]


def exit_without_finalizing(code: int) -> NoReturn:
    """End a short-lived client process here. At interpreter shutdown the SDK's Rust threads may still reach for
    the GIL, and about one run in five then died with "Fatal Python error: PyGILState_Release" and exit code 134
    after its work was done (temporalio/sdk-python#300). Nothing is left to finalize once the output is out."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def register(app: typer.Typer) -> None:
    schedules = typer.Typer(help="Temporal Schedules.", no_args_is_help=True)

    @schedules.command("apply")
    def apply() -> None:
        """Create or update the quarterly report schedule (Europe/Copenhagen)."""
        from runtime.temporal import connect

        settings = get_settings()

        async def run() -> list[str]:
            client = await connect(settings)
            return await apply_schedules(client, settings.task_queue)

        for line in asyncio.run(run()):
            typer.echo(line)
        exit_without_finalizing(0)

    app.add_typer(schedules, name="schedules")
