"""The kommune behaviour model: ONE pure piece of code, driven in real time (sim.server) or in Temporal time.

`plan_kommune_response(task, profile, rng)` decides what a kommune will do with a task and when, as a list of
`PlannedAction(after, action)` measured from the moment the kommune received the task, in model (business) time.
`push_response(profile, rng, attempt)` decides how its system answers one push attempt.

Everything here is deterministic given the `random.Random` passed in (use `rng_for(seed, ...)`), does no I/O and
touches no global state, so it may run inside a Temporal workflow: a simulation workflow executes the plan with
`workflow.sleep(a.after)` between actions.

Calibration (see `sim.calibration`): the answer delay is lognormal per kommune with a median that grows with the
kommune's size (about 4 weeks for the smallest, 9 for København; population-weighted median ≈ 7 weeks), so at 300
applications a week well over half of the open cases wait on a kommune, as the KL circular reported in 2021, and
about one task in ten misses the 3-month deadline.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

DAY = timedelta(days=1)
# Used when a task names no documents: the kommune still sends its information.
DEFAULT_DOCUMENTS: tuple[str, ...] = ("oplysninger",)

QUESTIONS: tuple[str, ...] = (
    "Skal helbredsoplysninger fra egen læge indhentes, eller foreligger LÆ 145 allerede?",
    "Er der samtykke til indhentning af helbredsoplysninger fra sygehuset?",
    "Hvilken periode ønskes beskæftigelsesoplysningerne for?",
    "Skal arbejdsfunktioner i seneste job beskrives af arbejdsgiver eller af borgeren?",
)
EXTENSION_REASONS: tuple[str, ...] = (
    "Afventer speciallægeerklæring.",
    "Afventer oplysninger fra tidligere arbejdsgiver.",
    "Travlhed i afdelingen; forventer at svare inden for den ønskede frist.",
)
RETURN_REASON = "Borgeren har ikke bopæl i kommunen."


def rng_for(seed: int, *parts: str) -> random.Random:
    """A private RNG for one (seed, task, ...) tuple: same inputs, same draws, independent of call order."""
    digest = hashlib.sha256(":".join((str(seed), *parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KommuneProfile(_Frozen):
    kode: str
    population: int = Field(ge=0)
    median_response_days: float = Field(gt=0, description="Median time to the final answer")
    sigma: float = Field(default=0.5, ge=0, description="Lognormal shape: spread of answer times")
    p_partial: float = Field(default=0.25, ge=0, le=1, description="Sends part of the documents first")
    p_question: float = Field(default=0.10, ge=0, le=1, description="Asks Seniorpension a question")
    p_extension_when_late: float = Field(
        default=0.5, ge=0, le=1, description="Asks for an extension when it will not make the deadline"
    )
    p_return: float = Field(default=0.015, ge=0, le=1, description="'Not our citizen': returns the task")
    return_candidates: tuple[str, ...] = Field(default=(), description="Kommuner a returned task is sent on to")
    push_5xx_rate: float = Field(default=0.02, ge=0, le=1)
    push_timeout_rate: float = Field(default=0.01, ge=0, le=1)
    # The first N deliveries of every message get 503: a system that is down for a while (tests, fault demos).
    reject_first_deliveries: int = Field(default=0, ge=0)


class SimTask(_Frozen):
    task_id: str
    case_id: str
    kommune_kode: str
    kind: Literal["task", "reminder", "notice"] = "task"
    deadline_in: timedelta | None = Field(default=None, description="Model time from receipt to the deadline")
    requested_documents: tuple[str, ...] = ()


class SubmitPartAction(_Frozen):
    kind: Literal["submit_part"] = "submit_part"
    documents: tuple[str, ...]
    final: bool


class RequestExtensionAction(_Frozen):
    kind: Literal["request_extension"] = "request_extension"
    extend_by_days: int = Field(ge=1)
    reason: str


class AskQuestionAction(_Frozen):
    kind: Literal["ask_question"] = "ask_question"
    text: str


class ReturnTaskAction(_Frozen):
    kind: Literal["return_task"] = "return_task"
    correct_kommune_kode: str
    reason: str


KommuneAction = Annotated[
    SubmitPartAction | RequestExtensionAction | AskQuestionAction | ReturnTaskAction, Field(discriminator="kind")
]


class PlannedAction(_Frozen):
    after: timedelta = Field(description="Model time after the kommune received the task")
    action: KommuneAction


PushOutcome = Literal["accept", "error_5xx", "timeout"]


def default_median_days(population: int) -> float:
    """About 4 weeks for a kommune of 2,000 people, +2 weeks per tenfold size (København ≈ 9 weeks)."""
    weeks = 4.0 + 2.0 * math.log10(max(population, 2000) / 2000)
    return weeks * 7


def _kode_jitter(kode: str) -> float:
    """A stable ±15% per kommune, so equal-sized kommuner still differ (not random: the same every run)."""
    h = int.from_bytes(hashlib.sha256(f"kommune-speed:{kode}".encode()).digest()[:4], "big")
    return 0.85 + 0.30 * (h % 10_000) / 10_000


def default_profile(
    kode: str, population: int, return_candidates: Iterable[str] = (), *, speed: float = 1.0
) -> KommuneProfile:
    """`speed` > 1 makes every kommune answer faster (a what-if knob for reports and demos)."""
    return KommuneProfile(
        kode=kode,
        population=population,
        median_response_days=default_median_days(population) * _kode_jitter(kode) / speed,
        return_candidates=tuple(c for c in return_candidates if c != kode),
    )


def _days(x: float) -> timedelta:
    # Whole seconds: plans are compared and replayed, and float noise below a second means nothing here.
    return timedelta(seconds=round(x * 86400))


def answer_delay_days(profile: KommuneProfile, rng: random.Random) -> float:
    return max(0.5, rng.lognormvariate(math.log(profile.median_response_days), profile.sigma))


def plan_kommune_response(task: SimTask, profile: KommuneProfile, rng: random.Random) -> list[PlannedAction]:
    """What the kommune will do with `task`, earliest first. Reminders and notices get no reaction of their own:
    the kommune already works to the plan it made when the task arrived."""
    if task.kind != "task":
        return []
    # Every draw happens in a fixed order whatever the branch taken, so a change of one probability does not
    # reshuffle the other draws of the same task.
    u_return, u_question, u_extension, u_partial = rng.random(), rng.random(), rng.random(), rng.random()
    delay = answer_delay_days(profile, rng)
    return_after = rng.uniform(1.0, 10.0)
    question_at = rng.uniform(0.1, 0.5)
    partial_at = rng.uniform(0.3, 0.8)
    ask_before_deadline = rng.uniform(3.0, 14.0)
    question = rng.choice(QUESTIONS)
    extension_reason = rng.choice(EXTENSION_REASONS)
    candidate_pick = rng.random()

    if profile.return_candidates and u_return < profile.p_return:
        correct = profile.return_candidates[int(candidate_pick * len(profile.return_candidates))]
        action = ReturnTaskAction(correct_kommune_kode=correct, reason=RETURN_REASON)
        return [PlannedAction(after=_days(return_after), action=action)]

    plan: list[PlannedAction] = []
    if u_question < profile.p_question:
        plan.append(PlannedAction(after=_days(question_at * delay), action=AskQuestionAction(text=question)))

    deadline_days = task.deadline_in / DAY if task.deadline_in is not None else None
    if deadline_days is not None and delay > deadline_days and u_extension < profile.p_extension_when_late:
        ask_at = max(0.5, min(deadline_days - ask_before_deadline, 0.8 * delay))
        extend_by = max(1, math.ceil(delay - deadline_days) + 7)
        plan.append(
            PlannedAction(
                after=_days(ask_at),
                action=RequestExtensionAction(extend_by_days=extend_by, reason=extension_reason),
            )
        )

    documents = task.requested_documents or DEFAULT_DOCUMENTS
    if u_partial < profile.p_partial:
        first = max(1, math.ceil(len(documents) / 2))
        partial = SubmitPartAction(documents=documents[:first], final=False)
        plan.append(PlannedAction(after=_days(partial_at * delay), action=partial))
        documents = documents[first:]
    plan.append(PlannedAction(after=_days(delay), action=SubmitPartAction(documents=documents, final=True)))
    return sorted(plan, key=lambda p: p.after)


def late_answer(task: SimTask, after: timedelta) -> list[PlannedAction]:
    """A kommune that leaves its tasks to a person and answers only long after the deadline (the demo's 147)."""
    if task.kind != "task":
        return []
    documents = task.requested_documents or DEFAULT_DOCUMENTS
    return [PlannedAction(after=after, action=SubmitPartAction(documents=documents, final=True))]


def push_response(profile: KommuneProfile, rng: random.Random, attempt: int) -> PushOutcome:
    """How the kommune's system answers delivery attempt number `attempt` (1-based) of one message."""
    if attempt <= profile.reject_first_deliveries:
        return "error_5xx"
    u = rng.random()
    if u < profile.push_5xx_rate:
        return "error_5xx"
    if u < profile.push_5xx_rate + profile.push_timeout_rate:
        return "timeout"
    return "accept"


def completion_after(plan: list[PlannedAction]) -> timedelta | None:
    """When the task is complete (final submission), or None if the plan returns it."""
    for p in plan:
        if isinstance(p.action, SubmitPartAction) and p.action.final:
            return p.after
    return None


# -- regime changes -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Regime:
    """A change of behaviour over a span of business days (Copenhagen dates, both ends included; no end: to the
    end of the run): one kommune answers at `speed` times its pace (tasks it receives in the span), or intake runs
    at `intake` times the rate. The backtest (bench/forecast.py) needs a history the past does not simply repeat."""

    start: date
    end: date | None = None
    kommune: str | None = None
    speed: float = 1.0
    intake: float = 1.0

    def covers(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)

    def label(self) -> str:
        span = self.start.isoformat() + (f"..{self.end.isoformat()}" if self.end else "")
        parts = [span]
        if self.kommune is not None:
            parts += [f"kommune={self.kommune}", f"speed={self.speed:g}"]
        if self.intake != 1.0:
            parts.append(f"intake={self.intake:g}")
        return ":".join(parts)


def parse_regime(text: str) -> Regime:
    """`2021-07-01:kommune=329:speed=0.5` or `2021-10-01..2021-12-31:intake=1.3` (ValueError names what is wrong)."""
    span, *settings = text.strip().split(":")
    first, _, last = span.partition("..")
    try:
        start = date.fromisoformat(first)
        end = date.fromisoformat(last) if last else None
    except ValueError:
        raise ValueError(f"regime {text!r}: starts with a date or DATE..DATE, e.g. 2021-07-01..2021-09-30") from None
    if end is not None and end < start:
        raise ValueError(f"regime {text!r}: ends before it starts")
    values: dict[str, str] = {}
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep or key not in ("kommune", "speed", "intake") or key in values:
            raise ValueError(f"regime {text!r}: settings are kommune=KODE:speed=X or intake=X, each once")
        values[key] = value
    if ("kommune" in values) != ("speed" in values) or not values:
        raise ValueError(f"regime {text!r}: a speed goes with a kommune (kommune=329:speed=0.5)")
    factors = {}
    for key in ("speed", "intake"):
        if key in values:
            try:
                factors[key] = float(values[key])
            except ValueError:
                raise ValueError(f"regime {text!r}: {key} is a number") from None
            if not 0 < factors[key] < 100:
                raise ValueError(f"regime {text!r}: {key} must be more than 0 (and less than 100)")
    return Regime(start=start, end=end, kommune=values.get("kommune"), **factors)


def profile_on(profile: KommuneProfile, regimes: Iterable[Regime], day: date) -> KommuneProfile:
    """The kommune's profile for a task it receives on `day`: its answer time divided by every speed regime that
    covers the day."""
    speed = math.prod(r.speed for r in regimes if r.kommune == profile.kode and r.covers(day))
    if speed == 1.0:
        return profile
    return profile.model_copy(update={"median_response_days": profile.median_response_days / speed})


def intake_factor(regimes: Iterable[Regime], day: date) -> float:
    """How many times the configured rate applications arrive on `day`."""
    return math.prod(r.intake for r in regimes if r.covers(day))
