from __future__ import annotations

import random
from datetime import date, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.application import Application, AttachmentStatus, EmploymentKind, EmploymentPeriod
from domain.events import RuleSummary, Verdict
from domain.prescreen import (
    DAYS_PER_YEAR,
    SHORT_NON_ATTACHMENT_MONTHS,
    PreScreening,
    RuleResult,
    covered_days,
    details,
    full_time_days,
    full_time_years,
    prescreen,
    summary,
    verdict_for,
)
from tests.domain.factories import application, d

RULES = (
    "age_window",
    "full_time_years",
    "current_attachment",
    "work_capacity",
    "prior_benefit",
    "citizenship",
    "residence",
    "residence_years",
)
# The factories' applicant (CPR 150562-...) is born 15 May 1962: folkepensionsalder 67 on 15 May 2029.
# Seniorpension: window opens 15 May 2023, applications from 15 Nov 2022. Seniorførtidspension: from 15 May 2024.
IN_WINDOW = "2023-06-01"


def app(**overrides: object) -> Application:
    return application(**{"received_on": IN_WINDOW, **overrides})


def sfp(**overrides: object) -> Application:
    return app(**{"case_type": "seniorfoertidspension", "received_on": "2024-06-03", **overrides})


def outcome(result: PreScreening, rule: str) -> str:
    return result.result(rule).outcome


def test_a_clear_seniorpension_case_is_dispatched() -> None:
    result = prescreen(app())
    assert result.verdict is Verdict.DISPATCH
    assert tuple(r.rule for r in result.results) == RULES
    assert all(r.outcome == "met" for r in result.results)
    assert result.screened_on == d(IN_WINDOW)


@pytest.mark.parametrize(
    ("received", "expected"),
    [
        ("2022-11-14", "not_met"),  # a day before § 26 b allows an application
        ("2022-11-15", "met"),  # 6 months before the window opens
        ("2023-05-14", "met"),
        ("2023-05-15", "met"),  # 6 years left
        ("2029-05-14", "met"),
        ("2029-05-15", "not_met"),  # folkepensionsalder reached
    ],
)
def test_seniorpension_age_window_boundaries(received: str, expected: str) -> None:
    result = prescreen(app(received_on=received))
    assert outcome(result, "age_window") == expected
    if expected == "not_met":
        assert result.verdict is Verdict.FORMAL_REJECTION


def test_early_application_says_when_entitlement_starts() -> None:
    reason = prescreen(app(received_on="2023-01-02")).result("age_window").reason
    assert "§ 26 b" in reason
    assert "6 years 4 months before folkepensionsalder (67)" in reason


@pytest.mark.parametrize(
    ("received", "expected"),
    [("2024-05-14", "not_met"), ("2024-05-15", "met"), ("2029-05-14", "met"), ("2029-05-15", "not_met")],
)
def test_seniorfoertidspension_age_window_is_five_years(received: str, expected: str) -> None:
    assert outcome(prescreen(sfp(received_on=received)), "age_window") == expected


def _since(on: str, days: int, hours: float = 37, kind: str = "employment") -> dict[str, object]:
    return {"start": (d(on) - timedelta(days=days - 1)).isoformat(), "end": None, "weekly_hours": hours, "kind": kind}


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (9132, "met"),  # 25 × 365.25 = 9131.25 days
        (9131, "needs_assessment"),
        (7305, "needs_assessment"),  # exactly 20 years
        (7304, "not_met"),
        (0, "not_met"),
    ],
)
def test_full_time_years_thresholds(days: int, expected: str) -> None:
    employment = [_since(IN_WINDOW, days)] if days else []
    result = prescreen(app(employment=employment))
    assert outcome(result, "full_time_years") == expected
    if expected == "needs_assessment":
        assert result.verdict is Verdict.NEEDS_ASSESSMENT
        assert result.result("full_time_years").factors


def test_part_time_is_converted_and_overlaps_count_once() -> None:
    on = d("2023-06-01")
    ten_years = 3653  # 2013-06-01 to 2023-06-01, both included
    start = (on - timedelta(days=ten_years - 1)).isoformat()

    def period(hours: float, kind: str = "employment") -> EmploymentPeriod:
        return EmploymentPeriod.model_validate({"start": start, "weekly_hours": hours, "kind": kind})

    full = Fraction(ten_years)
    assert full_time_days([period(37)], on) == full
    assert full_time_days([period(27)], on) == full
    assert full_time_days([period(13.5)], on) == full / 2
    assert full_time_days([period(13.5), period(13.5)], on) == full  # two half-time jobs make full time
    assert full_time_days([period(37), period(37)], on) == full  # never counted twice
    assert full_time_days([period(20), period(20)], on) == full  # capped at one full-time day a day
    assert full_time_days([period(10, "fleksjob")], on) == full  # a fleksjob counts as full time
    assert full_time_days([period(9, "self_employed")], on) == full / 3


def test_periods_after_the_screening_day_do_not_count() -> None:
    on = d("2023-06-01")
    later = EmploymentPeriod(start=d("2023-06-02"), weekly_hours=37)
    ongoing = EmploymentPeriod(start=d("2023-05-31"), weekly_hours=37)
    assert full_time_days([later], on) == 0
    assert full_time_days([ongoing], on) == 2
    assert covered_days([later, ongoing], on) == 2


def test_foreign_and_self_employed_periods_are_flagged_for_documentation() -> None:
    employment = [
        {"start": "1980-01-01", "end": "1999-12-31", "weekly_hours": 37, "foreign": True},
        {"start": "2000-01-01", "end": None, "weekly_hours": 37, "kind": "self_employed"},
    ]
    reason = prescreen(app(employment=employment)).result("full_time_years").reason
    assert "1 foreign period(s)" in reason
    assert "self-employed" in reason


def test_current_attachment_is_informational_for_seniorpension() -> None:
    att = {"status": "kontanthjaelp", "since": "2010-01-01"}
    result = prescreen(app(current_attachment=att))
    r = result.result("current_attachment")
    assert (r.outcome, r.formal) == ("met", False)
    assert result.verdict is Verdict.DISPATCH


@pytest.mark.parametrize("status", [s.value for s in AttachmentStatus if s.value not in ("kontanthjaelp", "no_income")])
def test_substitute_incomes_meet_the_current_attachment(status: str) -> None:
    result = prescreen(sfp(current_attachment={"status": status, "since": "2020-01-01"}))
    assert outcome(result, "current_attachment") == "met"


@pytest.mark.parametrize("status", ["kontanthjaelp", "no_income"])
def test_short_and_long_periods_without_attachment(status: str) -> None:
    on = d("2024-06-03")
    short_since = on - timedelta(days=31 * (SHORT_NON_ATTACHMENT_MONTHS - 1))
    short = prescreen(sfp(current_attachment={"status": status, "since": short_since.isoformat()}))
    assert outcome(short, "current_attachment") == "needs_assessment"
    assert short.result("current_attachment").factors
    long = prescreen(sfp(current_attachment={"status": status, "since": "2023-12-03"}))  # exactly 6 months
    assert outcome(long, "current_attachment") == "not_met"
    assert long.verdict is Verdict.FORMAL_REJECTION


def test_health_related_stop_within_five_years_needs_assessment() -> None:
    def att(stopped_on: str | None) -> dict[str, object]:
        return {
            "status": "kontanthjaelp",
            "since": "2020-01-01",
            "stopped_work_for_health_reasons": True,
            "stopped_work_on": stopped_on,
        }

    assert outcome(prescreen(sfp(current_attachment=att("2019-06-03"))), "current_attachment") == "needs_assessment"
    assert outcome(prescreen(sfp(current_attachment=att("2019-06-02"))), "current_attachment") == "not_met"
    unknown = prescreen(sfp(current_attachment=att(None))).result("current_attachment")
    assert unknown.outcome == "needs_assessment"
    assert any("when work stopped" in f for f in unknown.factors)


def test_the_screening_day_moves_the_look_back() -> None:
    att = {"status": "kontanthjaelp", "since": "2024-03-01"}
    application_ = sfp(current_attachment=att)
    assert outcome(prescreen(application_), "current_attachment") == "needs_assessment"
    later = prescreen(application_, on=d("2024-09-02"))
    assert later.screened_on == d("2024-09-02")
    assert outcome(later, "current_attachment") == "not_met"


def test_seniorpension_work_capacity() -> None:
    assert outcome(prescreen(app(declared_weekly_work_capacity_hours=15)), "work_capacity") == "met"
    above = prescreen(app(declared_weekly_work_capacity_hours=15.5))
    assert outcome(above, "work_capacity") == "not_met"
    # A concrete assessment, not a formal condition: a caseworker weighs it, the case is not rejected here.
    assert above.verdict is Verdict.NEEDS_ASSESSMENT
    offered = prescreen(app(offered_capacity_development=True))
    assert outcome(offered, "work_capacity") == "not_met"
    assert offered.verdict is Verdict.NEEDS_ASSESSMENT
    short_job = prescreen(app(latest_job_months=11))
    assert outcome(short_job, "work_capacity") == "needs_assessment"
    assert short_job.result("work_capacity").factors


def test_seniorfoertidspension_work_capacity_is_always_assessed() -> None:
    for hours in (0, 10, 37):
        result = prescreen(sfp(declared_weekly_work_capacity_hours=hours))
        r = result.result("work_capacity")
        assert r.outcome == "needs_assessment"
        assert len(r.factors) == 3
        assert result.verdict is Verdict.NEEDS_ASSESSMENT


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("prior_benefit", "foertidspension", "prior_benefit"),
        ("prior_benefit", "invaliditetsydelse", "prior_benefit"),
        ("danish_citizen_or_equivalent", False, "citizenship"),
        ("resides_in_denmark", False, "residence"),
        ("residence_years_15_to_pension_age", 2.9, "residence_years"),
    ],
)
def test_exclusions_are_formal_rejections(field: str, value: object, rule: str) -> None:
    for make in (app, sfp):
        result = prescreen(make(**{field: value}))
        assert outcome(result, rule) == "not_met"
        assert result.verdict is Verdict.FORMAL_REJECTION


def test_three_years_residence_is_enough() -> None:
    assert outcome(prescreen(app(residence_years_15_to_pension_age=3)), "residence_years") == "met"


def test_summary_and_details_for_the_event() -> None:
    result = prescreen(sfp())
    rules = summary(result)
    assert all(isinstance(r, RuleSummary) for r in rules)
    assert [(r.rule, r.outcome) for r in rules] == [(r.rule, r.outcome) for r in result.results]
    body = details(result)
    assert body["verdict"] == result.verdict.value
    assert PreScreening.model_validate(body) == result


def test_verdict_for_precedence() -> None:
    def r(outcome: str, formal: bool = True) -> RuleResult:
        return RuleResult.model_validate(
            {"rule": "x", "outcome": outcome, "reason": "r", "source": "s", "formal": formal}
        )

    assert verdict_for([]) is Verdict.DISPATCH
    assert verdict_for([r("met"), r("needs_assessment")]) is Verdict.NEEDS_ASSESSMENT
    assert verdict_for([r("needs_assessment"), r("not_met")]) is Verdict.FORMAL_REJECTION
    assert verdict_for([r("not_met", formal=False)]) is Verdict.NEEDS_ASSESSMENT


# --- properties --------------------------------------------------------------------------------------------------

UNTIL = date(2023, 6, 1)


@st.composite
def periods(draw: st.DrawFn) -> EmploymentPeriod:
    start = draw(st.dates(min_value=date(1970, 1, 1), max_value=date(2024, 12, 31)))
    length = draw(st.none() | st.integers(0, 12_000))
    return EmploymentPeriod(
        start=start,
        end=None if length is None else start + timedelta(days=length),
        weekly_hours=draw(st.floats(min_value=0.5, max_value=80, allow_nan=False)),
        kind=draw(st.sampled_from(list(EmploymentKind))),
        foreign=draw(st.booleans()),
    )


@given(st.lists(periods(), max_size=12))
def test_full_time_years_never_exceed_the_calendar_years_covered(ps: list[EmploymentPeriod]) -> None:
    fte = full_time_days(ps, UNTIL)
    covered = covered_days(ps, UNTIL)
    assert 0 <= fte <= covered
    assert full_time_years(ps, UNTIL) <= covered / float(DAYS_PER_YEAR) + 1e-9
    if ps:
        first = min(p.start for p in ps)
        assert covered <= max(0, (UNTIL - first).days + 1)


@given(st.lists(periods(), max_size=10), periods())
def test_adding_a_period_never_reduces_the_years(ps: list[EmploymentPeriod], extra: EmploymentPeriod) -> None:
    assert full_time_days([*ps, extra], UNTIL) >= full_time_days(ps, UNTIL)
    assert full_time_years([*ps, extra], UNTIL) >= full_time_years(ps, UNTIL)


@given(st.lists(periods(), max_size=10), st.randoms(use_true_random=False))
def test_order_of_periods_does_not_matter(ps: list[EmploymentPeriod], rnd: random.Random) -> None:
    shuffled = list(ps)
    rnd.shuffle(shuffled)
    assert full_time_days(shuffled, UNTIL) == full_time_days(ps, UNTIL)


NAME = "Quintessa Vøllebæk"


@st.composite
def applications(draw: st.DrawFn) -> Application:
    born = draw(st.dates(min_value=date(1950, 1, 1), max_value=date(1975, 12, 31)))
    # 7th digit 0-3 puts every year 1900-1999 in the 1900s.
    cpr = f"{born:%d%m%y}-{draw(st.integers(0, 3))}{draw(st.integers(0, 999)):03d}"
    received = draw(st.dates(min_value=date(2014, 1, 1), max_value=date(2045, 12, 31)))
    since = draw(st.dates(min_value=date(1990, 1, 1), max_value=received))
    stopped_on = draw(st.none() | st.dates(min_value=date(1990, 1, 1), max_value=received))
    return Application.model_validate(
        {
            "case_type": draw(st.sampled_from(["seniorpension", "seniorfoertidspension"])),
            "applicant": {"cpr": cpr, "name": NAME},
            "kommune_kode": draw(st.sampled_from(["101", "329", "766", "561", "810"])),
            "received_on": received,
            "employment": draw(st.lists(periods(), max_size=6)),
            "current_attachment": {
                "status": draw(st.sampled_from(list(AttachmentStatus))),
                "since": since,
                "stopped_work_for_health_reasons": draw(st.booleans()),
                "stopped_work_on": stopped_on,
            },
            "declared_weekly_work_capacity_hours": draw(st.floats(0, 40, allow_nan=False)),
            "latest_job_months": draw(st.integers(0, 400)),
            "offered_capacity_development": draw(st.booleans()),
            "prior_benefit": draw(st.sampled_from(["none", "none", "foertidspension", "invaliditetsydelse"])),
            "danish_citizen_or_equivalent": draw(st.booleans()),
            "resides_in_denmark": draw(st.booleans()),
            "residence_years_15_to_pension_age": draw(st.floats(0, 60, allow_nan=False)),
            "consent_to_health_records": draw(st.booleans()),
        }
    )


@settings(max_examples=300, deadline=None)
@given(applications())
def test_verdict_is_consistent_with_results_and_reasons_hold_no_personal_data(application_: Application) -> None:
    result = prescreen(application_)
    assert tuple(r.rule for r in result.results) == RULES
    formal_not_met = any(r.outcome == "not_met" and r.formal for r in result.results)
    short_of_met = any(r.outcome != "met" for r in result.results)
    if formal_not_met:
        assert result.verdict is Verdict.FORMAL_REJECTION
    elif short_of_met:
        assert result.verdict is Verdict.NEEDS_ASSESSMENT
    else:
        assert result.verdict is Verdict.DISPATCH
    cpr = application_.applicant.cpr
    birth = application_.birth_date
    for r in result.results:
        assert r.reason
        assert r.source
        if r.outcome == "needs_assessment":
            assert r.factors, r.rule
        text = " ".join((r.reason, r.source, *r.factors))
        for secret in (cpr, cpr.replace("-", ""), NAME, birth.isoformat(), f"{birth:%d%m%y}"):
            assert secret not in text
    # The same application screened twice gives the same answer.
    assert prescreen(application_) == result


@given(applications(), st.integers(0, 400))
def test_screening_later_keeps_the_age_window_and_never_loses_work(application_: Application, days_later: int) -> None:
    # The age window is judged on the day received (§ 26 b is about applying); work up to the screening day counts.
    on = application_.received_on + timedelta(days=days_later)
    first = prescreen(application_)
    later = prescreen(application_, on=on)
    assert first.result("age_window") == later.result("age_window")
    assert full_time_days(application_.employment, on) >= full_time_days(application_.employment, first.screened_on)
    if first.result("full_time_years").outcome == "met":
        assert later.result("full_time_years").outcome == "met"
