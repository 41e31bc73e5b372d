"""The Samarbejdsforum quarterly figures, computed from case timelines (pure, deterministic)."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from domain.calendar import COPENHAGEN
from domain.kommuner import FORUM_KOMMUNER, all_kommuner
from reports.timeline import CaseTimeline, TaskTimeline

AGE_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0–30 dage", 0, 30),
    ("31–60 dage", 31, 60),
    ("61–90 dage", 61, 90),
    ("91–120 dage", 91, 120),
    ("over 120 dage", 121, None),
)


@dataclass(frozen=True)
class Quarter:
    year: int
    q: int

    @property
    def label(self) -> str:
        return f"{self.year}Q{self.q}"

    @property
    def first_day(self) -> date:
        return date(self.year, 3 * (self.q - 1) + 1, 1)

    @property
    def next_first_day(self) -> date:
        return date(self.year + 1, 1, 1) if self.q == 4 else date(self.year, 3 * self.q + 1, 1)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, datetime.min.time(), tzinfo=COPENHAGEN).astimezone(UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.next_first_day, datetime.min.time(), tzinfo=COPENHAGEN).astimezone(UTC)

    def previous(self) -> Quarter:
        return Quarter(self.year - 1, 4) if self.q == 1 else Quarter(self.year, self.q - 1)

    def contains(self, t: datetime) -> bool:
        return self.start <= t < self.end


def parse_quarter(text: str) -> Quarter:
    m = re.fullmatch(r"\s*(\d{4})\s*-?\s*[Qq]([1-4])\s*", text)
    if not m:
        raise ValueError(f"quarter must look like 2021Q1, not {text!r}")
    return Quarter(int(m.group(1)), int(m.group(2)))


def _days(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 86400


def _median(xs: Sequence[float]) -> float | None:
    return round(statistics.median(xs), 1) if xs else None


def _p90(xs: Sequence[float]) -> float | None:
    if not xs:
        return None
    ordered = sorted(xs)
    # Nearest rank: a value that actually occurred, and stable for small samples.
    rank = max(1, -(-9 * len(ordered) // 10))
    return round(ordered[rank - 1], 1)


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


@dataclass
class KommuneFigures:
    kode: str
    navn: str
    forum: bool
    received: int = 0
    answered: int = 0
    median_days: float | None = None
    p90_days: float | None = None
    sla_kept_pct: float | None = None
    reminders: int = 0
    overdue: int = 0
    waiting_at_end: int = 0


@dataclass
class QuarterFigures:
    quarter: str
    intake_per_week: list[tuple[str, int]]
    intake_total: int
    open_at_end: int
    waiting_at_end: int
    waiting_share_pct: float | None
    waiting_age: list[tuple[str, int]]
    kommuner: list[KommuneFigures]
    groups: list[KommuneFigures]  # the forum kommuner together, and all the others
    decisions: dict[str, int]
    e2e_median_days: float | None
    e2e_p90_days: float | None
    answered_total: int = 0
    sla_kept_pct: float | None = None
    extra: dict[str, float | int | None] = field(default_factory=dict)


def _iso_week_label(t: datetime) -> str:
    y, w, _ = t.astimezone(COPENHAGEN).isocalendar()
    return f"{y}-W{w:02d}"


def _weeks_of(quarter: Quarter) -> list[str]:
    labels: list[str] = []
    day = quarter.first_day
    while day < quarter.next_first_day:
        y, w, _ = day.isocalendar()
        label = f"{y}-W{w:02d}"
        if label not in labels:
            labels.append(label)
        day += timedelta(days=1)
    return labels


def _kommune_figures(kode: str, navn: str, tasks: Iterable[TaskTimeline], quarter: Quarter) -> KommuneFigures:
    k = KommuneFigures(kode=kode, navn=navn, forum=kode in FORUM_KOMMUNER)
    answer_days: list[float] = []
    kept = 0
    for t in tasks:
        if quarter.contains(t.requested_at):
            k.received += 1
        if t.completed and t.closed_at is not None and quarter.contains(t.closed_at):
            k.answered += 1
            answer_days.append(_days(t.requested_at, t.closed_at))
            kept += t.closed_at <= t.deadline_at
        k.reminders += sum(1 for r in t.reminders if quarter.contains(r))
        # A task counts as overdue in the quarter in which it first went past its deadline.
        k.overdue += bool(t.overdue_at) and quarter.contains(t.overdue_at[0])
        k.waiting_at_end += t.open_at(quarter.end)
    k.median_days, k.p90_days = _median(answer_days), _p90(answer_days)
    k.sla_kept_pct = _pct(kept, k.answered)
    return k


def compute(cases: Sequence[CaseTimeline], quarter: Quarter) -> QuarterFigures:
    weeks = _weeks_of(quarter)
    intake = Counter(_iso_week_label(c.received_at) for c in cases if quarter.contains(c.received_at))
    open_cases = [c for c in cases if c.open_at(quarter.end)]
    waiting = [c for c in open_cases if c.waiting_on_kommune_at(quarter.end)]

    ages = Counter[str]()
    for c in cases:
        for t in c.tasks:
            if t.open_at(quarter.end):
                age = int(_days(t.requested_at, quarter.end))
                for label, lo, hi in AGE_BUCKETS:
                    if age >= lo and (hi is None or age <= hi):
                        ages[label] += 1
                        break

    tasks_by_kommune: dict[str, list[TaskTimeline]] = {}
    for c in cases:
        for t in c.tasks:
            tasks_by_kommune.setdefault(t.kommune_kode, []).append(t)
    kommuner = [_kommune_figures(k.kode, k.navn, tasks_by_kommune.get(k.kode, []), quarter) for k in all_kommuner()]
    forum_tasks = [t for kode in FORUM_KOMMUNER for t in tasks_by_kommune.get(kode, [])]
    rest_tasks = [t for kode, ts in sorted(tasks_by_kommune.items()) if kode not in FORUM_KOMMUNER for t in ts]
    forum_group = _kommune_figures("forum", "De fem forumkommuner", forum_tasks, quarter)
    forum_group.forum = True
    groups = [forum_group, _kommune_figures("rest", "De øvrige 93 kommuner", rest_tasks, quarter)]

    decided = [c for c in cases if c.decided_at is not None and quarter.contains(c.decided_at)]
    outcomes = Counter(c.outcome for c in decided)
    e2e = [_days(c.received_at, c.decided_at) for c in decided if c.decided_at is not None]
    withdrawn = sum(1 for c in cases if c.withdrawn_at is not None and quarter.contains(c.withdrawn_at))
    answered_total = sum(k.answered for k in kommuner)
    kept_total = sum(round((k.sla_kept_pct or 0) * k.answered / 100) for k in kommuner)

    return QuarterFigures(
        quarter=quarter.label,
        intake_per_week=[(w, intake.get(w, 0)) for w in weeks],
        intake_total=sum(intake.values()),
        open_at_end=len(open_cases),
        waiting_at_end=len(waiting),
        waiting_share_pct=_pct(len(waiting), len(open_cases)),
        waiting_age=[(label, ages.get(label, 0)) for label, _, _ in AGE_BUCKETS],
        kommuner=kommuner,
        groups=groups,
        decisions={
            "granted": outcomes.get("granted", 0),
            "rejected": outcomes.get("rejected", 0),
            "rejected_formal": outcomes.get("rejected_formal", 0),
            "withdrawn": withdrawn,
        },
        e2e_median_days=_median(e2e),
        e2e_p90_days=_p90(e2e),
        answered_total=answered_total,
        sla_kept_pct=_pct(kept_total, answered_total),
    )
