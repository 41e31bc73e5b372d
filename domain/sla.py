"""SLA policies as versioned data, and the schedule they give a task.

The policy id in force is recorded on the task when it is requested, so a later change to a policy never moves the
deadlines of tasks already out; a new rule is a new policy id, never an edit of an old one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from domain.calendar import (
    Duration,
    Unit,
    add_to_date,
    at_local_time,
    deadline_day,
    deadline_instant,
    local_date,
    roll_back,
    roll_forward,
    subtract_from_date,
)
from domain.errors import DomainError


class SlaPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    policy_id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    description: str = ""
    kommune_deadline: Duration
    # Reminders go out this long before the deadline day (on the nearest working day before, at reminder_hour).
    reminders_before: tuple[Duration, ...] = ()
    # OplysningOverdue at the deadline, then again every `escalate_every` while the task stays open.
    escalate_every: Duration
    # Extensions up to this much beyond the original deadline are granted automatically; more goes to operations.
    max_auto_extension: Duration
    reminder_hour: int = Field(default=8, ge=0, le=23)

    @property
    def in_seconds(self) -> bool:
        return self.kommune_deadline.unit is Unit.SECONDS

    def deadline(self, requested_at: datetime) -> datetime:
        if self.in_seconds:
            return requested_at + timedelta(seconds=self.kommune_deadline.quantity)
        return deadline_instant(deadline_day(requested_at, self.kommune_deadline))

    def extend(self, deadline_at: datetime, by: Duration) -> datetime:
        if self.in_seconds:
            if by.unit is not Unit.SECONDS:
                raise DomainError("this policy counts in seconds: ask for an extension in seconds", code="invalid")
            return deadline_at + timedelta(seconds=by.quantity)
        if by.unit is Unit.SECONDS:
            raise DomainError("extensions are in days, weeks, months or working days", code="invalid")
        last_day = local_date(deadline_at - timedelta(microseconds=1))
        return deadline_instant(roll_forward(add_to_date(last_day, by)))

    def max_deadline(self, original_deadline_at: datetime) -> datetime:
        if self.in_seconds:
            return original_deadline_at + timedelta(seconds=self.max_auto_extension.quantity)
        return self.extend(original_deadline_at, self.max_auto_extension)

    def reminders(self, requested_at: datetime, deadline_at: datetime) -> tuple[datetime, ...]:
        """Reminder instants before `deadline_at`, earliest first; those not after `requested_at` are dropped."""
        out: list[datetime] = []
        for before in self.reminders_before:
            if self.in_seconds:
                at = deadline_at - timedelta(seconds=before.quantity)
            else:
                last_day = local_date(deadline_at - timedelta(microseconds=1))
                at = at_local_time(roll_back(subtract_from_date(last_day, before)), self.reminder_hour)
            if requested_at < at < deadline_at:
                out.append(at)
        return tuple(sorted(set(out)))

    def escalation_after(self, deadline_at: datetime, escalation_no: int) -> datetime:
        """When escalation number `escalation_no` (1 = at the deadline) is due."""
        if escalation_no <= 1:
            return deadline_at
        n = escalation_no - 1
        if self.escalate_every.unit is Unit.SECONDS:
            return deadline_at + timedelta(seconds=self.escalate_every.quantity * n)
        step = Duration(quantity=self.escalate_every.quantity * n, unit=self.escalate_every.unit)
        return at_local_time(add_to_date(local_date(deadline_at), step), self.reminder_hour)


STANDARD_2021 = SlaPolicy(
    policy_id="standard-2021.1",
    description="Kommune has 3 months to send its information (borger.dk); reminders 14 and 3 days before; "
    "escalation at the deadline and weekly after; up to 1 month extension granted automatically.",
    kommune_deadline=Duration(quantity=3, unit=Unit.MONTHS),
    reminders_before=(Duration(quantity=14, unit=Unit.DAYS), Duration(quantity=3, unit=Unit.DAYS)),
    escalate_every=Duration(quantity=1, unit=Unit.WEEKS),
    max_auto_extension=Duration(quantity=1, unit=Unit.MONTHS),
)

DEMO = SlaPolicy(
    policy_id="demo-1",
    description="The standard rules scaled to seconds so `make demo` shows reminders and escalations live.",
    kommune_deadline=Duration(quantity=90, unit=Unit.SECONDS),
    reminders_before=(Duration(quantity=45, unit=Unit.SECONDS), Duration(quantity=15, unit=Unit.SECONDS)),
    escalate_every=Duration(quantity=30, unit=Unit.SECONDS),
    max_auto_extension=Duration(quantity=60, unit=Unit.SECONDS),
)

# The chaos soak (bench/chaos.py) runs a case's whole life, reminders, escalations and extensions included, in well
# under a minute: three months are twelve seconds here.
CHAOS = SlaPolicy(
    policy_id="chaos-1",
    description="The standard rules scaled so three months last twelve seconds: the chaos soak (bench/chaos.py).",
    kommune_deadline=Duration(quantity=12, unit=Unit.SECONDS),
    reminders_before=(Duration(quantity=6, unit=Unit.SECONDS), Duration(quantity=2, unit=Unit.SECONDS)),
    escalate_every=Duration(quantity=3, unit=Unit.SECONDS),
    max_auto_extension=Duration(quantity=8, unit=Unit.SECONDS),
)

POLICIES: dict[str, SlaPolicy] = {p.policy_id: p for p in (STANDARD_2021, DEMO, CHAOS)}
DEFAULT_POLICY_ID = STANDARD_2021.policy_id


def policy(policy_id: str) -> SlaPolicy:
    found = POLICIES.get(policy_id)
    if found is None:
        raise DomainError(f"unknown SLA policy {policy_id!r}", code="unknown_policy")
    return found
