"""The load generator: population-weighted kommuner, valid seeded applications in the right mix, and submission
to POST /v1/applications of the real API (tests/api/conftest.py's stack) under stable idempotency keys."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import date

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.kommune_schemas import ApplicationSubmission
from domain.application import Application, CaseType, EmploymentKind, birth_date_from_cpr, parse_cpr
from sim.client import ApiResponse, SagsflowApiClient
from sim.load import (
    ApplicationFactory,
    GeneratedApplication,
    LoadStats,
    folkepension_age_months,
    pension_date,
    run_load,
)
from sim.population import PopulationSampler, by_kode, total_population
from tests.api.conftest import Stack, eventually
from tests.api.conftest import stack as stack  # the module's own stack (its fixtures, re-exported for pytest)
from tests.api.conftest import stack_profiles as stack_profiles
from tests.kommune.helpers import served

RECEIVED = date(2021, 3, 1)


def full_time_years(app: Application) -> float:
    """Full-time equivalents as the rules describe them: >= 27 h/week is full time, less counts in proportion."""
    total = 0.0
    for p in app.employment:
        end = p.end or app.received_on
        total += (end - p.start).days / 365.25 * min(1.0, p.weekly_hours / 27)
    return total


def test_kommuner_follow_population() -> None:
    sampler = PopulationSampler()
    rng = random.Random(5)
    n = 40_000
    counts = Counter(sampler.sample(rng) for _ in range(n))
    total = total_population()
    assert total == 5_932_561
    for kode in ("101", "751", "561", "329"):
        expected = by_kode()[kode].indbyggere / total
        assert abs(counts[kode] / n - expected) < 0.01, kode
    regions: Counter[str] = Counter()
    for kode, c in counts.items():
        regions[by_kode()[kode].region] += c
    for region, c in regions.items():
        expected = sum(k.indbyggere for k in by_kode().values() if k.region == region) / total
        assert abs(c / n - expected) < 0.015, region
    assert len(counts) > 90  # applications come from (nearly) every kommune


def test_applications_are_valid_seeded_and_in_the_right_mix() -> None:
    factory = ApplicationFactory(seed=11)
    generated = [factory.generate(n, RECEIVED) for n in range(1, 1501)]
    verdicts = Counter(g.expected_verdict for g in generated)
    assert 0.05 <= verdicts["formal_rejection"] / len(generated) <= 0.10
    assert verdicts["dispatch"] / len(generated) > 0.65
    assert 0.10 <= verdicts["needs_assessment"] / len(generated) <= 0.25
    assert 0.01 < sum(g.application.case_type is CaseType.SENIORFOERTIDSPENSION for g in generated) / 1500 < 0.08
    assert len({g.idempotency_key for g in generated}) == 1500
    assert len({g.application.applicant.cpr for g in generated}) > 1490

    for g in generated:
        app = Application.model_validate(g.application.model_dump(mode="json"))  # survives the wire
        assert app == g.application
        assert parse_cpr(app.applicant.cpr) == app.applicant.cpr
        birth = birth_date_from_cpr(app.applicant.cpr)
        age = (RECEIVED - birth).days / 365.25
        assert 59.5 < age < 67.5, g
        to_pension = (pension_date(birth) - RECEIVED).days / 365.25
        if g.archetype == "too_young":
            assert to_pension > 6.5
        else:
            assert 0 < to_pension <= 6.0
        periods = app.employment
        assert periods
        assert all(a.end is not None and a.end < b.start for a, b in itertools.pairwise(periods))
        assert all(p.start >= birth.replace(year=birth.year + 16) for p in periods)
        years = full_time_years(app)
        if g.archetype == "borderline_years":
            assert 20 <= years < 25
        elif g.archetype == "too_few_years":
            assert years < 20
        else:
            assert years >= 25 or any(p.kind is EmploymentKind.FLEKSJOB for p in periods), (g, years)
        if g.archetype == "capacity_too_high":
            assert app.declared_weekly_work_capacity_hours > 15
        elif g.expected_verdict != "formal_rejection":
            assert app.declared_weekly_work_capacity_hours <= 15

    again = ApplicationFactory(seed=11).generate(42, RECEIVED)
    assert again.application == generated[41].application
    assert ApplicationFactory(seed=12).generate(42, RECEIVED).application != again.application


def test_pension_age_table() -> None:
    assert folkepension_age_months(date(1953, 12, 31)) == 65 * 12
    assert folkepension_age_months(date(1954, 6, 30)) == 65 * 12 + 6
    assert folkepension_age_months(date(1955, 7, 1)) == 67 * 12
    assert folkepension_age_months(date(1963, 1, 1)) == 68 * 12
    assert folkepension_age_months(date(1971, 1, 1)) == 70 * 12
    assert pension_date(date(1960, 2, 29)) == date(2027, 2, 28)


async def test_run_load_files_cases_through_the_real_api(stack: Stack) -> None:
    responses: list[ApiResponse] = []

    async def collect(_: GeneratedApplication, response: ApiResponse | None) -> None:
        assert response is not None
        responses.append(response)

    async def load() -> LoadStats:
        async with SagsflowApiClient(stack.url, intake_token=stack.token("Load", "intake")) as client:
            return await run_load(
                client, ApplicationFactory(seed=3), compression=60_000_000, count=8, concurrency=4, on_result=collect
            )

    stats = await load()
    assert (stats.submitted, stats.failed, stats.by_status) == (8, 0, {201: 8})
    cases = {str(r.body["case_id"]) for r in responses}
    assert len(cases) == 8
    for case_id in cases:  # each a case of its own, whose workflow logs it as received (a moment after the 201)

        async def logged(case_id: str = case_id) -> bool:
            return (await stack.types(case_id))[:1] == ["ApplicationReceived"]

        await eventually(logged, f"case {case_id} received in the log")

    # The same seed again sends the same keys: the API answers with the cases it already has, and files none.
    responses.clear()
    again = await load()
    assert again.failed == 0
    assert {str(r.body["case_id"]) for r in responses} == cases
    assert all(r.body["replayed"] for r in responses)


class OverloadedIntake:
    """A stand-in for our intake route, kept on purpose: it answers 503 to each key's first attempt, which the real
    API cannot be made to do on demand. It checks only the load generator's own client behaviour (a retry under the
    same idempotency key); the real API's answers to it are tested above."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.bodies: dict[str, ApplicationSubmission] = {}

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/applications")
        async def intake(request: Request) -> JSONResponse:
            body = ApplicationSubmission.model_validate_json(await request.body())
            self.seen[body.idempotency_key] += 1
            if self.seen[body.idempotency_key] == 1:
                return JSONResponse(status_code=503, content={"error": "busy"})
            self.bodies[body.idempotency_key] = body
            return JSONResponse(status_code=201, content={"case_id": f"c-{len(self.bodies)}", "status": "received"})

        return app


async def test_run_load_retries_a_503_with_the_same_key() -> None:
    intake = OverloadedIntake()
    async with served(intake.app()) as url, SagsflowApiClient(url) as client:
        stats = await run_load(
            client,
            ApplicationFactory(seed=3),
            rate_per_week=300,
            compression=60_000_000,
            count=20,
            concurrency=4,
            first_retry_delay=0.01,
        )
    assert stats.submitted == 20
    assert stats.failed == 0
    assert stats.by_status == {201: 20}
    assert set(intake.seen.values()) == {2}  # each retried once, under the same key
    assert len(intake.bodies) == 20
    assert all(key.startswith("load-3-") for key in intake.bodies)


async def test_unreachable_api_is_counted_as_failed() -> None:
    async with httpx.AsyncClient() as http:
        client = SagsflowApiClient("http://127.0.0.1:9", http=http)
        stats = await run_load(
            client, ApplicationFactory(seed=3), compression=60_000_000, count=1, attempts=3, first_retry_delay=0.01
        )
    assert stats.failed == 1
