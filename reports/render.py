"""Write the quarterly report: one self-contained HTML file (inline SVG) and one CSV per table."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from reports import charts
from reports.quarterly import QuarterFigures


@dataclass(frozen=True)
class QuarterlyReport:
    current: QuarterFigures
    previous: QuarterFigures
    log_position: int
    event_count: int


def _num(v: float | None) -> str:
    return "–" if v is None else f"{v:g}".replace(".", ",")


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:g} %".replace(".", ",")


def _delta(now: int, before: int) -> str:
    return f"{now - before:+d}"


def render_html(report: QuarterlyReport) -> str:
    f = report.current
    forum_and_groups = [k for k in f.kommuner if k.forum] + f.groups
    svgs = {
        "intake": charts.bar_chart(
            [w for w, _ in f.intake_per_week],
            [n for _, n in f.intake_per_week],
            title=f"Nye ansøgninger pr. uge, {f.quarter}",
            ylabel="ansøgninger",
        ),
        "ages": charts.bar_chart(
            [a for a, _ in f.waiting_age],
            [n for _, n in f.waiting_age],
            title="Ventende opgaver efter alder",
            ylabel="opgaver",
            colour=charts.FORUM_COLOUR,
        ),
        "median": charts.horizontal_bars(
            [k.navn for k in forum_and_groups],
            [k.median_days or 0 for k in forum_and_groups],
            [k.forum for k in forum_and_groups],
            title="Median dage til svar",
            xlabel="dage",
            reference=91,
            reference_label="≈ 3 måneder",
        ),
    }
    env = Environment(loader=PackageLoader("reports", "templates"), autoescape=True, undefined=StrictUndefined)
    template = env.get_template("quarterly.html.j2")
    return template.render(
        f=f,
        p=report.previous,
        log_position=report.log_position,
        event_count=report.event_count,
        charts=svgs,
        num=_num,
        pct=_pct,
        delta=_delta,
    )


def _csv(rows: list[dict[str, object]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def csv_tables(report: QuarterlyReport) -> dict[str, str]:
    f, p = report.current, report.previous
    summary = [
        {"figure": name, f.quarter: getattr(f, name), p.quarter: getattr(p, name)}
        for name in (
            "intake_total",
            "open_at_end",
            "waiting_at_end",
            "waiting_share_pct",
            "answered_total",
            "sla_kept_pct",
            "e2e_median_days",
            "e2e_p90_days",
        )
    ] + [{"figure": f"decisions_{k}", f.quarter: v, p.quarter: p.decisions[k]} for k, v in f.decisions.items()]
    return {
        "summary.csv": _csv([{**r, "log_position": report.log_position} for r in summary]),
        "intake_per_week.csv": _csv([{"week": w, "applications": n} for w, n in f.intake_per_week]),
        "waiting_age.csv": _csv([{"age": a, "tasks": n} for a, n in f.waiting_age]),
        "kommuner.csv": _csv([asdict(k) for k in f.kommuner]),
        "forum_vs_rest.csv": _csv([asdict(k) for k in f.groups]),
    }


def write_report(report: QuarterlyReport, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    html_path = out / f"quarterly-{report.current.quarter}.html"
    html_path.write_text(render_html(report), encoding="utf-8")
    written.append(html_path)
    for name, text in csv_tables(report).items():
        path = out / f"{report.current.quarter}-{name}"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
