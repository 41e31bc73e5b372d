"""Random but valid case histories for property tests: every step is a command `decide` accepts in that state."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from domain.calendar import Duration, Unit
from domain.commands import (
    AnswerQuestion,
    AskQuestion,
    CloseCase,
    Command,
    DecideExtension,
    MakeDecision,
    MarkDelivered,
    MarkOverdue,
    NotifyCitizen,
    NotifyKommune,
    RecordPreScreening,
    RejectFormally,
    RequestExtension,
    RequestOplysning,
    ReturnTask,
    SendReminder,
    SubmitPart,
    TransferCase,
    Withdraw,
    decide,
)
from domain.errors import DomainError
from domain.events import Channel, Event, Outcome, Party, RequestReason, Verdict
from domain.state import CaseState
from tests.eventlog.builders import LogCase

KOMMUNER = ("101", "329", "766", "561", "810")
T0 = datetime(2021, 1, 1, 8, 0, tzinfo=UTC)


def _candidates(state: CaseState, n: int, at: datetime) -> dict[str, list[tuple[Command, datetime]]]:
    """Commands worth trying now, by kind, each with its time (overdue needs the deadline to have passed)."""
    progress: list[tuple[Command, datetime]] = [
        (RecordPreScreening(verdict=v), at)
        for v in (Verdict.DISPATCH, Verdict.DISPATCH, Verdict.NEEDS_ASSESSMENT, Verdict.FORMAL_REJECTION)
    ]
    progress += [
        (
            RequestOplysning(
                task_id=f"{state.case_id}-t{n}", reason=RequestReason.INITIAL, policy_id="standard-2021.1"
            ),
            at,
        ),
        (MakeDecision(outcome=Outcome.GRANTED, decided_by="cw-1", reasons="Begrundelse"), at),
        (MakeDecision(outcome=Outcome.REJECTED, decided_by="cw-2"), at),
        (RejectFormally(reasons="Formelt afslag"), at),
        (NotifyCitizen(message_id=f"m{n}"), at),
        (CloseCase(), at),
    ]
    task_cmds: list[tuple[Command, datetime]] = []
    task = state.open_task
    if task is not None:
        k = task.kommune_kode
        tid = task.task_id
        task_cmds += [
            (MarkDelivered(task_id=tid, channel=Channel.INBOX), at),
            (SendReminder(task_id=tid), at),
            (MarkOverdue(task_id=tid), max(at, task.deadline_at + timedelta(hours=1))),
            (
                RequestExtension(
                    task_id=tid,
                    kommune_kode=k,
                    request_id=f"x{n}",
                    extend_by=Duration(quantity=n % 3 + 1, unit=Unit.WEEKS),
                ),
                at,
            ),
            (SubmitPart(task_id=tid, kommune_kode=k, submission_id=f"s{n}", document_ids=(f"d{n}",)), at),
            (SubmitPart(task_id=tid, kommune_kode=k, submission_id=f"s{n}", final=True), at),
            (SubmitPart(task_id=tid, kommune_kode=k, submission_id=f"s{n}", final=True), at),
            (AskQuestion(task_id=tid, question_id=f"q{n}", asked_by=Party.CASEWORKER, text="Hvor?"), at),
            (AskQuestion(task_id=tid, question_id=f"kq{n}", asked_by=Party.KOMMUNE, kommune_kode=k, text="Hvem?"), at),
            (ReturnTask(task_id=tid, kommune_kode=k, correct_kommune_kode=next(x for x in KOMMUNER if x != k)), at),
        ]
        if task.pending_extension is not None:
            rid = task.pending_extension.request_id
            task_cmds += [(DecideExtension(task_id=tid, request_id=rid, grant=g), at) for g in (True, False)]
        task_cmds += [
            (
                AnswerQuestion(
                    task_id=tid,
                    question_id=q,
                    kommune_kode=None if q in (task.kommune_questions or ()) else k,
                    text="Her.",
                ),
                at,
            )
            for q in task.open_questions
        ]
    other = next(x for x in KOMMUNER[::-1] if x != state.kommune_kode)
    disrupt: list[tuple[Command, datetime]] = [
        (TransferCase(to_kommune_kode=other), at),
        (NotifyKommune(kommune_kode=state.kommune_kode or "101", notice="decision"), at),
        (Withdraw(reason="Fortrudt"), at),
    ]
    return {"progress": progress, "task": task_cmds, "disrupt": disrupt}


def _valid(cmd: Command, state: CaseState, at: datetime) -> bool:
    try:
        decide(cmd, state, now=at, new_id=uuid.uuid4)
    except DomainError:
        return False
    return True


_GAPS: dict[str, Callable[[int], timedelta]] = {
    "none": lambda _: timedelta(0),
    "minutes": lambda x: timedelta(minutes=x % 120),
    "hours": lambda x: timedelta(hours=x % 72),
    "days": lambda x: timedelta(days=x % 40, hours=x % 7),
    "weeks": lambda x: timedelta(weeks=x % 12),
    # A late-stamped event (a clock a little behind): intervals must still never run backwards.
    "back": lambda x: -timedelta(hours=x % 30 + 1),
}


@st.composite
def case_history(draw: st.DrawFn, case_id: str, max_steps: int = 20) -> list[list[Event]]:
    """One case's appends (each a `decide` result), oldest first."""
    start = T0 + timedelta(hours=draw(st.integers(0, 24 * 500)))
    case = LogCase(case_id, now=start, subject_id=f"subj-{case_id}")
    appends: list[list[Event]] = [case.receive(kommune_kode=draw(st.sampled_from(KOMMUNER)))]
    for n in range(draw(st.integers(2, max_steps))):
        kind = draw(st.sampled_from(["none", "minutes", "hours", "days", "days", "weeks", "back"]))
        at = case.now + _GAPS[kind](draw(st.integers(0, 10_000)))
        groups = {
            kind: valid
            for kind, cmds in _candidates(case.state, n, at).items()
            if (valid := [(c, t) for c, t in cmds if _valid(c, case.state, t)])
        }
        if not groups:
            break
        # Mostly move the case or its task along; now and then transfer, withdraw or notify.
        weighted = [g for g in ("task", "task", "task", "progress", "progress", "disrupt") if g in groups]
        cmd, t = draw(st.sampled_from(groups[draw(st.sampled_from(weighted))]))
        appends.append(case.do(cmd, at=t))
    return appends


@st.composite
def log_history(draw: st.DrawFn, max_cases: int = 6) -> list[tuple[str, int, list[Event]]]:
    """Appends of several cases, interleaved as concurrent workflows would: (case_id, expected_version, events)."""
    n_cases = draw(st.integers(1, max_cases))
    pending = {f"c{i}": draw(case_history(f"c{i}")) for i in range(n_cases)}
    versions = dict.fromkeys(pending, 0)
    out = []
    while pending:
        cid = draw(st.sampled_from(sorted(pending)))
        batch = pending[cid].pop(0)
        out.append((cid, versions[cid], batch))
        versions[cid] += len(batch)
        if not pending[cid]:
            del pending[cid]
    return out
