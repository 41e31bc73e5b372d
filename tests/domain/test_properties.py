"""Properties of `decide` and `evolve`: what `decide` allows folds through `evolve`; what it refuses changes nothing.

Hypothesis drives random command sequences (most of them refused) through the `Case` helper, exactly as the workflow
drives a case. Scripted scenarios then show that `evolve` is exercised with every event type in the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
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
    ReceiveApplication,
    RecordDeliveryFailure,
    RecordPreScreening,
    RejectFormally,
    RequestExtension,
    RequestOplysning,
    ReturnTask,
    SendReminder,
    SubmitPart,
    TransferCase,
    Withdraw,
)
from domain.errors import DomainError
from domain.events import (
    EVENT_TYPES,
    ApplicationReceived,
    CaseClosed,
    CaseTransferred,
    Channel,
    Event,
    OplysningReturned,
    Outcome,
    Party,
    RequestReason,
    Verdict,
    event_from_record,
)
from domain.prescreen import details, prescreen, summary
from domain.state import CaseState, CaseStatus, evolve, fold
from tests.domain.factories import Case, application

START = datetime(2021, 1, 4, 9, 0, tzinfo=UTC)
TASKS = ("t-1", "t-2", "t-3")
KOMMUNER = ("329", "101", "766")
REQUESTS = ("x1", "x2")
QUESTIONS = ("q1", "q2")
SUBMISSIONS = ("s1", "s2", "s3")
POLICIES = ("standard-2021.1", "demo-1", "no-such-policy")

DURATIONS = tuple(
    Duration(quantity=q, unit=u)
    for q in (0, 1, 2, 3)
    for u in (Unit.DAYS, Unit.WEEKS, Unit.MONTHS, Unit.WORKING_DAYS, Unit.SECONDS)
)
DOCUMENTS: tuple[tuple[str, ...], ...] = ((), ("d1",), ("d2", "d3"))
VERDICTS = (Verdict.DISPATCH, Verdict.DISPATCH, Verdict.NEEDS_ASSESSMENT, Verdict.FORMAL_REJECTION)
RECEIVE = ReceiveApplication(case_id="c-1", subject_id="s-1", application=application())
# Commands that move a case on are drawn more often than those that end it early.
WEIGHTS = {
    "receive": 1,
    "prescreen": 2,
    "request": 4,
    "delivered": 2,
    "delivery_failed": 1,
    "remind": 2,
    "overdue": 2,
    "extend": 3,
    "decide_extension": 2,
    "submit": 4,
    "ask": 2,
    "answer": 2,
    "return": 1,
    "transfer": 1,
    "decide": 2,
    "reject_formally": 1,
    "notify_citizen": 1,
    "notify_kommune": 1,
    "withdraw": 1,
    "close": 1,
}
KINDS = tuple(kind for kind, weight in WEIGHTS.items() for _ in range(weight))
# Half the time a command that fits the case's status is drawn, so sequences get deep before they end.
FITTING: dict[CaseStatus, tuple[str, ...]] = {
    CaseStatus.NEW: ("receive",),
    CaseStatus.RECEIVED: ("prescreen", "prescreen", "prescreen", "transfer"),
    CaseStatus.PRESCREENED: ("request", "request", "request", "reject_formally", "transfer"),
    CaseStatus.READY_FOR_DECISION: ("decide", "decide", "decide", "request"),
    CaseStatus.DECIDED: ("notify_citizen", "notify_kommune", "close"),
    CaseStatus.REJECTED_FORMAL: ("notify_citizen", "notify_kommune", "close"),
    CaseStatus.WITHDRAWN: ("notify_citizen", "notify_kommune", "close"),
    CaseStatus.CLOSED: ("close",),
}
TASK_WORK = (
    "delivered",
    "delivery_failed",
    "remind",
    "overdue",
    "extend",
    "extend",
    "decide_extension",
    "decide_extension",
    "submit",
    "submit",
    "submit",
    "ask",
    "answer",
    "answer",
    "return",
    "transfer",
)
_INDEX: dict[int, st.SearchStrategy[int]] = {}

T = TypeVar("T")


class Picker:
    """Draws by index from plain tuples: building strategies per step would cost far more than the domain code."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def one(self, options: Sequence[T]) -> T:
        n = len(options)
        index = _INDEX.get(n)
        if index is None:
            index = _INDEX[n] = st.integers(0, n - 1)
        return options[self.data.draw(index)]

    def likely(self, current: str | None, pool: tuple[str, ...]) -> str:
        """Mostly what the case holds now (so sequences get deep), sometimes anything (so refusals too)."""
        return self.one(pool if current is None else (current, current, current, *pool))

    def flag(self) -> bool:
        return self.one((False, True))


def command_for(pick: Picker, state: CaseState) -> Command:
    """A command a caller might send a case in `state`: valid ones often, invalid ones as well."""
    task = state.open_task
    task_id = pick.likely(state.open_task_id, TASKS)
    kommune = pick.likely(task.kommune_kode if task else state.kommune_kode, KOMMUNER)
    maybe_kommune = pick.one((None, kommune))
    if pick.flag():
        kind = pick.one(KINDS)
    elif state.status is CaseStatus.AWAITING_KOMMUNE:
        kind = pick.one(TASK_WORK if task else ("request",))
    else:
        kind = pick.one(FITTING[state.status])
    match kind:
        case "receive":
            return RECEIVE
        case "prescreen":
            return RecordPreScreening(verdict=pick.one(VERDICTS))
        case "request":
            fresh = tuple(t for t in TASKS if t not in state.tasks)
            return RequestOplysning(
                task_id=pick.one(fresh) if fresh and pick.flag() else task_id,
                reason=pick.one(tuple(RequestReason)),
                policy_id=pick.one(POLICIES),
            )
        case "delivered":
            return MarkDelivered(task_id=task_id, channel=pick.one(tuple(Channel)))
        case "delivery_failed":
            return RecordDeliveryFailure(task_id=task_id, reason="HTTP 410 from the endpoint")
        case "remind":
            return SendReminder(task_id=task_id)
        case "overdue":
            return MarkOverdue(task_id=task_id)
        case "extend":
            return RequestExtension(
                task_id=task_id, kommune_kode=kommune, request_id=pick.one(REQUESTS), extend_by=pick.one(DURATIONS)
            )
        case "decide_extension":
            pending = task.pending_extension.request_id if task and task.pending_extension else None
            return DecideExtension(task_id=task_id, request_id=pick.likely(pending, REQUESTS), grant=pick.flag())
        case "submit":
            return SubmitPart(
                task_id=task_id,
                kommune_kode=kommune,
                submission_id=pick.one(SUBMISSIONS),
                document_ids=pick.one(DOCUMENTS),
                final=pick.flag(),
            )
        case "ask":
            return AskQuestion(
                task_id=task_id,
                question_id=pick.one(QUESTIONS),
                asked_by=pick.one(tuple(Party)),
                kommune_kode=maybe_kommune,
                text="Which period?",
            )
        case "answer":
            asked = task.open_questions[0] if task and task.open_questions else None
            return AnswerQuestion(
                task_id=task_id, question_id=pick.likely(asked, QUESTIONS), kommune_kode=maybe_kommune, text="1990"
            )
        case "return":
            return ReturnTask(
                task_id=task_id, kommune_kode=kommune, correct_kommune_kode=pick.one((*KOMMUNER, "0101", "999"))
            )
        case "transfer":
            return TransferCase(to_kommune_kode=pick.one((*KOMMUNER, "0766", "999")))
        case "decide":
            return MakeDecision(outcome=pick.one((Outcome.GRANTED, Outcome.REJECTED)), decided_by="cw-1")
        case "reject_formally":
            return RejectFormally()
        case "notify_citizen":
            return NotifyCitizen(message_id=pick.one(("m-1", "m-2")))
        case "notify_kommune":
            return NotifyKommune(
                kommune_kode=kommune,
                notice=pick.one(("decision", "withdrawn", "task_closed")),
                task_id=pick.one((None, task_id)),
            )
        case "withdraw":
            return Withdraw()
        case _:
            return CloseCase()


# Short steps keep reminders and demo deadlines in play; long ones carry tasks past the 3-month deadline.
STEPS = (
    timedelta(0),
    timedelta(seconds=20),
    timedelta(minutes=2),
    timedelta(days=1),
    timedelta(days=20),
    timedelta(days=95),
)
REFUSAL_CODES = {"conflict", "not_found", "forbidden", "invalid", "unknown_policy", "refused", "unknown_kommune"}


def _round_trip(event: Event) -> None:
    """Every event survives the event log's storage shape: the body, and back through the upcaster chain."""
    back = event_from_record(
        event_id=event.event_id,
        case_id=event.case_id,
        event_type=event.type,
        schema_version=event.SCHEMA_VERSION,
        occurred_at=event.occurred_at,
        data=event.data(),
    )
    assert back == event


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.integers(1, 60), st.booleans())
def test_decide_only_allows_what_evolve_folds(data: st.DataObject, length: int, receive_first: bool) -> None:
    case = Case(now=START)
    pick = Picker(data)
    if receive_first:
        case.receive()
    for _ in range(length):
        command = command_for(pick, case.state)
        at = case.now + pick.one(STEPS)
        before_state, before_events = case.state, list(case.events)
        snapshot = before_state.model_dump()
        refusal: DomainError | None = None
        try:
            produced = case.do(command, at=at)
        except DomainError as e:
            refusal = e
        if refusal is not None:
            # Refused by decide, before any event: nothing changed, and the reason names no event as corrupt.
            assert refusal.code in REFUSAL_CODES, refusal
            assert str(refusal)
            assert case.state is before_state
            assert case.events == before_events
            assert case.state.model_dump() == snapshot
            continue
        assert produced, f"{type(command).__name__} was allowed but produced no event"
        assert before_state.model_dump() == snapshot  # decide and evolve never mutate the state they are given
        for event in produced:
            assert event.occurred_at == at
            assert event.case_id == case.state.case_id
            _round_trip(event)
        assert case.state.version == len(case.events)
        # Kommune codes stay in canonical form whatever spelling a caller used.
        assert case.state.kommune_kode in KOMMUNER
    # Folding the whole log from scratch gives the state the case reached step by step.
    assert fold(case.events) == case.state
    # ... and so does folding it in two halves, as a projection resuming from a checkpoint does.
    half = len(case.events) // 2
    assert fold(case.events[half:], fold(case.events[:half])) == case.state
    assert len({e.event_id for e in case.events}) == len(case.events)


@settings(max_examples=50, deadline=None)
@given(st.data(), st.integers(0, 30))
def test_decide_is_deterministic(data: st.DataObject, length: int) -> None:
    a, b = Case(now=START), Case(now=START)
    a.receive()
    b.receive()
    pick = Picker(data)
    for _ in range(length):
        command = command_for(pick, a.state)
        step = pick.one(STEPS)
        results: list[list[Event] | str] = []
        for case in (a, b):
            try:
                results.append(case.do(command, at=case.now + step))
            except DomainError as e:
                results.append(str(e))
        assert results[0] == results[1]
    assert a.state == b.state


# --- scripted scenarios: every event type through evolve -----------------------------------------------------------


def _prescreened(verdict: Verdict = Verdict.DISPATCH) -> Case:
    case = Case(now=START)
    case.receive()
    case.do(RecordPreScreening(verdict=verdict))
    return case


def _requested(task_id: str = "t-1") -> Case:
    case = _prescreened()
    case.do(RequestOplysning(task_id=task_id, reason=RequestReason.INITIAL, policy_id="standard-2021.1"))
    return case


def scenario_full_lifecycle() -> Case:
    case = _requested()
    task = case.state.tasks["t-1"]
    case.do(RecordDeliveryFailure(task_id="t-1", reason="HTTP 410"))
    case.do(MarkDelivered(task_id="t-1", channel=Channel.INBOX))
    case.do(SendReminder(task_id="t-1"), at=task.reminder_ats[0])
    case.do(AskQuestion(task_id="t-1", question_id="q1", asked_by=Party.KOMMUNE, kommune_kode="329", text="?"))
    case.do(AnswerQuestion(task_id="t-1", question_id="q1", text="!"))
    week = Duration(quantity=1, unit=Unit.WEEKS)
    case.do(RequestExtension(task_id="t-1", kommune_kode="329", request_id="x1", extend_by=week))
    months = Duration(quantity=3, unit=Unit.MONTHS)
    case.do(RequestExtension(task_id="t-1", kommune_kode="329", request_id="x2", extend_by=months))
    case.do(DecideExtension(task_id="t-1", request_id="x2", grant=False))
    case.do(MarkOverdue(task_id="t-1"), at=case.state.tasks["t-1"].deadline_at)
    case.do(SubmitPart(task_id="t-1", kommune_kode="329", submission_id="s1", document_ids=("d1",)))
    case.do(SubmitPart(task_id="t-1", kommune_kode="329", submission_id="s2", final=True))
    case.do(MakeDecision(outcome=Outcome.GRANTED, decided_by="cw-1"))
    case.do(NotifyCitizen(message_id="m-1"))
    case.do(NotifyKommune(kommune_kode="329", notice="decision"))
    case.do(CloseCase())
    assert case.state.status is CaseStatus.CLOSED
    return case


def scenario_returned_and_rerouted() -> Case:
    case = _requested()
    case.do(ReturnTask(task_id="t-1", kommune_kode="329", correct_kommune_kode="101"))
    assert case.state.kommune_kode == "101"
    case.do(RequestOplysning(task_id="t-2", reason=RequestReason.REROUTED, policy_id="demo-1"))
    assert case.state.tasks["t-2"].kommune_kode == "101"
    return case


def scenario_moved_with_open_task_then_withdrawn() -> Case:
    case = _requested()
    case.do(TransferCase(to_kommune_kode="766"))
    case.do(Withdraw(reason="no longer needed"))
    case.do(NotifyCitizen(message_id="m-1"))
    case.do(CloseCase())
    assert case.state.status is CaseStatus.WITHDRAWN
    return case


def scenario_formal_rejection_from_real_prescreening() -> Case:
    case = Case(now=START)
    case.receive(received_on="2021-01-04", prior_benefit="foertidspension")
    received = case.events[0]
    assert isinstance(received, ApplicationReceived)
    assert received.personal is not None
    screening = prescreen(received.personal)
    assert screening.verdict is Verdict.FORMAL_REJECTION
    case.do(RecordPreScreening(verdict=screening.verdict, rules=summary(screening), details=details(screening)))
    with pytest.raises(DomainError, match="formal rejection"):
        case.do(RequestOplysning(task_id="t-1", reason=RequestReason.INITIAL, policy_id="standard-2021.1"))
    case.do(RejectFormally(reason_codes=tuple(r.rule for r in screening.results if r.outcome == "not_met")))
    case.do(CloseCase())
    assert case.state.status is CaseStatus.REJECTED_FORMAL
    return case


SCENARIOS: tuple[Callable[[], Case], ...] = (
    scenario_full_lifecycle,
    scenario_returned_and_rerouted,
    scenario_moved_with_open_task_then_withdrawn,
    scenario_formal_rejection_from_real_prescreening,
)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_scenario_folds(scenario: Callable[[], Case]) -> None:
    case = scenario()
    assert fold(case.events) == case.state
    for event in case.events:
        _round_trip(event)


def test_the_scenarios_reach_every_event_type() -> None:
    seen = {e.type for scenario in SCENARIOS for e in scenario().events}
    assert seen == set(EVENT_TYPES), f"never reached: {sorted(set(EVENT_TYPES) - seen)}"


def test_evolve_refuses_what_a_sound_log_never_holds() -> None:
    case = scenario_full_lifecycle()
    closed = case.events[-1]
    assert isinstance(closed, CaseClosed)
    with pytest.raises(DomainError, match="closed") as info:
        evolve(case.state, closed)
    assert info.value.code == "corrupt"
    with pytest.raises(DomainError, match="first event must be ApplicationReceived"):
        evolve(CaseState(), case.events[1])
    other = Case(case_id="c-2", now=START)
    other.receive()
    with pytest.raises(DomainError, match="another case"):
        evolve(other.state, case.events[1])
    with pytest.raises(DomainError, match="already received"):
        evolve(fold(case.events[:1]), case.events[0])


def test_a_kommune_cannot_be_notified_about_a_case_not_yet_received() -> None:
    # Found by the property above: decide allowed it, and evolve then refused the log's first event.
    with pytest.raises(DomainError, match="before the application is received"):
        Case(now=START).do(NotifyKommune(kommune_kode="329", notice="decision"))


def test_kommune_codes_in_events_are_canonical_whatever_the_caller_wrote() -> None:
    # Found by the property above: "0101" and "101" are one kommune, but a case held whichever spelling came in.
    case = _requested()
    evs = case.do(ReturnTask(task_id="t-1", kommune_kode="0329", correct_kommune_kode="0101"))
    returned, transferred = evs
    assert isinstance(returned, OplysningReturned)
    assert isinstance(transferred, CaseTransferred)
    assert (returned.kommune_kode, returned.correct_kommune_kode) == ("329", "101")
    assert transferred.to_kommune_kode == "101"
    assert case.state.kommune_kode == "101"
    with pytest.raises(DomainError, match="already in that kommune"):
        case.do(TransferCase(to_kommune_kode="0101"))
    case.do(TransferCase(to_kommune_kode="0766"))
    assert case.state.kommune_kode == "766"


def test_each_side_answers_the_others_questions_and_never_its_own() -> None:
    case = _requested()
    case.do(MarkDelivered(task_id="t-1", channel=Channel.INBOX))
    case.do(AskQuestion(task_id="t-1", question_id="from-k", asked_by=Party.KOMMUNE, kommune_kode="329", text="?"))
    case.do(AskQuestion(task_id="t-1", question_id="from-cw", asked_by=Party.CASEWORKER, text="?"))
    with pytest.raises(DomainError, match="'from-k' was asked by the kommune: the caseworker answers it") as own:
        case.do(AnswerQuestion(task_id="t-1", question_id="from-k", kommune_kode="329", text="!"))
    assert own.value.code == "conflict"
    with pytest.raises(DomainError, match="'from-cw' was asked by the caseworker: the kommune answers it"):
        case.do(AnswerQuestion(task_id="t-1", question_id="from-cw", text="!"))
    assert case.state.tasks["t-1"].open_questions == ("from-k", "from-cw")
    case.do(AnswerQuestion(task_id="t-1", question_id="from-k", text="!"))
    case.do(AnswerQuestion(task_id="t-1", question_id="from-cw", kommune_kode="0329", text="!"))
    task = case.state.tasks["t-1"]
    assert (task.open_questions, task.answered_questions, task.kommune_questions) == (
        (),
        ("from-k", "from-cw"),
        ("from-k",),
    )


def test_who_asks_a_question_and_the_kommune_it_names_agree() -> None:
    case = _requested()
    with pytest.raises(DomainError, match="kommune_kode: set exactly when the kommune asks"):
        case.do(AskQuestion(task_id="t-1", question_id="q", asked_by=Party.KOMMUNE, text="?"))
    with pytest.raises(DomainError, match="kommune_kode: set exactly when the kommune asks"):
        case.do(AskQuestion(task_id="t-1", question_id="q", asked_by=Party.CASEWORKER, kommune_kode="329", text="?"))
    assert case.state.tasks["t-1"].open_questions == ()


def test_answers_are_not_checked_where_the_asker_is_unknown() -> None:
    # A task state from code that did not keep the askers (a running task's input or carry-over): its history's
    # answers were accepted then, so they are accepted again on replay.
    case = _requested()
    task = case.state.tasks["t-1"]
    case.state = case.state.model_copy(update={"tasks": {"t-1": task.model_copy(update={"kommune_questions": None})}})
    case.do(AskQuestion(task_id="t-1", question_id="k1", asked_by=Party.KOMMUNE, kommune_kode="329", text="?"))
    case.do(AnswerQuestion(task_id="t-1", question_id="k1", kommune_kode="329", text="!"))
    assert case.state.tasks["t-1"].answered_questions == ("k1",)
    assert case.state.tasks["t-1"].kommune_questions is None
