"""Per-case and per-task timelines, extracted by folding each case's events through `domain.evolve`.

Reports read state changes from `evolve` rather than re-interpreting events, so a report can never disagree with
the workflow or the projections about when a task was answered or a case closed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from domain.calendar import local_date
from domain.events import Event, KommuneReminderSent, OplysningOverdue
from domain.state import CaseState, TaskStatus, evolve


@dataclass
class TaskTimeline:
    task_id: str
    case_id: str
    kommune_kode: str
    requested_at: datetime
    deadline_at: datetime
    closed_at: datetime | None = None
    closed_status: TaskStatus | None = None
    reminders: list[datetime] = field(default_factory=list)
    overdue_at: list[datetime] = field(default_factory=list)

    def open_at(self, t: datetime) -> bool:
        return self.requested_at < t and (self.closed_at is None or self.closed_at >= t)

    @property
    def completed(self) -> bool:
        return self.closed_status is TaskStatus.COMPLETED


@dataclass
class CaseTimeline:
    case_id: str
    kommune_kode: str  # the kommune that has the case at the log position
    received_at: datetime
    received_on: date  # the application date, from which the citizen's 6 months run
    decided_at: datetime | None = None
    outcome: str | None = None
    closed_at: datetime | None = None
    withdrawn_at: datetime | None = None
    tasks: list[TaskTimeline] = field(default_factory=list)
    # (from when, kommune kode): the first entry is the receiving kommune, then one per move.
    kommuner: list[tuple[datetime, str]] = field(default_factory=list)

    def open_at(self, t: datetime) -> bool:
        return self.received_at < t and (self.closed_at is None or self.closed_at >= t)

    def kommune_at(self, t: datetime) -> str:
        """The kommune that had the case at `t` (a case moved later still counts for the kommune it was in)."""
        kode = self.kommuner[0][1] if self.kommuner else self.kommune_kode
        for since, k in self.kommuner:
            if since <= t:
                kode = k
        return kode

    def waiting_on_kommune_at(self, t: datetime) -> bool:
        return any(task.open_at(t) for task in self.tasks)


def case_timeline(events: Iterable[Event]) -> CaseTimeline | None:
    """Fold one case's events (in stream order) and record when each change happened."""
    state = CaseState()
    timeline: CaseTimeline | None = None
    tasks: dict[str, TaskTimeline] = {}
    for event in events:
        before = state
        state = evolve(state, event)
        at = event.occurred_at
        if timeline is None:
            assert state.kommune_kode is not None
            timeline = CaseTimeline(
                case_id=state.case_id,
                kommune_kode=state.kommune_kode,
                received_at=at,
                received_on=state.received_on or local_date(at),
                kommuner=[(at, state.kommune_kode)],
            )
        for task_id, task in state.tasks.items():
            tl = tasks.get(task_id)
            if tl is None:
                tl = tasks[task_id] = TaskTimeline(
                    task_id=task_id,
                    case_id=state.case_id,
                    kommune_kode=task.kommune_kode,
                    requested_at=task.requested_at,
                    deadline_at=task.deadline_at,
                )
                timeline.tasks.append(tl)
            previous = before.tasks.get(task_id)
            if previous is not None and previous.is_open and not task.is_open:
                # The deadline in force when the kommune answered (extensions included) decides "within SLA".
                tl.closed_at, tl.closed_status, tl.deadline_at = task.closed_at, task.status, previous.deadline_at
            elif task.is_open:
                tl.deadline_at = task.deadline_at
        if isinstance(event, KommuneReminderSent):
            tasks[event.task_id].reminders.append(at)
        elif isinstance(event, OplysningOverdue):
            tasks[event.task_id].overdue_at.append(at)
        if before.outcome is None and state.outcome is not None:
            timeline.decided_at, timeline.outcome = at, state.outcome.value
        if not before.withdrawn and state.withdrawn:
            timeline.withdrawn_at = at
        if before.closed_at is None and state.closed_at is not None:
            timeline.closed_at = at
        if state.kommune_kode is not None and state.kommune_kode != timeline.kommune_kode:
            timeline.kommuner.append((at, state.kommune_kode))
            timeline.kommune_kode = state.kommune_kode
    return timeline
