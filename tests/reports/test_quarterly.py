"""The quarterly report from a real event log (built by the domain's own decide + evolve and stored in PostgreSQL):
figures a forum member can check by hand, what the report says where there is nothing to count, and reproducibility.
"""

from __future__ import annotations

import csv
import html as html_lib
import io
import re
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from domain.calendar import COPENHAGEN, Duration, Unit
from domain.commands import (
    CloseCase,
    DecideExtension,
    MakeDecision,
    MarkOverdue,
    NotifyCitizen,
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
from domain.events import Outcome, RequestReason, Verdict
from eventlog.figures import Share
from eventlog.store import EventStore, create_pool
from reports import charts
from reports.build import build_quarterly
from reports.quarterly import parse_quarter
from reports.render import CSV_FILES, QuarterlyReport, write_report
from tests.domain.factories import Case

T0 = datetime(2021, 1, 4, 9, 0, tzinfo=UTC)


def _local(y: int, m: int, d: int, hour: int = 12) -> datetime:
    return datetime(y, m, d, hour, tzinfo=COPENHAGEN).astimezone(UTC)


def _requested(case_id: str, kommune: str, at: datetime, received_on: date | None = None) -> Case:
    """Received, pre-screened and sent to `kommune` as one oplysning task (`{case_id}-t1`), all at `at`."""
    case = Case(case_id, now=at)
    case.receive(kommune_kode=kommune, received_on=(received_on or at.astimezone(COPENHAGEN).date()).isoformat())
    case.do(RecordPreScreening(verdict=Verdict.DISPATCH))
    case.do(RequestOplysning(task_id=f"{case_id}-t1", reason=RequestReason.INITIAL, policy_id="standard-2021.1"))
    return case


def _answer(case: Case, at: datetime, task: str = "t1") -> Case:
    kommune = case.state.tasks[f"{case.case_id}-{task}"].kommune_kode
    case.do(
        SubmitPart(task_id=f"{case.case_id}-{task}", kommune_kode=kommune, submission_id="s", final=True),
        at=at,
    )
    return case


def _decide(case: Case, at: datetime) -> Case:
    case.do(MakeDecision(outcome=Outcome.GRANTED, decided_by="cw"), at=at)
    case.do(NotifyCitizen(message_id="m"))
    case.do(CloseCase())
    return case


def _answered_case(case_id: str, kommune: str, start: datetime, answer_after: timedelta) -> Case:
    case = _answer(_requested(case_id, kommune, start), start + answer_after)
    return _decide(case, start + answer_after + timedelta(days=5))


def _waiting_case(case_id: str, kommune: str, start: datetime, overdue: bool) -> Case:
    case = _requested(case_id, kommune, start)
    task_id = f"{case_id}-t1"
    deadline = case.state.tasks[task_id].deadline_at
    case.do(SendReminder(task_id=task_id), at=deadline - timedelta(days=3))
    if overdue:
        case.do(MarkOverdue(task_id=task_id), at=deadline)
    return case


def _formal_rejection(case_id: str, start: datetime, received_on: date | None = None) -> Case:
    case = Case(case_id, now=start)
    case.receive(received_on=(received_on or start.date()).isoformat())
    case.do(RecordPreScreening(verdict=Verdict.FORMAL_REJECTION))
    case.do(RejectFormally(reason_codes=("age_window",)), at=start + timedelta(days=1))
    case.do(NotifyCitizen(message_id="m"))
    case.do(CloseCase())
    return case


def _received_only(case_id: str, at: datetime) -> Case:
    case = Case(case_id, now=at)
    case.receive(received_on=at.astimezone(COPENHAGEN).date().isoformat())
    return case


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[EventStore]:
    pool = await create_pool(db_url)
    yield EventStore(pool)
    await pool.close()


async def _append(store: EventStore, cases: Sequence[Case], until: datetime | None = None) -> int:
    """Append each case's events stamped up to `until` (all if None); the head position. With `until`, the log is
    what a report built on that day would see."""
    for c in cases:
        events = [e for e in c.events if until is None or e.occurred_at <= until]
        if events:
            await store.append(c.case_id, 0, events)
    return await store.head_position()


def _q1_cases() -> list[Case]:
    return [
        _answered_case("a1", "329", T0, timedelta(days=20)),  # answered in Q1, within the 3-month deadline
        _answered_case("a2", "101", T0 + timedelta(days=7), timedelta(days=30)),
        _answered_case("a3", "751", T0 + timedelta(days=14), timedelta(days=40)),
        _waiting_case("w1", "329", T0 + timedelta(days=1), overdue=True),  # deadline 6 Apr → overdue in Q2
        _waiting_case("w2", "751", T0 + timedelta(days=60), overdue=False),
        _formal_rejection("f1", T0 + timedelta(days=2)),
    ]


def _visible_text(page: str) -> str:
    """The page's text as a reader sees it, without the charts (their text is checked on its own)."""
    page = re.sub(r"<style.*?</style>|<svg.*?</svg>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", page))).replace("\u00a0", " ")


def _svg_texts(page: str) -> list[str]:
    return [html_lib.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", page)]


def _csv_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline=""), delimiter=";"))


def _written(files: list[Path], suffix: str) -> Path:
    return next(p for p in files if p.name.endswith(suffix))


async def test_quarter_figures_and_byte_identical_rebuild(store: EventStore, db_url: str, tmp_path: Path) -> None:
    position = await _append(store, _q1_cases())

    report = await build_quarterly(db_url, parse_quarter("2021Q1"), position=position)
    f = report.current
    assert f.coverage.state == "full"
    assert f.intake_total == 6
    assert f.decisions == {"granted": 3, "rejected": 0, "rejected_formal": 1, "withdrawn": 0}
    # At the end of Q1 the two waiting cases are open and both wait on a kommune.
    assert (f.open_at_end, f.waiting_at_end, f.waiting_share_pct) == (2, 2, 100.0)
    by_code = {k.kode: k for k in f.kommuner}
    assert (by_code["329"].received, by_code["329"].answered, by_code["329"].median_days) == (2, 1, 20.0)
    assert by_code["329"].forum and not by_code["751"].forum
    forum, rest = f.groups
    assert (forum.answered, rest.answered) == (2, 1)
    # 1 day for the formal rejection; 25, 35 and 45 days from receipt to decision for the others.
    assert (f.e2e_median_days, f.e2e_p90_days) == (30.0, 45.0)
    # Every task was asked for in January: no deadline (3 months) fell in Q1, so there is no share to give, where
    # the report used to say 100 % from the three answered tasks.
    assert f.deadline == Share(0, 0) and f.deadline.pct is None
    assert report.previous.has_data is False and report.previous.intake_total is None

    q2 = await build_quarterly(db_url, parse_quarter("2021Q2"), position=position)
    assert {k.kode: k.overdue for k in q2.current.kommuner}["329"] == 1

    first = write_report(report, tmp_path / "one")
    again = write_report(await build_quarterly(db_url, parse_quarter("2021Q1"), position=position), tmp_path / "two")
    assert [p.name for p in first] == [p.name for p in again]
    assert len(first) == 1 + len(CSV_FILES)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    page = first[0].read_text()
    assert f"position {position}" in page and "<svg" in page and "København" in page
    assert "150562" not in page and "Testperson" not in page
    text = _visible_text(page)
    assert "ingen frister i perioden besvaret inden for fristen første frist: 6. april 2021" in text


async def test_report_at_an_earlier_position_ignores_later_events(store: EventStore, db_url: str) -> None:
    c1 = _answered_case("a1", "329", T0, timedelta(days=20))
    await store.append("a1", 0, c1.events)
    early = await store.head_position()
    c2 = _answered_case("a2", "329", T0, timedelta(days=10))
    await store.append("a2", 0, c2.events)
    report = await build_quarterly(db_url, parse_quarter("2021Q1"), position=early)
    assert report.current.intake_total == 1
    assert report.log_position == early


def _deadline_cases() -> list[Case]:
    """Tasks whose deadlines fall in 2021Q2. A task asked for on 4 January is due on 6 April (4 April + 3 months is
    a Sunday, 5 April Easter Monday), one asked for on 20 January on 20 April."""
    on_time_early = _answer(_requested("d1", "751", T0), _local(2021, 3, 1))  # answered in Q1, due in Q2
    still_open = _requested("d3", "329", T0)
    still_open.do(MarkOverdue(task_id="d3-t1"), at=_local(2021, 4, 7, 8))
    on_time = _answer(_requested("d4", "751", _local(2021, 1, 20, 10)), _local(2021, 4, 10))
    # Returned as "not our citizen" before its deadline: never came due.
    returned = _requested("d5", "751", T0)
    returned.do(ReturnTask(task_id="d5-t1", kommune_kode="751", correct_kommune_kode="101"), at=_local(2021, 2, 1))
    # Asked for on 15 March (due 15 June), extended by a month: the deadline in force is in Q3.
    extended = _requested("d6", "751", _local(2021, 3, 15, 10))
    extended.do(
        RequestExtension(
            task_id="d6-t1",
            kommune_kode="751",
            request_id="x1",
            extend_by=Duration(quantity=1, unit=Unit.MONTHS),
        ),
        at=_local(2021, 5, 1),
    )
    if extended.state.tasks["d6-t1"].pending_extension is not None:
        extended.do(DecideExtension(task_id="d6-t1", request_id="x1", grant=True), at=_local(2021, 5, 2))
    mid = _received_only("r1", _local(2021, 4, 15, 9))
    later = _received_only("z1", _local(2021, 7, 5, 9))  # the log runs past the quarter's end
    return [on_time_early, still_open, on_time, returned, extended, mid, later]


async def test_answered_within_deadline_counts_every_task_due_in_the_quarter(
    store: EventStore, db_url: str, tmp_path: Path
) -> None:
    cases = _deadline_cases()
    assert cases[4].state.tasks["d6-t1"].deadline_at > parse_quarter("2021Q2").end
    position = await _append(store, cases)
    report = await build_quarterly(db_url, parse_quarter("2021Q2"), position=position)
    f = report.current
    assert f.coverage.state == "full"
    # Due in Q2: d1 (answered in March), d3 (still open past its deadline), d4 (answered 10 April). Counting only
    # the tasks answered in the quarter, as the report used to, gave 1 of 1: 100 %.
    assert f.deadline == Share(due=3, kept=2)
    forum, rest = f.groups
    assert forum.deadline == Share(1, 0) and rest.deadline == Share(2, 2)
    assert {k.kode: k.deadline for k in f.kommuner}["329"] == Share(1, 0)

    files = write_report(report, tmp_path)
    text = _visible_text(files[0].read_text())
    assert "66,7 %" in text and "2 af 3 opgaver med frist i perioden" in text
    assert "Af de 3 opgaver, hvis frist udløb i perioden, besvarede kommunerne 2 (66,7 %) inden for fristen." in text
    groups = _csv_rows(_written(files, "forum_vs_rest.csv"))
    header = groups[0]
    forum_row = dict(zip(header, groups[1], strict=True))
    assert (forum_row["Opgaver med frist i perioden"], forum_row["Besvaret inden for fristen (%)"]) == ("1", "0,0")


async def test_a_quarter_not_over_yet_counts_only_what_is_known_and_says_so(
    store: EventStore, db_url: str, tmp_path: Path
) -> None:
    cases = _deadline_cases()
    cut = _local(2021, 4, 15)
    position = await _append(store, cases, until=cut)
    report = await build_quarterly(db_url, parse_quarter("2021Q2"), position=position)
    f = report.current
    assert f.coverage.state == "partial" and f.coverage.ends_early and not f.coverage.starts_late
    # d4 is due on 20 April, after the log's last event: not known yet, so not counted.
    assert f.deadline == Share(due=2, kept=1)
    assert f.as_of == f.coverage.end < cut + timedelta(seconds=1)
    weeks = {w.week: w for w in f.weeks}
    assert weeks[15].coverage == "partial" and weeks[15].intake is not None
    assert weeks[16].coverage == "none" and weeks[16].intake is None

    files = write_report(report, tmp_path)
    page = files[0].read_text()
    text = _visible_text(page)
    assert "Delvist dækket kvartal" in text and "Kvartalet var ikke slut ved denne position" in text
    # No change against Q1 from a quarter that is not over: it would read as a fall.
    assert "ingen sammenligning: 2021Q2 er kun delvist dækket" in text
    assert not re.search(r"[+−]\d+ mod 2021Q1", text)
    assert "ingen" in _svg_texts(page)  # the weeks after the log's end: "ingen data", not 0
    week_rows = {r[0]: r for r in _csv_rows(_written(files, "intake_per_week.csv"))[1:]}
    assert week_rows["2021-U16"][-2:] == ["nej", "–"]
    assert week_rows["2021-U15"][-2] == "delvist"


async def test_a_log_that_starts_mid_quarter_marks_the_quarter_as_partly_covered(
    store: EventStore, db_url: str, tmp_path: Path
) -> None:
    start = _local(2021, 2, 17, 10)  # a Wednesday
    position = await _append(
        store, [_answered_case("m1", "329", start, timedelta(days=10)), _received_only("z1", _local(2021, 4, 6))]
    )
    report = await build_quarterly(db_url, parse_quarter("2021Q1"), position=position)
    f = report.current
    assert f.coverage.state == "partial" and f.coverage.starts_late and not f.coverage.ends_early
    assert [w.intake for w in f.weeks if w.week in (6, 7, 8)] == [None, 1, 0]
    assert {w.week: w.coverage for w in f.weeks}[7] == "partial"
    text = _visible_text(write_report(report, tmp_path)[0].read_text())
    assert "Hændelsesloggen begynder først 17. februar 2021" in text
    assert "alle tal gælder 17. februar – 31. marts 2021" in text


async def test_a_quarter_without_data_says_so_instead_of_zeros(store: EventStore, db_url: str, tmp_path: Path) -> None:
    position = await _append(store, _q1_cases())
    report = await build_quarterly(db_url, parse_quarter("2020Q4"), position=position)
    f = report.current
    assert not f.has_data
    assert (f.intake_total, f.open_at_end, f.deadline, f.six_months, f.kommuner) == (None, None, None, None, [])
    files = write_report(report, tmp_path / "q4")
    page = files[0].read_text()
    text = _visible_text(page)
    assert "Ingen data." in text and "ingen hændelser fra 2020Q4" in text
    assert "Loggen dækker 4. januar 2021" in text
    assert "<svg" not in page  # no chart of zeros from -0.04 to 0.04
    summary = {r[0]: r[1] for r in _csv_rows(_written(files, "summary.csv"))[1:]}
    assert summary["Dækket af hændelsesloggen"] == "nej"
    assert summary["Nye ansøgninger"] == "–" and summary["Besvaret inden for fristen (%)"] == "–"

    # The next quarter compares with it: no "+6 mod 2020Q4".
    q1_text = _visible_text(
        write_report(await build_quarterly(db_url, parse_quarter("2021Q1"), position=position), tmp_path / "q1")[
            0
        ].read_text()
    )
    assert "ingen data for 2020Q4" in q1_text and "+6" not in q1_text

    empty = await build_quarterly(db_url, parse_quarter("2021Q1"), position=0)
    assert not empty.current.has_data
    assert "Hændelsesloggen er tom ved denne position" in _visible_text(
        write_report(empty, tmp_path / "empty")[0].read_text()
    )


def _six_month_cases() -> list[Case]:
    """Applications dated 4 January 2021: 6 months later is Sunday 4 July, so the point is the end of Monday 5 July."""
    jan4 = date(2021, 1, 4)
    within = _answer(_requested("s1", "329", T0, received_on=jan4), _local(2021, 3, 1))
    _decide(within, _local(2021, 7, 5, 22))  # late on the last day: within
    late = _answer(_requested("s2", "751", T0, received_on=jan4), _local(2021, 3, 1))
    _decide(late, _local(2021, 7, 6, 9))  # the next morning: not within
    undecided = _requested("s3", "751", T0, received_on=jan4)  # still with the kommune: not within
    withdrawn = _requested("s4", "751", T0, received_on=jan4)
    withdrawn.do(Withdraw(), at=_local(2021, 3, 10))  # withdrawn before its 6 months: left out
    withdrawn.do(CloseCase())
    formal = _formal_rejection("s5", _local(2021, 1, 4, 10), received_on=jan4)  # decided the next day: within
    # In Brønderslev (forum) at its 6-month point, moved to 751 afterwards: counts for Brønderslev.
    moved = _answer(_requested("s6", "810", T0, received_on=jan4), _local(2021, 3, 1))
    moved.do(TransferCase(to_kommune_kode="751"), at=_local(2021, 7, 20))
    later = _received_only("z1", _local(2021, 10, 4, 9))  # the log runs past Q3's end
    return [within, late, undecided, withdrawn, formal, moved, later]


async def test_share_decided_within_six_months_of_the_application(
    store: EventStore, db_url: str, tmp_path: Path
) -> None:
    position = await _append(store, _six_month_cases())
    q3 = await build_quarterly(db_url, parse_quarter("2021Q3"), position=position)
    f = q3.current
    # s1 and s5 within; s2, s3 and s6 not; s4 left out.
    assert f.six_months == Share(due=5, kept=2)
    forum, rest = f.groups
    # s1 and s5 (Ringsted), and s6 (in Brønderslev at its 6-month point, though in 751 now).
    assert forum.six_months == Share(3, 2)
    assert rest.six_months == Share(2, 0)
    by_code = {k.kode: k.six_months for k in f.kommuner}
    assert (by_code["810"], by_code["751"], by_code["329"]) == (Share(1, 0), Share(2, 0), Share(2, 2))

    files = write_report(q3, tmp_path / "q3")
    page = files[0].read_text()
    text = _visible_text(page)
    assert "Af de 5 sager, der rundede 6 måneder efter ansøgningen i perioden, var 2 (40,0 %) afgjort inden da" in text
    assert "for de fem forumkommuner var andelen 66,7 %" in text
    assert "Andel af sager afgjort inden for 6 måneder efter ansøgningen" in _svg_texts(page)
    assert "næste arbejdsdag" in text  # the glossary says how the 6 months are counted

    q1 = await build_quarterly(db_url, parse_quarter("2021Q1"), position=position)
    assert q1.current.six_months == Share(0, 0)
    q1_text = _visible_text(write_report(q1, tmp_path / "q1")[0].read_text())
    assert "ingen sager har rundet 6 måneder" in q1_text
    assert "De første gør det 5. juli 2021." in q1_text


async def _q1_files(store: EventStore, db_url: str, out: Path) -> tuple[QuarterlyReport, list[Path]]:
    position = await _append(store, [*_q1_cases(), _answered_case("a4", "751", T0, timedelta(days=13, hours=6))])
    report = await build_quarterly(db_url, parse_quarter("2021Q1"), position=position)
    return report, write_report(report, out)


async def test_partial_weeks_at_the_quarter_boundaries_are_marked(
    store: EventStore, db_url: str, tmp_path: Path
) -> None:
    report, files = await _q1_files(store, db_url, tmp_path)
    weeks = report.current.weeks
    # 2021Q1 begins on Friday 1 January (ISO week 2020-W53) and ends on Wednesday 31 March (week 13).
    assert (weeks[0].year, weeks[0].week, weeks[0].days_in_quarter, weeks[0].cut) == (2020, 53, 3, True)
    assert (weeks[-1].week, weeks[-1].days_in_quarter, weeks[-1].cut) == (13, 3, True)
    assert not any(w.cut for w in weeks[1:-1])
    labels = _svg_texts(files[0].read_text())
    assert "1.1.–3.1." in labels and "29.3.–31.3." in labels
    assert any(t.startswith("delvis uge") for t in labels)  # the legend for the hatched bars
    rows = _csv_rows(_written(files, "intake_per_week.csv"))
    assert rows[0] == [
        "Uge",
        "Mandag",
        "Søndag",
        "Dage i kvartalet",
        "Hel uge i kvartalet",
        "Dækket af loggen",
        "Nye ansøgninger",
    ]
    assert rows[1][:5] == ["2020-U53", "2020-12-28", "2021-01-03", "3", "nej"]
    assert rows[2][3:5] == ["7", "ja"]


async def test_csv_files_open_in_danish_excel(store: EventStore, db_url: str, tmp_path: Path) -> None:
    _, files = await _q1_files(store, db_url, tmp_path)
    for path in files[1:]:
        data = path.read_bytes()
        assert data.startswith(b"\xef\xbb\xbf"), path.name  # UTF-8 with BOM: Excel reads æ, ø, å right
        lines = data.split(b"\r\n")
        assert lines[-1] == b"" and all(b"\n" not in line for line in lines), path.name  # CRLF throughout
        assert b";" in lines[0], path.name
        text = data.decode("utf-8-sig")
        assert "True" not in text and "False" not in text, path.name
    kommuner = _csv_rows(_written(files, "kommuner.csv"))
    header = kommuner[0]
    assert header[:5] == ["Kode", "Kommune", "Forumkommune", "Opgaver modtaget", "Opgaver besvaret"]
    assert len(kommuner) == 1 + 98
    rows = {r[0]: dict(zip(header, r, strict=True)) for r in kommuner[1:]}
    assert rows["329"]["Forumkommune"] == "ja" and rows["751"]["Forumkommune"] == "nej"
    assert rows["751"]["Svartid median (dage)"] == "26,6"  # 40 and 13¼ days: decimal comma
    assert rows["147"]["Svartid median (dage)"] == "–" and rows["147"]["Opgaver modtaget"] == "0"
    summary = {r[0]: r[1:] for r in _csv_rows(_written(files, "summary.csv"))[1:]}
    assert summary["Andel af åbne sager der venter på kommunen (%)"][0] == "100,0"
    assert summary["Nye ansøgninger"][:2] == ["7", "–"]  # 2020Q4: no data, not 0


async def test_numbers_dates_and_colours_read_danish_and_neutral(
    store: EventStore, db_url: str, tmp_path: Path
) -> None:
    _, files = await _q1_files(store, db_url, tmp_path)
    page = files[0].read_text()
    text = _visible_text(page)
    assert text.count(" %") >= 2 and "100,0 %" in text
    assert "tallene gælder 1. januar – 31. marts 2021" in text
    assert re.search(r"\b\d+\.\d+ (dage|%)", text) is None  # no decimal point in a number a reader sees
    svg_texts = _svg_texts(page)
    # The median answer time of the other kommuner (751: 40 and 13¼ days) in the chart, with a decimal comma.
    assert "26,6" in svg_texts and "26.6" not in svg_texts
    assert not any(re.fullmatch(r"−?\d+\.\d+", t) for t in svg_texts)
    # The forum kommuner: a neutral blue with a legend, never the red that read as "bad".
    assert "#c8102e" not in page and "#fdecee" not in page
    assert charts.FORUM_COLOUR in page and "forumkommune(r)" in svg_texts
    # Hedensted, Esbjerg and Brønderslev answered nothing: no 0 bar, but words.
    assert svg_texts.count("ingen besvarede opgaver i perioden") == 3
    assert "3 måneder (≈ 91 dage): kommunens frist" in svg_texts


def test_a_missing_value_is_no_bar_and_an_all_zero_chart_starts_at_zero() -> None:
    svg = charts.horizontal_bars(["A", "B"], [12.5, None], [True, False], title="t", xlabel="dage")
    assert svg.count(f"fill: {charts.FORUM_COLOUR}") == 2  # A's bar and the legend's swatch
    assert svg.count(f"fill: {charts.OTHER_COLOUR}") == 1  # the legend only: B has no bar
    assert "ingen data" in _svg_texts(svg) and "12,5" in _svg_texts(svg)
    zeros = charts.bar_chart(["x", "y"], [0, 0], title="t", ylabel="n")
    ticks = [t for t in _svg_texts(zeros) if re.fullmatch(r"[−\d.,]+", t)]
    assert ticks and not any(t.startswith("−") or "," in t for t in ticks)  # not -0,04 … 0,04


async def test_summary_and_glossary_explain_the_report(store: EventStore, db_url: str, tmp_path: Path) -> None:
    report, files = await _q1_files(store, db_url, tmp_path)
    page = files[0].read_text()
    summary = re.search(r'<p class="summary" id="summary">(.*?)</p>', page, flags=re.S)
    assert summary is not None
    said = _visible_text(summary.group(1)).strip()
    assert said.startswith("Kort fortalt. I 2021Q1 modtog Seniorpension 7 ansøgninger.")
    assert "Ved kvartalets udgang var 2 sager åbne, og 2 af dem (100,0 %) ventede på oplysninger" in said
    assert "De første frister udløber 6. april 2021." in said
    glossary = re.search(r'<dl class="glossary">(.*?)</dl>', page, flags=re.S)
    assert glossary is not None
    terms = _visible_text(" | ".join(re.findall(r"<dt>(.*?)</dt>", glossary.group(1))))
    for term in (
        "p90",
        "Median",
        "position",
        "Stiplet linje ved 3 måneder",
        "Venter på kommunen",
        "Besvaret inden for fristen",
        "Afgjort inden for 6 måneder",
        "delvis uge",
        "Delvist dækket kvartal",
        "Forumkommunerne",
        "Rykker",
        "Gået over frist",
        "ingen data",
    ):
        assert term in terms, term
    assert f"--position {report.log_position}" in _visible_text(glossary.group(1))


def test_parse_quarter_errors() -> None:
    assert parse_quarter("2021q3").label == "2021Q3"
    with pytest.raises(ValueError, match="2021Q1"):
        parse_quarter("2021-05")
