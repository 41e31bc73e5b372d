"""Write the quarterly report: one self-contained HTML file (inline SVG) and one CSV per table.

Everything a reader sees is Danish and formatted by reports/dansk.py: decimal comma, thousands point, "12,5 %",
Danish dates, "–" where there is nothing to count. The CSV files are for Danish Excel: `;` between fields, UTF-8
with a byte-order mark, CRLF line ends, Danish headers, decimal comma, "ja"/"nej", and "–" for "ingen data".
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from domain.calendar import local_date
from domain.forecast import Band, Figures
from domain.kommuner import FORUM_KOMMUNER, all_kommuner
from eventlog.figures import Share
from reports import charts, dansk
from reports.dansk import NO_DATA
from reports.outlook import STATE_FIGURES, Outlook
from reports.quarterly import KommuneFigures, LogSpan, QuarterFigures

# The dashed line in the answer-time chart: about the kommune's 3 months (the real deadline is counted by the
# calendar and lands 89-92 days after the request, later with an extension).
THREE_MONTHS_DAYS = 91


@dataclass(frozen=True)
class QuarterlyReport:
    current: QuarterFigures
    previous: QuarterFigures
    log_position: int
    event_count: int
    span: LogSpan
    outlook: Outlook | None = None  # the "next meeting" section (None: built without it)


def _plural(n: int, one: str, many: str) -> str:
    return f"{dansk.number(n)} {one if n == 1 else many}"


def last_day(deadline: datetime) -> date:
    """The day a deadline instant closes: a deadline is open until the start of the next day (domain/calendar.py)."""
    return local_date(deadline - timedelta(microseconds=1))


def period_text(f: QuarterFigures) -> str:
    """The days the figures cover: "1. januar – 31. marts 2021", or the covered part of a partial quarter."""
    cov = f.coverage
    first = local_date(cov.start)
    if cov.ends_early:
        return dansk.period(first, cov.end)
    return dansk.period(first, last_day(cov.end))


def as_of_text(f: QuarterFigures) -> str:
    """When the stock figures (open cases, waiting tasks) are taken, as a phrase: "ved kvartalets udgang"."""
    if f.coverage.ends_early:
        return f"ved loggens sidste hændelse ({dansk.moment(f.as_of)})"
    return "ved kvartalets udgang"


def coverage_note(f: QuarterFigures, span: LogSpan) -> str | None:
    """Why a quarter's figures are incomplete or missing, in words; None for a fully covered quarter."""
    cov = f.coverage
    if cov.state == "none":
        if span.first_at is None or span.last_at is None:
            return f"Hændelsesloggen er tom ved denne position: der er ingen data for {f.quarter}."
        return (
            f"Hændelsesloggen indeholder ingen hændelser fra {f.quarter}: der er ingen data for kvartalet. "
            f"Loggen dækker {dansk.moment(span.first_at)} – {dansk.moment(span.last_at)}."
        )
    if cov.state == "full":
        return None
    parts = []
    if cov.starts_late:
        parts.append(f"Hændelsesloggen begynder først {dansk.day(local_date(cov.start))}, inde i kvartalet.")
    if cov.ends_early:
        parts.append(
            f"Kvartalet var ikke slut ved denne position: loggens sidste hændelse er fra {dansk.moment(cov.end)}."
        )
    parts.append(f"{f.quarter} er derfor kun delvist dækket; alle tal gælder {period_text(f)}.")
    return " ".join(parts)


def _share_sentence_deadline(f: QuarterFigures) -> str:
    share = f.deadline
    assert share is not None
    if share.due:
        return (
            f"Af de {_plural(share.due, 'opgave', 'opgaver')}, hvis frist udløb i perioden, besvarede kommunerne "
            f"{dansk.number(share.kept)} ({dansk.percent(share.pct)}) inden for fristen."
        )
    later = f" De første frister udløber {dansk.day(last_day(f.next_deadline_at))}." if f.next_deadline_at else ""
    return (
        "Ingen kommuneopgaver havde frist i perioden, så andelen besvaret inden for fristen kan ikke opgøres endnu."
        + later
    )


def _share_sentence_six_months(f: QuarterFigures) -> str:
    share, forum = f.six_months, f.forum_group
    assert share is not None and forum is not None
    if share.due:
        forum_part = (
            f"; for de fem forumkommuner var andelen {dansk.percent(forum.six_months.pct)}"
            if forum.six_months.due
            else "; ingen af forumkommunernes sager rundede 6 måneder i perioden"
        )
        return (
            f"Af de {_plural(share.due, 'sag', 'sager')}, der rundede 6 måneder efter ansøgningen i perioden, var "
            f"{dansk.number(share.kept)} ({dansk.percent(share.pct)}) afgjort inden da{forum_part}."
        )
    later = f" De første gør det {dansk.day(last_day(f.next_six_month_point))}." if f.next_six_month_point else ""
    return "Ingen sager rundede 6 måneder efter ansøgningen i perioden, så den andel kan ikke opgøres endnu." + later


def summary_text(report: QuarterlyReport) -> str:
    """The plain-Danish paragraph at the top of the report, built only from the report's own figures."""
    f, p = report.current, report.previous
    if not f.has_data:
        note = coverage_note(f, report.span)
        assert note is not None
        return note
    assert f.intake_total is not None and f.open_at_end is not None and f.waiting_at_end is not None
    forum, rest = f.forum_group, f.rest_group
    assert forum is not None and rest is not None
    sentences = []
    change = compare(f, p, lambda q: q.intake_total)
    change_part = f" ({change} i forhold til {p.quarter})" if change[:1] in ("+", "−", "0") else ""
    if f.coverage.state == "full":
        prefix = f"I {f.quarter}"
    else:
        prefix = f"I perioden {period_text(f)} (den del af {f.quarter}, loggen dækker)"
    sentences.append(
        f"{prefix} modtog Seniorpension {_plural(f.intake_total, 'ansøgning', 'ansøgninger')}{change_part}."
    )
    stock = as_of_text(f)
    sentences.append(
        f"{stock[0].upper()}{stock[1:]} var {_plural(f.open_at_end, 'sag', 'sager')} åbne, og "
        f"{dansk.number(f.waiting_at_end)} af dem ({dansk.percent(f.waiting_share_pct)}) ventede på oplysninger "
        "fra en kommune."
        if f.open_at_end
        else f"{stock[0].upper()}{stock[1:]} var ingen sager åbne."
    )
    sentences.append(_share_sentence_deadline(f))
    n_decided = sum(f.decisions[k] for k in ("granted", "rejected", "rejected_formal"))
    if n_decided:
        sentences.append(
            f"Seniorpension traf {_plural(n_decided, 'afgørelse', 'afgørelser')}: "
            f"{dansk.number(f.decisions['granted'])} tilkendt, {dansk.number(f.decisions['rejected'])} afslag og "
            f"{dansk.number(f.decisions['rejected_formal'])} formelle afslag. Af de afgjorte sager var halvdelen "
            f"afgjort inden for {dansk.days(f.e2e_median_days)} dage efter ansøgningen (median) og 9 ud af 10 inden "
            f"for {dansk.days(f.e2e_p90_days)} dage (p90)."
        )
    else:
        sentences.append("Der blev ikke truffet nogen afgørelser i perioden.")
    sentences.append(_share_sentence_six_months(f))
    if forum.answered and rest.answered:
        sentences.append(
            f"De fem forumkommuner besvarede {_plural(forum.answered, 'opgave', 'opgaver')} med en median-svartid "
            f"på {dansk.days(forum.median_days)} dage mod {dansk.days(rest.median_days)} dage i de øvrige kommuner."
        )
    elif forum.received:
        sentences.append(
            f"De fem forumkommuner fik {_plural(forum.received, 'opgave', 'opgaver')} i perioden; "
            + (
                "ingen af dem var besvaret endnu."
                if not forum.answered
                else f"{dansk.number(forum.answered)} blev besvaret."
            )
        )
    return " ".join(sentences)


def compare(f: QuarterFigures, p: QuarterFigures, value: Callable[[QuarterFigures], int | None]) -> str:
    """A change against the previous quarter, only when both quarters are fully covered (a change against a quarter
    the log covers partly or not at all is not a real change); otherwise why there is none."""
    if not p.has_data:
        return f"ingen data for {p.quarter}"
    if f.coverage.state != "full" or p.coverage.state != "full":
        which = f.quarter if f.coverage.state != "full" else p.quarter
        return f"ingen sammenligning: {which} er kun delvist dækket"
    now, before = value(f), value(p)
    if now is None or before is None:
        return NO_DATA
    return dansk.signed(now - before)


def intake_change(f: QuarterFigures, p: QuarterFigures) -> str:
    change = compare(f, p, lambda q: q.intake_total)
    return f"{change} mod {p.quarter}" if change[:1] in ("+", "−", "0") else change


def _charts(report: QuarterlyReport) -> dict[str, str]:
    f = report.current
    if not f.has_data:
        return {}
    # A cut week is labelled with the days of it that the quarter holds.
    week_labels = [
        f"uge {w.week}\n{dansk.numeric_range(w.first_in_quarter, w.last_in_quarter) if w.cut else ''}" for w in f.weeks
    ]
    forum_and_groups = [k for k in f.kommuner if k.forum] + f.groups
    svgs = {
        "intake": charts.bar_chart(
            week_labels,
            [w.intake for w in f.weeks],
            partial=[w.partial for w in f.weeks],
            partial_label="delvis uge: kun en del af ugen er med (kvartalsskifte eller loggens start/slut)",
            title=f"Nye ansøgninger pr. uge, {f.quarter}",
            ylabel="ansøgninger",
        ),
        "ages": charts.bar_chart(
            [a for a, _ in f.waiting_age],
            [n for _, n in f.waiting_age],
            title=f"Ventende opgaver efter alder, {as_of_text(f)}",
            ylabel="opgaver",
        ),
        "median": charts.horizontal_bars(
            [k.navn for k in forum_and_groups],
            [k.median_days for k in forum_and_groups],
            [k.forum for k in forum_and_groups],
            title="Median dage fra anmodning til kommunens svar",
            xlabel="dage",
            value_text=lambda v: dansk.number(v, 1),
            missing_text="ingen besvarede opgaver i perioden",
            reference=THREE_MONTHS_DAYS,
            reference_label="3 måneder (≈ 91 dage): kommunens frist",
        ),
    }
    if f.six_months is not None and f.six_months.due:
        svgs["six_months"] = charts.horizontal_bars(
            [k.navn for k in forum_and_groups],
            [k.six_months.pct for k in forum_and_groups],
            [k.forum for k in forum_and_groups],
            title="Andel af sager afgjort inden for 6 måneder efter ansøgningen",
            xlabel="procent af sagerne, der rundede 6 måneder i perioden",
            value_text=lambda v: dansk.percent(v),
            missing_text="ingen sager rundede 6 måneder i perioden",
            xmax=110,
        )
    return svgs


FIGURE_NAMES = {
    "open_cases": "Åbne sager",
    "waiting": "Heraf venter på kommunen",
    "waiting_share": "Andel af åbne sager, der venter på kommunen",
    "overdue": "Opgaver over frist",
    "decisions": "Afgørelser frem til mødet",
}


def _value(name: str, v: float) -> str:
    return dansk.percent(100 * v, 0) if name == "waiting_share" else dansk.number(v)


def _band(name: str, b: Band) -> str:
    if name == "waiting_share":  # "83–86 %", not "83 %–86 %"
        return f"{dansk.number(100 * b.p10)}–{dansk.percent(100 * b.p90, 0)}"
    return f"{_value(name, b.p10)}–{_value(name, b.p90)}"


def _outlook(report: QuarterlyReport) -> dict[str, Any] | None:
    """What the "next meeting" section shows, formatted; None when the report was built without it."""
    o = report.outlook
    if o is None:
        return None
    names = {k.kode: k.navn for k in all_kommuner()}
    out: dict[str, Any] = {"o": o, "trend": o.trend, "previous_meeting": None}
    if o.previous_meeting is not None:
        out["previous_meeting"] = dansk.day(local_date(o.previous_meeting))
    if o.forecast is None or o.now is None:
        return out
    fc, now = o.forecast, o.now
    out["start"] = (
        f"forummets møde {dansk.day(local_date(fc.as_of))}, hvor rapporten fremlægges"
        if o.at_meeting
        else f"hændelsesloggens sidste hændelse, {dansk.moment(fc.as_of)}"
    )
    out["start_day"] = dansk.day(local_date(fc.as_of))
    out["meeting"] = dansk.day(local_date(fc.to))
    out["totals"] = [
        {
            "name": FIGURE_NAMES[name],
            "now": _value(name, now.total[name]) if name in now.total else "",
            "median": _value(name, getattr(fc.total, name).median),
            "band": _band(name, getattr(fc.total, name)),
        }
        for name in (*STATE_FIGURES, "decisions")
    ]

    def place(kode: str, f: Figures) -> dict[str, str]:
        mine = now.kommuner.get(kode, {})
        row = {"kode": kode, "navn": names.get(kode, kode)}
        for name in ("open_cases", "waiting", "overdue"):
            row[f"{name}_now"] = dansk.number(mine.get(name, 0))
            row[f"{name}_median"] = _value(name, getattr(f, name).median)
            row[f"{name}_band"] = _band(name, getattr(f, name))
        return row

    out["forum"] = [place(kode, fc.kommuner[kode]) for kode in FORUM_KOMMUNER]
    days = [0.0, *((at - fc.as_of) / timedelta(days=1) for at, _ in fc.path)]
    # Each point is the state at the start of its day (the last one the meeting day itself, as the table says).
    ticks = [dansk.short_day(local_date(at)) for at in (fc.as_of, *(at for at, _ in fc.path))]
    band_label = "80 %-interval: 8 af 10 simulerede forløb"
    out["chart"] = charts.fan_chart(
        [
            charts.Fan(
                "Andel af åbne sager, der venter på kommunen",
                "procent",
                100 * now.total["waiting_share"],
                [100 * f.waiting_share.median for _, f in fc.path],
                [100 * f.waiting_share.p10 for _, f in fc.path],
                [100 * f.waiting_share.p90 for _, f in fc.path],
                value_text=lambda v: dansk.percent(v, 0),
            ),
            charts.Fan(
                "Åbne sager",
                "sager",
                now.total["open_cases"],
                [f.open_cases.median for _, f in fc.path],
                [f.open_cases.p10 for _, f in fc.path],
                [f.open_cases.p90 for _, f in fc.path],
            ),
        ],
        days,
        ticks,
        band_label=band_label,
    )
    back = o.backcast
    if back is not None:
        bf = back.forecast
        rows = []
        for name in STATE_FIGURES:
            b = getattr(bf.total, name)
            rows.append(
                {
                    "name": FIGURE_NAMES[name],
                    "median": _value(name, b.median),
                    "band": _band(name, b),
                    "actual": _value(name, back.actual.total[name]),
                    "inside": back.inside(name),
                }
            )
        for kode in FORUM_KOMMUNER:
            b = bf.kommuner[kode].waiting
            rows.append(
                {
                    "name": f"Venter på kommunen: {names.get(kode, kode)}",
                    "median": _value("waiting", b.median),
                    "band": _band("waiting", b),
                    "actual": dansk.number(back.actual.kommuner.get(kode, {}).get("waiting", 0)),
                    "inside": back.inside("waiting", kode),
                }
            )
        out["back"] = {
            "made": dansk.day(local_date(bf.as_of)),
            "due": dansk.day(local_date(bf.to)),
            "rows": rows,
            "inside": sum(1 for r in rows if r["inside"]),
        }
    return out


def render_html(report: QuarterlyReport) -> str:
    f, p = report.current, report.previous
    env = Environment(loader=PackageLoader("reports", "templates"), autoescape=True, undefined=StrictUndefined)
    template = env.get_template("quarterly.html.j2")
    return template.render(
        f=f,
        p=p,
        report=report,
        forum_kommuner=[k for k in all_kommuner() if k.kode in FORUM_KOMMUNER],
        summary=summary_text(report),
        coverage_note=coverage_note(f, report.span),
        as_of=as_of_text(f),
        period=period_text(f) if f.has_data else None,
        intake_change=intake_change(f, p),
        local_day=lambda t: dansk.day(last_day(t)),
        charts=_charts(report),
        d=dansk,
        three_months=THREE_MONTHS_DAYS,
        csv_files=CSV_FILES,
        outlook=_outlook(report),
    )


# --- CSV ---------------------------------------------------------------------------------------------------------

CSV_FILES: dict[str, str] = {
    "summary.csv": "nøgletallene for kvartalet og kvartalet før",
    "intake_per_week.csv": "nye ansøgninger pr. uge, med markering af delvise uger",
    "waiting_age.csv": "ventende opgaver efter alder",
    "kommuner.csv": "alle 98 kommuner",
    "forum_vs_rest.csv": "de fem forumkommuner samlet og de øvrige 93 samlet",
}


def _cell(v: object) -> str:
    if v is None:
        return NO_DATA
    if isinstance(v, bool):
        return dansk.yes_no(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return dansk.number(v, 1, thousands=False)
    return str(v)


def _csv(header: list[str], rows: list[list[object]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return buf.getvalue().encode("utf-8-sig")


KOMMUNE_HEADER = [
    "Kode",
    "Kommune",
    "Forumkommune",
    "Opgaver modtaget",
    "Opgaver besvaret",
    "Svartid median (dage)",
    "Svartid p90 (dage)",
    "Opgaver med frist i perioden",
    "Heraf besvaret inden for fristen",
    "Besvaret inden for fristen (%)",
    "Rykkere",
    "Gået over frist",
    "Ventende opgaver ved periodens udgang",
    "Sager der rundede 6 måneder",
    "Heraf afgjort inden for 6 måneder",
    "Afgjort inden for 6 måneder (%)",
]


def _kommune_row(k: KommuneFigures) -> list[object]:
    return [
        k.kode if k.kode.isdigit() else "",
        k.navn,
        k.forum,
        k.received,
        k.answered,
        k.median_days,
        k.p90_days,
        k.deadline.due,
        k.deadline.kept,
        k.deadline.pct,
        k.reminders,
        k.overdue,
        k.waiting_at_end,
        k.six_months.due,
        k.six_months.kept,
        k.six_months.pct,
    ]


def _summary_rows(f: QuarterFigures) -> list[tuple[str, object]]:
    def share(s: Share | None) -> tuple[int | None, int | None, float | None]:
        return (None, None, None) if s is None else (s.due, s.kept, s.pct)

    deadline_due, deadline_kept, deadline_pct = share(f.deadline)
    six_due, six_kept, six_pct = share(f.six_months)
    forum = f.forum_group
    decisions = f.decisions if f.has_data else {}
    return [
        ("Dækket af hændelsesloggen", {"full": "helt", "partial": "delvist", "none": "nej"}[f.coverage.state]),
        ("Perioden tallene gælder", period_text(f) if f.has_data else None),
        ("Nye ansøgninger", f.intake_total),
        ("Åbne sager ved periodens udgang", f.open_at_end),
        ("Heraf venter på kommunen", f.waiting_at_end),
        ("Andel af åbne sager der venter på kommunen (%)", f.waiting_share_pct),
        ("Opgaver besvaret af kommunerne", f.answered_total),
        ("Opgaver med frist i perioden", deadline_due),
        ("Heraf besvaret inden for fristen", deadline_kept),
        ("Besvaret inden for fristen (%)", deadline_pct),
        ("Sager der rundede 6 måneder i perioden", six_due),
        ("Heraf afgjort inden for 6 måneder", six_kept),
        ("Afgjort inden for 6 måneder (%)", six_pct),
        ("Afgjort inden for 6 måneder, forumkommunerne (%)", forum.six_months.pct if forum else None),
        ("Dage fra ansøgning til afgørelse, median", f.e2e_median_days),
        ("Dage fra ansøgning til afgørelse, p90", f.e2e_p90_days),
        ("Afgørelser: tilkendt", decisions.get("granted")),
        ("Afgørelser: afslag", decisions.get("rejected")),
        ("Afgørelser: formelt afslag", decisions.get("rejected_formal")),
        ("Ansøgninger tilbagekaldt", decisions.get("withdrawn")),
    ]


def csv_tables(report: QuarterlyReport) -> dict[str, bytes]:
    f, p = report.current, report.previous
    summary = [
        [name, now, before, report.log_position]
        for (name, now), (_, before) in zip(_summary_rows(f), _summary_rows(p), strict=True)
    ]
    return {
        "summary.csv": _csv(["Nøgletal", f.quarter, p.quarter, "Hændelseslog-position"], summary),
        "intake_per_week.csv": _csv(
            [
                "Uge",
                "Mandag",
                "Søndag",
                "Dage i kvartalet",
                "Hel uge i kvartalet",
                "Dækket af loggen",
                "Nye ansøgninger",
            ],
            [
                [
                    f"{w.year}-U{w.week:02d}",
                    w.first_day.isoformat(),
                    w.last_day.isoformat(),
                    w.days_in_quarter,
                    not w.cut,
                    {"full": "helt", "partial": "delvist", "none": "nej"}[w.coverage],
                    w.intake,
                ]
                for w in f.weeks
            ],
        ),
        "waiting_age.csv": _csv(
            ["Alder (dage siden anmodning)", "Ventende opgaver"], [[a, n] for a, n in f.waiting_age]
        ),
        "kommuner.csv": _csv(KOMMUNE_HEADER, [_kommune_row(k) for k in f.kommuner]),
        "forum_vs_rest.csv": _csv(KOMMUNE_HEADER, [_kommune_row(k) for k in f.groups]),
    }


def write_report(report: QuarterlyReport, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    html_path = out / f"quarterly-{report.current.quarter}.html"
    html_path.write_text(render_html(report), encoding="utf-8")
    written.append(html_path)
    for name, data in csv_tables(report).items():
        path = out / f"{report.current.quarter}-{name}"
        path.write_bytes(data)
        written.append(path)
    return written
