"""The report activity: builds the quarterly report from the event log into the reports folder."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError


class BuildReportInput(BaseModel):
    quarter: str


class BuildReportResult(BaseModel):
    quarter: str
    log_position: int
    files: list[str]


class ReportActivities:
    def __init__(self, dsn: str, out_root: Path) -> None:
        self.dsn = dsn
        self.out_root = out_root

    @activity.defn(name="build_quarterly_report")
    async def build_quarterly_report(self, request: BuildReportInput) -> BuildReportResult:
        from reports.build import build_quarterly
        from reports.quarterly import parse_quarter
        from reports.render import write_report

        try:
            quarter = parse_quarter(request.quarter)
        except ValueError as exc:
            raise ApplicationError(str(exc), type="InvalidQuarter", non_retryable=True) from None
        report = await build_quarterly(self.dsn, quarter)
        # One folder per build position: a later build never overwrites a report someone already read.
        out = self.out_root / quarter.label / f"position-{report.log_position}"
        files = write_report(report, out)
        return BuildReportResult(quarter=quarter.label, log_position=report.log_position, files=[str(f) for f in files])
