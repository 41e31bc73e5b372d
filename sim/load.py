"""The load generator: seeded, realistic applications at a rate (default 300 a week), spread by population.

Each application is drawn from an *archetype* that says what pre-screening should make of it, in proportions close
to 2021's: about three in four clear cases to send to the kommune, about one in six that a caseworker must assess
(20–25 years of full-time work, or a recent attachment that needs a concrete assessment) and about one in twelve
that fail a formal condition (too few years, outside the age window, førtidspension already granted, work capacity
above 15 hours, not resident). Applicants are 60–67 at application, with plausible CPR numbers (DDMMYY-SSSS,
century digit consistent with the birth year; modulus 11 is deliberately not applied) and made-up names.

`ApplicationFactory(seed).generate(n, received_on)` is deterministic per (seed, n). `run_load` submits them to
`POST /v1/applications` through `SagsflowApiClient` at Poisson arrival times, optionally time-compressed.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

import httpx

from domain.application import (
    Applicant,
    Application,
    AttachmentStatus,
    CaseType,
    CurrentAttachment,
    EmploymentKind,
    EmploymentPeriod,
    PriorBenefit,
)
from domain.calendar import Duration, Unit, add_to_date
from runtime.logs import get_logger
from sim.behaviour import rng_for
from sim.client import ApiResponse, SagsflowApiClient
from sim.population import PopulationSampler

log = get_logger(__name__)

WEEK_SECONDS = 7 * 86400
ExpectedVerdict = Literal["dispatch", "needs_assessment", "formal_rejection"]

# (archetype, weight, what pre-screening should say)
ARCHETYPES: tuple[tuple[str, float, ExpectedVerdict], ...] = (
    ("clear", 0.755, "dispatch"),
    ("borderline_years", 0.11, "needs_assessment"),
    ("attachment_assessment", 0.05, "needs_assessment"),
    ("too_few_years", 0.035, "formal_rejection"),
    ("too_young", 0.02, "formal_rejection"),
    ("capacity_too_high", 0.015, "formal_rejection"),
    ("prior_foertidspension", 0.01, "formal_rejection"),
    ("not_resident", 0.005, "formal_rejection"),
)
P_SENIORFOERTIDSPENSION = 0.04

FIRST_NAMES = (
    "Anne", "Kirsten", "Hanne", "Mette", "Susanne", "Lene", "Helle", "Birgitte", "Bente", "Pia", "Karen", "Inge",
    "Jens", "Peter", "Lars", "Henrik", "Søren", "Niels", "Michael", "Jan", "Hans", "Per", "Ole", "Poul", "Bo", "Erik",
)  # fmt: skip
SURNAMES = (
    "Nielsen", "Jensen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen", "Sørensen", "Rasmussen",
    "Jørgensen", "Petersen", "Madsen", "Kristensen", "Olsen", "Thomsen", "Christiansen", "Poulsen", "Johansen",
    "Møller", "Mortensen", "Knudsen", "Jakobsen", "Mikkelsen", "Frederiksen", "Lund", "Holm", "Schmidt",
)  # fmt: skip

GOOD_ATTACHMENT: tuple[tuple[AttachmentStatus, float], ...] = (
    (AttachmentStatus.WORKING, 0.30),
    (AttachmentStatus.SYGEDAGPENGE, 0.40),
    (AttachmentStatus.ARBEJDSLOESHEDSDAGPENGE, 0.12),
    (AttachmentStatus.RESSOURCEFORLOEBSYDELSE, 0.08),
    (AttachmentStatus.LEDIGHEDSYDELSE, 0.05),
    (AttachmentStatus.CARE_OF_RELATIVE, 0.03),
    (AttachmentStatus.CARE_OF_DISABLED_CHILD, 0.02),
)


def folkepension_age_months(birth: date) -> int:
    """Folkepensionsalder in months by birth date (lov om social pension § 1 a, as amended 2025; DOMAIN.md)."""
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


def pension_date(birth: date) -> date:
    return add_to_date(birth, Duration(quantity=folkepension_age_months(birth), unit=Unit.MONTHS))


def _years(x: float) -> timedelta:
    return timedelta(days=round(x * 365.25))


def birth_date_for(received_on: date, years_to_pension: float, rng: random.Random) -> date:
    """A birth date such that folkepension starts about `years_to_pension` after `received_on`."""
    target = received_on + _years(years_to_pension)
    birth = target - _years(67)
    for _ in range(4):  # pension age depends on the birth date: settle the fixed point
        birth = target - timedelta(days=(pension_date(birth) - birth).days)
    return birth + timedelta(days=rng.randint(-3, 3))


def birth_date_in_window(received_on: date, lo: float, hi: float, rng: random.Random) -> date:
    """A birth date with folkepension between `lo` and `hi` years after `received_on`. Pension dates jump where the
    pension age steps up (no one reaches it in some months), so a draw that lands in such a gap is drawn again."""
    for _ in range(50):
        birth = birth_date_for(received_on, rng.uniform(lo, hi), rng)
        if lo <= (pension_date(birth) - received_on).days / 365.25 <= hi:
            return birth
    raise ValueError(f"no birth date puts folkepension {lo}-{hi} years after {received_on}")


def cpr_for(birth: date, rng: random.Random, *, female: bool) -> str:
    # 7th digit 0-3: born 1900-1999 for every year, so the number's century is always right for our ages.
    serial = rng.randint(0, 3) * 1000 + rng.randint(0, 99) * 10
    last = rng.choice((0, 2, 4, 6, 8) if female else (1, 3, 5, 7, 9))
    return f"{birth:%d%m%y}-{serial + last:04d}"


def _weighted(rng: random.Random, options: tuple[tuple[AttachmentStatus, float], ...]) -> AttachmentStatus:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def employment_history(
    rng: random.Random, birth: date, work_end: date | None, today: date, full_time_years: float, *, plain: bool
) -> tuple[EmploymentPeriod, ...]:
    """Jobs laid out backwards from `work_end` (None: still working) adding up to `full_time_years` of full-time
    work. `plain` keeps every job at 37 h/week, Danish, employed: for archetypes whose verdict hinges on the years,
    so the expected verdict does not depend on how part-time or foreign work is weighed."""
    end = work_end or today
    earliest = birth + _years(16)
    available = (end - earliest).days / 365.25
    full_time_years = min(full_time_years, available - 0.5)
    k = rng.randint(2, 6)
    shares = [rng.gammavariate(2.0, 1.0) for _ in range(k)]
    total = sum(shares)
    jobs: list[tuple[float, float, EmploymentKind, bool]] = []  # (full-time years, weekly hours, kind, foreign)
    for i, s in enumerate(shares):
        ft = full_time_years * s / total
        hours, kind, foreign = 37.0, EmploymentKind.EMPLOYMENT, False
        if not plain:
            u = rng.random()
            if u < 0.15:
                hours = rng.choice((30.0, 32.0, 34.0))
            elif u < 0.20 and i < k - 1:
                hours = rng.choice((20.0, 24.0))
            if rng.random() < 0.05:
                kind = EmploymentKind.SELF_EMPLOYED
            elif i == k - 1 and rng.random() < 0.05:
                kind = EmploymentKind.FLEKSJOB
            foreign = rng.random() < 0.03
        jobs.append((ft, hours, kind, foreign))
    durations = [ft * max(1.0, 27.0 / h) for ft, h, _, _ in jobs]
    gaps = [rng.expovariate(1 / 0.8) if rng.random() < 0.4 else 0.0 for _ in range(k - 1)]
    room = available - 0.2  # leaves room for whole-day rounding of every period
    if sum(durations) + sum(gaps) > room:
        gaps = [0.0] * (k - 1)
        if sum(durations) > room:
            jobs = [(ft, 37.0, kind, foreign) for ft, _, kind, foreign in jobs]
            durations = [ft for ft, *_ in jobs]
    periods: list[EmploymentPeriod] = []
    cursor = end
    for i in range(k - 1, -1, -1):
        ft, hours, kind, foreign = jobs[i]
        start = max(earliest, cursor - _years(durations[i]))
        period_end = None if (i == k - 1 and work_end is None) else cursor
        periods.append(EmploymentPeriod(start=start, end=period_end, weekly_hours=hours, kind=kind, foreign=foreign))
        cursor = start - _years(gaps[i - 1]) - timedelta(days=1) if i > 0 else start
    return tuple(reversed(periods))


@dataclass(frozen=True)
class GeneratedApplication:
    n: int
    idempotency_key: str
    archetype: str
    expected_verdict: ExpectedVerdict
    application: Application

    def __repr__(self) -> str:  # the application is personal-shaped data even when fake: keep reprs short
        return f"GeneratedApplication(n={self.n}, archetype={self.archetype!r})"


class ApplicationFactory:
    def __init__(self, seed: int = 1, sampler: PopulationSampler | None = None) -> None:
        self.seed = seed
        self.sampler = sampler or PopulationSampler()

    def generate(self, n: int, received_on: date) -> GeneratedApplication:
        rng = rng_for(self.seed, "application", str(n))
        kode = self.sampler.sample(rng)
        archetype, _, expected = rng.choices(ARCHETYPES, weights=[w for _, w, _ in ARCHETYPES])[0]
        case_type = CaseType.SENIORFOERTIDSPENSION if rng.random() < P_SENIORFOERTIDSPENSION else CaseType.SENIORPENSION
        window = 5.0 if case_type is CaseType.SENIORFOERTIDSPENSION else 6.0
        lo, hi = (6.7, 7.4) if archetype == "too_young" else (0.5, window - 0.3)
        birth = birth_date_in_window(received_on, lo, hi, rng)
        female = rng.random() < 0.55
        names = FIRST_NAMES[:12] if female else FIRST_NAMES[12:]
        name = f"{rng.choice(names)} {rng.choice(SURNAMES)}"

        if archetype == "attachment_assessment":
            status = rng.choice((AttachmentStatus.KONTANTHJAELP, AttachmentStatus.NO_INCOME))
            since = received_on - timedelta(days=rng.randint(30, 150))
        else:
            status = _weighted(rng, GOOD_ATTACHMENT)
            since = received_on - timedelta(days=rng.randint(14, 540))
        working = status is AttachmentStatus.WORKING
        health_stop = not working and (
            archetype == "attachment_assessment"
            or status in {AttachmentStatus.SYGEDAGPENGE, AttachmentStatus.RESSOURCEFORLOEBSYDELSE}
            or rng.random() < 0.4
        )

        ft_years = {
            "borderline_years": rng.uniform(20.5, 24.5),
            "too_few_years": rng.uniform(8.0, 19.0),
        }.get(archetype, rng.uniform(30.0, 42.0))
        plain = archetype in {"borderline_years", "too_few_years"}
        employment = employment_history(rng, birth, None if working else since, received_on, ft_years, plain=plain)
        last = employment[-1]
        last_end = last.end or received_on
        latest_job_months = max(1, (last_end - last.start).days * 12 // 365)
        if working:
            since = last.start

        capacity = (
            float(rng.choice((18, 20, 25, 30)))
            if archetype == "capacity_too_high"
            else float(rng.choice((0, 0, 5, 8, 10, 12, 15)))
        )
        application = Application(
            case_type=case_type,
            applicant=Applicant(cpr=cpr_for(birth, rng, female=female), name=name),
            kommune_kode=kode,
            received_on=received_on,
            employment=employment,
            current_attachment=CurrentAttachment(
                status=status,
                since=since,
                stopped_work_for_health_reasons=health_stop,
                stopped_work_on=since if health_stop else None,
            ),
            declared_weekly_work_capacity_hours=capacity,
            latest_job_months=latest_job_months,
            offered_capacity_development=False,
            prior_benefit=PriorBenefit.FOERTIDSPENSION if archetype == "prior_foertidspension" else PriorBenefit.NONE,
            resides_in_denmark=archetype != "not_resident",
            residence_years_15_to_pension_age=round(rng.uniform(35, 50), 1),
            consent_to_health_records=rng.random() < 0.95,
        )
        return GeneratedApplication(
            n=n,
            idempotency_key=f"load-{self.seed}-{n:07d}",
            archetype=archetype,
            expected_verdict=expected,
            application=application,
        )


def arrival_gaps(rate_per_week: float, rng: random.Random) -> Callable[[], float]:
    """Poisson arrivals: the next gap in model seconds."""
    mean = WEEK_SECONDS / rate_per_week
    return lambda: rng.expovariate(1.0 / mean)


@dataclass
class LoadStats:
    submitted: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    failed: int = 0


async def submit_with_retries(
    client: SagsflowApiClient, generated: GeneratedApplication, *, attempts: int = 5, first_delay: float = 0.5
) -> ApiResponse | None:
    """Retry 5xx and connection errors with the same idempotency key: the API answers a repeat with the first
    answer, so a retry after a lost response creates no second case."""
    delay = first_delay
    for attempt in range(attempts):
        try:
            response = await client.submit_application(generated.idempotency_key, generated.application)
            if response.status_code < 500:
                return response
        except httpx.TransportError:
            pass
        if attempt < attempts - 1:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
    return None


async def run_load(
    client: SagsflowApiClient,
    factory: ApplicationFactory,
    *,
    rate_per_week: float = 300.0,
    compression: float = 1.0,
    count: int | None = None,
    received_on: Callable[[], date] = date.today,
    concurrency: int = 16,
    start_n: int = 1,
    attempts: int = 5,
    first_retry_delay: float = 0.5,
    on_result: Callable[[GeneratedApplication, ApiResponse | None], Awaitable[None]] | None = None,
) -> LoadStats:
    """Submit applications at `rate_per_week` (model time) / `compression` until `count` (None: until cancelled)."""
    stats = LoadStats()
    gap = arrival_gaps(rate_per_week, rng_for(factory.seed, "arrivals"))
    limit = asyncio.Semaphore(concurrency)
    pending: set[asyncio.Task[None]] = set()

    async def one(generated: GeneratedApplication) -> None:
        async with limit:
            response = await submit_with_retries(client, generated, attempts=attempts, first_delay=first_retry_delay)
        if response is None:
            stats.failed += 1
        else:
            stats.by_status[response.status_code] += 1
        if on_result is not None:
            await on_result(generated, response)

    n = start_n
    try:
        while count is None or stats.submitted < count:
            await asyncio.sleep(gap() / compression)
            generated = factory.generate(n, received_on())
            task = asyncio.create_task(one(generated))
            pending.add(task)
            task.add_done_callback(pending.discard)
            stats.submitted += 1
            n += 1
        if pending:
            await asyncio.gather(*pending)
    finally:
        for t in pending:
            t.cancel()
    log.info("load finished", submitted=stats.submitted, failed=stats.failed)
    return stats
