"""One log, three readers: the quarterly report, the ops API's backlog (JSON over HTTP) and `/metrics` give the same
figures, each taken from eventlog.figures.

The log is made by the domain's own decide + evolve (the report tests' builders) and appended to the stack's event
log; the stack's worker projects it, as it projects the workflows' events. The report reads the log at a position,
the API and the metrics read the projection: where they show the same figure, they must show the same number.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from eventlog import queries
from eventlog.figures import FigureStore, just_before
from reports.build import build_quarterly_from
from reports.quarterly import parse_quarter
from tests.api.conftest import Stack
from tests.domain.factories import Case
from tests.reports.test_quarterly import (
    T0,
    _answer,
    _decide,
    _formal_rejection,
    _local,
    _received_only,
    _requested,
    _waiting_case,
)


def _answered(case_id: str, kommune: str, start: datetime, days: int) -> Case:
    return _decide(
        _answer(_requested(case_id, kommune, start), start + timedelta(days=days)), start + timedelta(days=days + 2)
    )


def _log() -> list[Case]:
    return [
        # Answered in 2021Q1: in Ringsted after 10, 20 and 30 days (p90 30 by nearest rank, 28 by interpolation),
        # in Aarhus after 15.
        _answered("fa-1", "329", T0, 10),
        _answered("fa-2", "329", T0 + timedelta(days=1), 20),
        _answered("fa-3", "329", T0 + timedelta(days=2), 30),
        _answered("fa-4", "751", T0 + timedelta(days=3), 15),
        # Waiting: Ringsted's goes overdue in 2021Q2; Aarhus's is reminded, late in May, and that reminder is the
        # log's last event.
        _waiting_case("fw-1", "329", T0 + timedelta(days=5), overdue=True),
        _waiting_case("fw-2", "751", _local(2021, 3, 1), overdue=False),
        _formal_rejection("ff-1", T0 + timedelta(days=4)),
        _received_only("fr-1", _local(2021, 2, 10)),
    ]


async def _backlog_json(stack: Stack, at: datetime | None = None) -> dict[str, list[dict[str, object]]]:
    params = {} if at is None else {"as_of": at.isoformat()}
    r = await stack.http.get("/v1/ops/backlog", params=params, headers=stack.ops_headers)
    assert r.status_code == 200, r.text
    body: dict[str, list[dict[str, object]]] = r.json()
    return body


def _open_tasks(body: dict[str, list[dict[str, object]]]) -> Counter[str]:
    out = Counter[str]()
    for row in body["tasks"]:
        out[str(row["kommune_kode"])] += int(str(row["tasks"]))
    return out


async def _metrics(stack: Stack) -> dict[str, dict[tuple[str, ...], float]]:
    r = await stack.http.get("/metrics")
    assert r.status_code == 200, r.text
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sample.labels.values())] = sample.value
    return out


async def test_report_ops_api_and_metrics_agree_on_one_log(stack: Stack) -> None:
    cases = _log()
    for case in cases:
        await stack.store.append(case.case_id, 0, case.events)
    position = await stack.store.head_position()
    await stack.projected()
    figures = FigureStore(stack.pool)

    # 2021Q1, fully covered: its stock figures are the state at the quarter's end.
    q1 = parse_quarter("2021Q1")
    report = (await build_quarterly_from(figures, q1, position=position)).current
    assert report.coverage.state == "full" and report.as_of == q1.end
    at_end = await _backlog_json(stack, just_before(q1.end))
    in_report = {k.kode: k.waiting_at_end for k in report.kommuner if k.waiting_at_end}
    assert in_report == _open_tasks(at_end) == {"329": 1, "751": 1}
    assert report.waiting_at_end == sum(in_report.values())

    # Median and p90 answer days: the report's, and the event log's quarterly counts, by one definition.
    counts = {
        c.kommune_kode: c
        for c in await queries.period_counts(stack.pool, "quarter", start=q1.start, end=q1.end, by_kommune=True)
    }
    by_code = {k.kode: k for k in report.kommuner}
    for kode in ("329", "751"):
        c = counts[kode]
        assert c.median_answer_days is not None and c.p90_answer_days is not None
        assert (by_code[kode].median_days, by_code[kode].p90_days) == (
            round(c.median_answer_days, 1),
            round(c.p90_answer_days, 1),
        )
    assert (by_code["329"].median_days, by_code["329"].p90_days) == (20.0, 30.0)

    # 2021Q2, which the log stops in: its stock figures are the state as the log's last event arrives. That event
    # changes no backlog, so the backlog then is the backlog now, which is what /metrics shows.
    q2 = parse_quarter("2021Q2")
    report = (await build_quarterly_from(figures, q2, position=position)).current
    assert report.coverage.state == "partial" and report.as_of < q2.end
    then = await _backlog_json(stack, just_before(report.as_of))
    now = await _backlog_json(stack)
    assert then["tasks"] == now["tasks"] and then["cases"] == now["cases"]
    metrics = await _metrics(stack)
    in_report = {k.kode: k.waiting_at_end for k in report.kommuner if k.waiting_at_end}
    in_metrics = Counter[str]()
    for (kode, _status), n in metrics["sagsflow_backlog_tasks"].items():
        in_metrics[kode] += int(n)
    assert in_report == _open_tasks(now) == in_metrics == {"329": 1, "751": 1}

    # The overdue among the open tasks, and the active cases: the API's and the metrics' numbers are one reading.
    overdue = Counter[str]()
    for row in now["tasks"]:
        overdue[str(row["kommune_kode"])] += int(str(row["overdue"]))
    assert {k: int(v) for (k,), v in metrics["sagsflow_overdue_tasks"].items()} == overdue == {"329": 1, "751": 0}
    assert {(str(r["kommune_kode"]), str(r["status"])): int(str(r["cases"])) for r in now["cases"]} == {
        key: int(v) for key, v in metrics["sagsflow_open_cases"].items()
    }
    assert metrics["sagsflow_projection_lag_events"][("case_views",)] == 0
