"""Formal pre-screening of an application: each rule says met, not met or needs concrete assessment, and why.

A rule engine never decides a concrete assessment (DOMAIN.md): where the law or the guide asks for one, the result
is `needs_assessment` with the factors the caseworker must weigh. Reasons name rules, counts and durations, never
the person (no CPR, no name, no birth date), because they are shown in tables and stored with the event.

Numbers that come from the law or the guide are cited where they are defined. Numbers that are our policy (a reading
the law leaves open) say so in their comment; change them by versioning this module's behaviour, not silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from fractions import Fraction
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from domain.application import Application, AttachmentStatus, CaseType, EmploymentKind, EmploymentPeriod, PriorBenefit
from domain.events import RuleSummary, Verdict
from domain.pension import (
    APPLY_BEFORE_WINDOW,
    WINDOW_BEFORE_PENSION,
    YearsMonths,
    earliest_application_date,
    months_between,
    pension_age,
    pension_date,
    span_between,
    subtract_age,
    window_opens,
)

RuleOutcome = Literal["met", "not_met", "needs_assessment"]

# Full time is at least 27 hours a week: the ATP full rate (DOMAIN.md; BEK 2237/2020 and the guide).
FULL_TIME_WEEKLY_HOURS = 27
# Long attachment: 25 years of full-time work meets it; 20 to 25 years needs a concrete assessment
# (lov om social pension § 26 a, stk. 2, nr. 1; the guide says the same for seniorførtidspension).
FULL_TIME_YEARS_MET = 25
FULL_TIME_YEARS_ASSESS = 20
# Policy: a year of work is 365.25 calendar days, so leap years neither add nor lose time over a career.
DAYS_PER_YEAR = Fraction(36525, 100)
# Policy (our reading of public guidance: "at least 27 hours a week, except fleksjob where the hours are fewer"):
# a fleksjob period counts as full time whatever its weekly hours, since its hours are reduced by design.
FLEKSJOB_COUNTS_AS_FULL_TIME = True

# Incomes that temporarily replace earnings and so keep the current attachment (the guide's list).
SUBSTITUTE_INCOMES: frozenset[AttachmentStatus] = frozenset(
    {
        AttachmentStatus.WORKING,
        AttachmentStatus.SYGEDAGPENGE,
        AttachmentStatus.ARBEJDSLOESHEDSDAGPENGE,
        AttachmentStatus.LEDIGHEDSYDELSE,
        AttachmentStatus.RESSOURCEFORLOEBSYDELSE,
        AttachmentStatus.CARE_OF_RELATIVE,
        AttachmentStatus.CARE_OF_DISABLED_CHILD,
    }
)
# Policy: the guide says a "short" period on kontanthjælp or without income may meet the attachment after concrete
# assessment and a "longer" one does not, without a number. We call shorter than 6 months short.
SHORT_NON_ATTACHMENT_MONTHS = 6
# The guide: having stopped work for health reasons within the last 5 years may meet the attachment.
HEALTH_STOP_LOOKBACK = YearsMonths(5)

# Work capacity for seniorpension: at most 15 hours a week relative to the latest job (§ 26 a, stk. 3).
MAX_WORK_CAPACITY_HOURS = 15
# "The latest job" is one of about 12 months or more (DOMAIN.md; VEJ 9513/2021). "About" makes shorter jobs a
# concrete assessment rather than a rejection.
LATEST_JOB_MIN_MONTHS = 12

# At least 3 years' residence in Denmark between age 15 and folkepensionsalder (general conditions).
MIN_RESIDENCE_YEARS = 3

_SP = CaseType.SENIORPENSION
_SFP = CaseType.SENIORFOERTIDSPENSION
_GUIDE = "vejledning om seniorførtidspension"
_GENERAL = "lov om social pension, kapitel 1 (almindelige betingelser)"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RuleResult(_Frozen):
    rule: str  # stable id, e.g. "age_window"
    outcome: RuleOutcome
    reason: str  # without personal data: no CPR, no name, no birth date
    source: str  # paragraph or guide section
    factors: tuple[str, ...] = ()  # for needs_assessment: what the caseworker must weigh
    formal: bool = True  # a formal condition: not met means a formal rejection


class PreScreening(_Frozen):
    case_type: CaseType
    screened_on: date
    verdict: Verdict
    results: tuple[RuleResult, ...]

    def result(self, rule: str) -> RuleResult:
        for r in self.results:
            if r.rule == rule:
                return r
        raise KeyError(rule)


def verdict_for(results: Iterable[RuleResult]) -> Verdict:
    """A formal condition not met rejects; anything else short of met goes to a caseworker; else dispatch."""
    found = tuple(results)
    if any(r.outcome == "not_met" and r.formal for r in found):
        return Verdict.FORMAL_REJECTION
    if any(r.outcome != "met" for r in found):
        return Verdict.NEEDS_ASSESSMENT
    return Verdict.DISPATCH


def summary(prescreening: PreScreening) -> tuple[RuleSummary, ...]:
    """What goes on `PreScreeningCompleted.rules`: rule ids and outcomes only."""
    return tuple(RuleSummary(rule=r.rule, outcome=r.outcome) for r in prescreening.results)


def details(prescreening: PreScreening) -> dict[str, Any]:
    """What goes on `PreScreeningCompleted.personal`: the reasons and factors (stored encrypted)."""
    return prescreening.model_dump(mode="json")


def prescreen(app: Application, on: date | None = None) -> PreScreening:
    """Screen `app` as of `on` (default: the day it was received).

    The age window is judged on the day the application was received (§ 26 b is about when one may apply); `on`
    is the reference day for everything that runs up to now: ongoing employment, time on kontanthjælp, the 5-year
    look-back for a health-related stop.
    """
    today = on or app.received_on
    results = (
        age_window(app),
        full_time_years_rule(app, today),
        current_attachment(app, today),
        work_capacity(app),
        prior_benefit(app),
        citizenship(app),
        residence(app),
        residence_years(app),
    )
    return PreScreening(case_type=app.case_type, screened_on=today, verdict=verdict_for(results), results=results)


# --- the rules ---------------------------------------------------------------------------------------------------


def _span_text(start: date, end: date) -> str:
    span = span_between(start, end)
    return f"{span.years} years {span.months} months"


def _ym_text(ym: YearsMonths) -> str:
    return f"{ym.years} years {ym.months} months" if ym.months else f"{ym.years} years"


def age_window(app: Application) -> RuleResult:
    birth = app.birth_date
    received = app.received_on
    window = WINDOW_BEFORE_PENSION[app.case_type]
    early = APPLY_BEFORE_WINDOW[app.case_type]
    pension_on = pension_date(birth)
    opens = window_opens(birth, app.case_type)
    earliest = earliest_application_date(birth, app.case_type)
    age = pension_age(birth)
    if app.case_type is _SP:
        source = "lov om social pension § 26 a, stk. 1, og § 26 b; § 1 a (folkepensionsalder)"
    else:
        source = f"{_GUIDE}: højst 5 år til folkepensionsalderen; lov om social pension § 1 a"
    allowed = _ym_text(YearsMonths(*divmod(window.total_months + early.total_months, 12)))

    def result(outcome: RuleOutcome, reason: str) -> RuleResult:
        return RuleResult(rule="age_window", outcome=outcome, reason=reason, source=source)

    if received >= pension_on:
        return result("not_met", f"folkepensionsalder ({age}) was already reached when the application was received")
    left = _span_text(received, pension_on)
    if received < earliest:
        return result(
            "not_met",
            f"received {left} before folkepensionsalder ({age}); an application is allowed at most {allowed} before",
        )
    if received < opens:
        return result(
            "met",
            f"received {left} before folkepensionsalder ({age}): within the {_ym_text(early)} before the "
            f"{_ym_text(window)} window opens, which § 26 b allows; entitlement from the day the window opens",
        )
    return result("met", f"received {left} before folkepensionsalder ({age}); at most {_ym_text(window)} allowed")


def _period_weight(period: EmploymentPeriod) -> Fraction:
    if period.kind is EmploymentKind.FLEKSJOB and FLEKSJOB_COUNTS_AS_FULL_TIME:
        return Fraction(1)
    return min(Fraction(period.weekly_hours), Fraction(FULL_TIME_WEEKLY_HOURS)) / FULL_TIME_WEEKLY_HOURS


def _clipped(periods: Sequence[EmploymentPeriod], until: date) -> list[tuple[date, date, EmploymentPeriod]]:
    """(first day, day after the last day, period) for the part of each period up to and including `until`."""
    out = []
    for p in periods:
        last = until if p.end is None else min(p.end, until)
        if p.start <= last:
            out.append((p.start, last + timedelta(days=1), p))
    return out


def full_time_days(periods: Sequence[EmploymentPeriod], until: date) -> Fraction:
    """Full-time-equivalent days up to and including `until`.

    On any one day the periods covering it add up (each converted at hours/27, a fleksjob as full time) but never to
    more than one full-time day: overlapping jobs are not counted twice. Exact arithmetic, so adding a period can
    never lower the total through rounding.
    """
    deltas: dict[date, Fraction] = {}
    for start, stop, p in _clipped(periods, until):
        w = _period_weight(p)
        deltas[start] = deltas.get(start, Fraction(0)) + w
        deltas[stop] = deltas.get(stop, Fraction(0)) - w
    total = Fraction(0)
    level = Fraction(0)
    previous: date | None = None
    for day in sorted(deltas):
        if previous is not None and level > 0:
            total += (day - previous).days * min(level, Fraction(1))
        level += deltas[day]
        previous = day
    return total


def covered_days(periods: Sequence[EmploymentPeriod], until: date) -> int:
    """Calendar days covered by at least one period, up to and including `until`."""
    days = 0
    reach: date | None = None
    for start, stop, _ in sorted(_clipped(periods, until), key=lambda t: t[0]):
        if reach is None or start >= reach:
            days += (stop - start).days
            reach = stop
        elif stop > reach:
            days += (stop - reach).days
            reach = stop
    return days


def full_time_years(periods: Sequence[EmploymentPeriod], until: date) -> float:
    return float(full_time_days(periods, until) / DAYS_PER_YEAR)


def full_time_years_rule(app: Application, on: date) -> RuleResult:
    fte_days = full_time_days(app.employment, on)
    years = float(fte_days / DAYS_PER_YEAR)
    shown = f"{years:.1f}"
    how = (
        f"{shown} full-time years (at least {FULL_TIME_WEEKLY_HOURS} h/week is full time, part time converted "
        "proportionally, fleksjob counted as full time, overlapping periods counted once)"
    )
    notes = []
    foreign = sum(1 for p in app.employment if p.foreign)
    if foreign:
        notes.append(f"{foreign} foreign period(s) must be documented by the foreign employer")
    if any(p.kind is EmploymentKind.SELF_EMPLOYED for p in app.employment):
        notes.append("self-employed hours must be made probable (tax assessments, turnover, work done)")
    suffix = ("; " + "; ".join(notes)) if notes else ""
    if app.case_type is _SP:
        source = "lov om social pension § 26 a, stk. 2, nr. 1; BEK 2237/2020"
    else:
        source = f"{_GUIDE}: langvarig tilknytning til arbejdsmarkedet"
    if fte_days >= FULL_TIME_YEARS_MET * DAYS_PER_YEAR:
        return RuleResult(
            rule="full_time_years",
            outcome="met",
            reason=f"{how}: at least {FULL_TIME_YEARS_MET} years{suffix}",
            source=source,
        )
    if fte_days >= FULL_TIME_YEARS_ASSESS * DAYS_PER_YEAR:
        return RuleResult(
            rule="full_time_years",
            outcome="needs_assessment",
            reason=f"{how}: between {FULL_TIME_YEARS_ASSESS} and {FULL_TIME_YEARS_MET} years{suffix}",
            source=source,
            factors=(
                "actual or estimated weekly hours, e.g. well above the ATP full-rate minimum of 27",
                "physically or mentally demanding, wearing work",
                "health affected after many years of work",
                "periods not yet documented (ATP contributions, income data, employer statements, also foreign)",
            ),
        )
    return RuleResult(
        rule="full_time_years",
        outcome="not_met",
        reason=f"{how}: fewer than {FULL_TIME_YEARS_ASSESS} years{suffix}",
        source=source,
    )


def current_attachment(app: Application, on: date) -> RuleResult:
    att = app.current_attachment
    status = att.status.value
    if app.case_type is _SP:
        return RuleResult(
            rule="current_attachment",
            outcome="met",
            reason=f"not a condition for seniorpension; recorded for information (current status: {status})",
            source="lov om social pension § 26 a (no current-attachment condition)",
            formal=False,
        )
    source = f"{_GUIDE}: aktuel tilknytning til arbejdsmarkedet"
    if att.status in SUBSTITUTE_INCOMES:
        what = "coming straight from work" if att.status is AttachmentStatus.WORKING else "income replacing earnings"
        return RuleResult(
            rule="current_attachment",
            outcome="met",
            reason=f"current status {status}: {what}",
            source=source,
        )
    months = months_between(att.since, on)
    health_factors = (
        "the nature and extent of earlier work",
        "whether work stopped wholly or partly for health reasons",
        "treatment under way or awaiting a health assessment",
    )
    if att.stopped_work_for_health_reasons:
        if att.stopped_work_on is None:
            return RuleResult(
                rule="current_attachment",
                outcome="needs_assessment",
                reason=f"current status {status}; work stopped for health reasons, date not given",
                source=source,
                factors=("when work stopped (within the last 5 years may meet the attachment)", *health_factors),
            )
        if att.stopped_work_on >= subtract_age(on, HEALTH_STOP_LOOKBACK):
            return RuleResult(
                rule="current_attachment",
                outcome="needs_assessment",
                reason=f"current status {status}; work stopped for health reasons within the last 5 years",
                source=source,
                factors=health_factors,
            )
    if months < SHORT_NON_ATTACHMENT_MONTHS:
        return RuleResult(
            rule="current_attachment",
            outcome="needs_assessment",
            reason=f"current status {status} for {months} months: a short period (under "
            f"{SHORT_NON_ATTACHMENT_MONTHS} months, policy) may meet the attachment after concrete assessment",
            source=source,
            factors=health_factors,
        )
    return RuleResult(
        rule="current_attachment",
        outcome="not_met",
        reason=f"current status {status} for {months} months: a longer period (policy: "
        f"{SHORT_NON_ATTACHMENT_MONTHS} months or more) without a health-related stop does not meet the attachment",
        source=source,
    )


def work_capacity(app: Application) -> RuleResult:
    # The capacity is a concrete assessment on health information (§ 26 c), so never a formal rejection here.
    if app.case_type is _SFP:
        return RuleResult(
            rule="work_capacity",
            outcome="needs_assessment",
            reason="whether the applicant can support themselves by ordinary work or a fleksjob is always a "
            "concrete assessment",
            source=f"{_GUIDE}: arbejdsevne",
            factors=(
                "existing competences only, here and now, including for a fleksjob",
                "no rejection may point to possibilities of developing the work capacity",
                "open treatment options can mean the reduction is not yet permanent",
            ),
            formal=False,
        )
    source = "lov om social pension § 26 a, stk. 3; § 26 c"
    hours = app.declared_weekly_work_capacity_hours
    if hours > MAX_WORK_CAPACITY_HOURS:
        return RuleResult(
            rule="work_capacity",
            outcome="not_met",
            reason=f"declared work capacity is above {MAX_WORK_CAPACITY_HOURS} hours a week relative to the latest job",
            source=source,
            factors=("health information may show a lower capacity than declared",),
            formal=False,
        )
    if app.offered_capacity_development:
        return RuleResult(
            rule="work_capacity",
            outcome="not_met",
            reason="offers to develop the work capacity exist; the condition requires that there are none",
            source=source,
            factors=("whether the offers are relevant and could develop the work capacity",),
            formal=False,
        )
    if app.latest_job_months < LATEST_JOB_MIN_MONTHS:
        return RuleResult(
            rule="work_capacity",
            outcome="needs_assessment",
            reason=f"the latest job lasted under {LATEST_JOB_MIN_MONTHS} months: which job is the reference for "
            "the work capacity must be assessed",
            source=source,
            factors=(
                f"the latest job of about {LATEST_JOB_MIN_MONTHS} months or more, and its work functions",
                "resources and challenges in that job",
            ),
            formal=False,
        )
    return RuleResult(
        rule="work_capacity",
        outcome="met",
        reason=f"declared capacity at most {MAX_WORK_CAPACITY_HOURS} hours a week relative to a latest job of "
        f"{LATEST_JOB_MIN_MONTHS} months or more, no offers to develop it; health information must confirm it",
        source=source,
        formal=False,
    )


def prior_benefit(app: Application) -> RuleResult:
    source = "lov om social pension § 26 a, stk. 5" if app.case_type is _SP else f"{_GUIDE}: almindelige betingelser"
    if app.prior_benefit is PriorBenefit.NONE:
        return RuleResult(
            rule="prior_benefit",
            outcome="met",
            reason="no førtidspension or invaliditetsydelse granted before",
            source=source,
        )
    return RuleResult(
        rule="prior_benefit",
        outcome="not_met",
        reason=f"{app.prior_benefit.value} has already been granted",
        source=source,
    )


def citizenship(app: Application) -> RuleResult:
    if app.danish_citizen_or_equivalent:
        return RuleResult(
            rule="citizenship",
            outcome="met",
            reason="Danish citizenship or an EU/convention equivalent",
            source=_GENERAL,
        )
    return RuleResult(
        rule="citizenship",
        outcome="not_met",
        reason="neither Danish citizenship nor an EU/convention equivalent",
        source=_GENERAL,
    )


def residence(app: Application) -> RuleResult:
    if app.resides_in_denmark:
        return RuleResult(rule="residence", outcome="met", reason="resides in Denmark", source=_GENERAL)
    return RuleResult(rule="residence", outcome="not_met", reason="does not reside in Denmark", source=_GENERAL)


def residence_years(app: Application) -> RuleResult:
    if app.residence_years_15_to_pension_age >= MIN_RESIDENCE_YEARS:
        return RuleResult(
            rule="residence_years",
            outcome="met",
            reason=f"at least {MIN_RESIDENCE_YEARS} years' residence between age 15 and folkepensionsalder",
            source=_GENERAL,
        )
    return RuleResult(
        rule="residence_years",
        outcome="not_met",
        reason=f"fewer than {MIN_RESIDENCE_YEARS} years' residence between age 15 and folkepensionsalder",
        source=_GENERAL,
    )
