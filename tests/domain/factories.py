"""Builders for domain tests (plain data, no I/O)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from uuid import UUID, uuid5

from domain.application import Application
from domain.commands import Command, ReceiveApplication, decide
from domain.events import Event
from domain.state import CaseState, evolve

IDS = UUID("5a9c1f3e-0000-4000-8000-000000000000")


def application_json(kommune_kode: str = "461", **overrides: object) -> dict[str, object]:
    """An application as a client sends it (JSON) that passes pre-screening: born 1 March 1957, in the
    seniorpension window on the day it was received."""
    data: dict[str, object] = {
        "case_type": "seniorpension",
        "applicant": {"cpr": "010357-1234", "name": "Testperson"},
        "kommune_kode": kommune_kode,
        "received_on": "2021-09-24",
        "employment": [{"start": "1985-01-01", "end": None, "weekly_hours": 37}],
        "current_attachment": {"status": "working", "since": "1985-01-01"},
        "declared_weekly_work_capacity_hours": 10,
        "latest_job_months": 60,
    }
    data.update(overrides)
    return data


def application(**overrides: object) -> Application:
    data: dict[str, object] = {
        "case_type": "seniorpension",
        "applicant": {"cpr": "150562-1234", "name": "Testperson"},
        "kommune_kode": "329",
        "received_on": "2021-01-04",
        "employment": [{"start": "1985-01-01", "end": None, "weekly_hours": 37}],
        "current_attachment": {"status": "working", "since": "1985-01-01"},
        "declared_weekly_work_capacity_hours": 10,
        "latest_job_months": 60,
    }
    data.update(overrides)
    return Application.model_validate(data)


class Case:
    """Drives one case through `decide` + `evolve`, keeping every event, as the workflow does."""

    def __init__(self, case_id: str = "c-1", now: datetime | None = None) -> None:
        self.case_id = case_id
        self.now = now or datetime(2021, 1, 4, 9, 0, tzinfo=UTC)
        self.state = CaseState()
        self.events: list[Event] = []
        self._ids = itertools.count(1)

    def new_id(self) -> UUID:
        # Unique across cases, deterministic within one (as workflow.uuid4 is).
        return uuid5(IDS, f"{self.case_id}/{next(self._ids)}")

    def do(self, command: Command, at: datetime | None = None) -> list[Event]:
        if at is not None:
            self.now = at
        events = decide(command, self.state, now=self.now, new_id=self.new_id)
        for e in events:
            self.state = evolve(self.state, e)
        self.events.extend(events)
        return events

    def receive(self, **overrides: object) -> list[Event]:
        return self.do(ReceiveApplication(case_id=self.case_id, subject_id="s-1", application=application(**overrides)))


def d(text: str) -> date:
    return date.fromisoformat(text)
