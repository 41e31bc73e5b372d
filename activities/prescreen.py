"""Pre-screening as a (local) activity: the rules' result is fixed in the case's history, so a later change to the
rules never changes the path of a case already screened.

`screen()` is the one seam to the domain rules: it uses `domain.prescreen` (`prescreen(app, on)` and
`summary(prescreening)`) when that module exists, and until then an interim rule: the age window only.
"""

from __future__ import annotations

import importlib
from datetime import date
from typing import Any

from pydantic import BaseModel
from temporalio import activity

from domain.application import Application, CaseType
from domain.calendar import add_months
from domain.events import RuleSummary, Verdict
from workflows.models import PRESCREEN_APPLICATION, PrescreenRequest, PrescreenResult


@activity.defn(name=PRESCREEN_APPLICATION)
async def prescreen_application(request: PrescreenRequest) -> PrescreenResult:
    return screen(request.application, request.on)


def screen(application: Application, on: date) -> PrescreenResult:
    try:
        rules: Any = importlib.import_module("domain.prescreen")
    except ModuleNotFoundError:
        return interim_screen(application, on)
    screening = rules.prescreen(application, on)
    summary = tuple(rules.summary(screening))
    details = screening.model_dump(mode="json") if isinstance(screening, BaseModel) else None
    return PrescreenResult(
        verdict=Verdict(screening.verdict),
        rules=summary,
        reason_codes=tuple(r.rule for r in summary if r.outcome == "not_met"),
        details=details,
    )


def folkepension_months(birth: date) -> int:
    """Folkepensionsalder in months (lov om social pension § 1 a, DOMAIN.md)."""
    if birth < date(1954, 1, 1):
        return 65 * 12
    if birth < date(1954, 7, 1):
        return 65 * 12 + 6
    if birth < date(1955, 1, 1):
        return 66 * 12
    if birth < date(1955, 7, 1):
        return 66 * 12 + 6
    if birth < date(1963, 1, 1):
        return 67 * 12
    if birth < date(1967, 1, 1):
        return 68 * 12
    if birth < date(1971, 1, 1):
        return 69 * 12
    return 70 * 12


def interim_screen(application: Application, on: date) -> PrescreenResult:
    """Age window only: seniorpension within 6 years of folkepensionsalder (apply up to 6 months earlier);
    seniorførtidspension within 5 years."""
    pension_on = add_months(application.birth_date, folkepension_months(application.birth_date))
    years = 6 if application.case_type is CaseType.SENIORPENSION else 5
    early = 6 if application.case_type is CaseType.SENIORPENSION else 0
    opens_on = add_months(pension_on, -(years * 12 + early))
    met = opens_on <= on < pension_on
    rule = RuleSummary(rule="age_window", outcome="met" if met else "not_met")
    return PrescreenResult(
        verdict=Verdict.DISPATCH if met else Verdict.FORMAL_REJECTION,
        rules=(rule,),
        reason_codes=() if met else ("age_window",),
        # Personal (derived from the CPR number): goes only into the event's encrypted `personal` field.
        details={"age_window": {"window_opens_on": opens_on.isoformat(), "folkepension_on": pension_on.isoformat()}},
    )
