"""The quarterly report's "next meeting" section on a real log: the forecast fan chart and the forum kommuner from the
first report on, last quarter's forecast against what happened only once a previous meeting date has data, and the
trend table; an empty log still builds. Few runs: the model itself is tested in tests/domain/test_forecast.py."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from domain.kommuner import FORUM_KOMMUNER, all_kommuner
from eventlog.store import EventStore
from reports.build import build_quarterly
from reports.quarterly import parse_quarter
from reports.render import write_report
from tests.domain.factories import Case
from tests.reports.test_quarterly import (
    T0,
    _answered_case,
    _append,
    _local,
    _q1_cases,
    _received_only,
    _visible_text,
    _waiting_case,
    store,
)

__all__ = ["store"]  # the fixture, shared with the report's other tests
RUNS = 30
NAMES = {k.kode: k.navn for k in all_kommuner()}


def _cases() -> list[Case]:
    return [
        *_q1_cases(),
        _waiting_case("w3", "101", T0 + timedelta(days=20), overdue=False),
        _waiting_case("w4", "766", T0 + timedelta(days=70), overdue=False),
        _answered_case("a5", "561", T0 + timedelta(days=30), timedelta(days=50)),
        _waiting_case("w5", "810", _local(2021, 5, 3), overdue=False),
        _received_only("z1", _local(2021, 7, 5, 9)),  # the log runs past Q2's end: Q2 is fully covered
    ]


async def test_first_report_has_the_forecast_and_no_comparison(store: EventStore, db_url: str, tmp_path: Path) -> None:
    cases = _cases()
    position = await _append(store, cases, until=_local(2021, 4, 6))
    report = await build_quarterly(db_url, parse_quarter("2021Q1"), position=position, forecast_runs=RUNS)
    assert report.outlook is not None and report.outlook.forecast is not None
    assert report.outlook.backcast is None
    page = write_report(report, tmp_path / "q1")[0].read_text()
    text = _visible_text(page)
    assert '<div id="fan-chart"><svg' in page and 'id="backcast"' not in page
    assert "Frem mod forummets næste møde" in text and "Ved mødet 1. juni 2021 (median)" in text
    forum_table = page[page.index('id="forecast-forum"') : page.index("</table>", page.index('id="forecast-forum"'))]
    assert all(NAMES[k] in forum_table for k in FORUM_KOMMUNER)
    assert "begynder efter forummets møde 1. december 2020" in text
    assert 'id="trend"' in page and "2021Q1" in text

    # The same position, the same section: the forecast draws the same futures.
    again = await build_quarterly(db_url, parse_quarter("2021Q1"), position=position, forecast_runs=RUNS)
    assert write_report(again, tmp_path / "again")[0].read_text() == page

    empty = await build_quarterly(db_url, parse_quarter("2021Q1"), position=0, forecast_runs=RUNS)
    assert "Der er ingen data for 2021Q1 at lave en prognose ud fra." in _visible_text(
        write_report(empty, tmp_path / "empty")[0].read_text()
    )


async def test_second_report_sets_last_quarters_forecast_against_what_happened(
    store: EventStore, db_url: str, tmp_path: Path
) -> None:
    position = await _append(store, _cases())
    report = await build_quarterly(db_url, parse_quarter("2021Q2"), position=position, forecast_runs=RUNS)
    assert report.outlook is not None and report.outlook.backcast is not None
    back = report.outlook.backcast
    # Made at the March meeting for the June one, and what the log shows on 1 June.
    assert (back.forecast.as_of, back.forecast.to) == (_local(2021, 3, 1, 0), _local(2021, 6, 1, 0))
    assert back.actual.total["waiting"] >= 1
    text = _visible_text(write_report(report, tmp_path)[0].read_text())
    assert "Hvor godt ramte sidste prognose?" in text
    assert "læser kun hændelser fra før 1. marts 2021" in text
    assert f"Venter på kommunen: {NAMES['810']}" in text
    assert [q.quarter for q in report.outlook.trend] == ["2021Q1", "2021Q2"]

    # Q1's report is made for the June meeting, which this log reaches: its forecast starts there, for September.
    q1 = await build_quarterly(db_url, parse_quarter("2021Q1"), position=position, forecast_runs=RUNS)
    assert q1.outlook is not None and q1.outlook.forecast is not None and q1.outlook.at_meeting
    assert (q1.outlook.forecast.as_of, q1.outlook.forecast.to) == (_local(2021, 6, 1, 0), _local(2021, 9, 1, 0))
