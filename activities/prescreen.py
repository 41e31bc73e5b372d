"""Pre-screening as a (local) activity: the rules' result is fixed in the case's history, so a later change to the
rules never changes the path of a case already screened (replay stays deterministic).

`screen()` is the one seam to the domain rules (`domain.prescreen`).
"""

from __future__ import annotations

from datetime import date

from temporalio import activity

from domain import prescreen as rules
from domain.application import Application
from workflows.models import PRESCREEN_APPLICATION, PrescreenRequest, PrescreenResult


@activity.defn(name=PRESCREEN_APPLICATION)
async def prescreen_application(request: PrescreenRequest) -> PrescreenResult:
    return screen(request.application, request.on)


def screen(application: Application, on: date) -> PrescreenResult:
    screening = rules.prescreen(application, on)
    summary = rules.summary(screening)
    return PrescreenResult(
        verdict=screening.verdict,
        rules=summary,
        reason_codes=tuple(r.rule for r in summary if r.outcome == "not_met"),
        # Personal (reasons and factors): goes only into the event's encrypted `personal` field.
        details=rules.details(screening),
    )
