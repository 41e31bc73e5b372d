"""QuarterlyReportWorkflow: started by a Temporal Schedule before each Samarbejdsforum meeting, or by hand."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.report import BuildReportInput, BuildReportResult, ReportActivities
    from domain.calendar import COPENHAGEN


class QuarterlyReportRequest(BaseModel):
    quarter: str | None = None  # e.g. "2021Q1"; None → the last complete quarter at run time


def last_complete_quarter(year: int, month: int) -> str:
    q = (month - 1) // 3 + 1
    return f"{year - 1}Q4" if q == 1 else f"{year}Q{q - 1}"


@workflow.defn
class QuarterlyReportWorkflow:
    @workflow.run
    async def run(self, request: QuarterlyReportRequest) -> BuildReportResult:
        local = workflow.now().astimezone(COPENHAGEN)
        quarter = request.quarter or last_complete_quarter(local.year, local.month)
        workflow.set_current_details(f"Building the quarterly report for {quarter}")
        return await workflow.execute_activity_method(
            ReportActivities.build_quarterly_report,
            BuildReportInput(quarter=quarter),
            start_to_close_timeout=timedelta(minutes=20),
            retry_policy=RetryPolicy(maximum_attempts=5, non_retryable_error_types=["InvalidQuarter"]),
            summary=f"quarterly report {quarter}",
        )
