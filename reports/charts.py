"""Inline SVG charts, byte-for-byte reproducible (fixed hash salt, no dates in metadata), in Danish number format.

Colours say which group a bar belongs to, never whether it is good or bad: the forum kommuner get a neutral dark
blue (with a legend), the others a light grey-blue. A missing value gets no bar but a written "ingen data", so it
cannot be read as a zero.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display here; must precede the pyplot import
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from reports import dansk

FORUM_COLOUR = "#1f4e79"
OTHER_COLOUR = "#a9b8c6"
BAR_COLOUR = "#4f7aa3"
ACCENT = "#1f4e79"
PARTIAL_HATCH = "////"

plt.rcParams.update(
    {
        "svg.hashsalt": "sagsflow",
        "svg.fonttype": "none",  # text stays text: smaller, searchable, no font-dependent glyph paths
        "font.size": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "hatch.color": "white",
        "hatch.linewidth": 1.2,
    }
)


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": "Sagsflow"})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _axis_number(v: float, _pos: int | None = None) -> str:
    return dansk.number(v, 0 if float(v).is_integer() else 1)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    title: str,
    ylabel: str,
    partial: Sequence[bool] | None = None,
    partial_label: str = "",
    value_text: Callable[[float], str] = _axis_number,
) -> str:
    """Vertical bars; a None value is drawn as "ingen data", a partial one hatched and lighter, with a legend."""
    partial = partial or [False] * len(values)
    fig, ax = plt.subplots(figsize=(9, 3.2))
    present = [v for v in values if v is not None]
    top = max(present, default=0) or 1  # an all-zero chart still has an axis from 0, not from -0.04 to 0.04
    for i, (v, part) in enumerate(zip(values, partial, strict=True)):
        if v is None:
            ax.annotate("ingen\ndata", (i, 0), ha="center", va="bottom", fontsize=7, color="#666")
            continue
        ax.bar(i, v, color=BAR_COLOUR, alpha=0.55 if part else 1.0, hatch=PARTIAL_HATCH if part else None)
        ax.annotate(
            value_text(v), (i, v), ha="center", va="bottom", fontsize=8, xytext=(0, 1), textcoords="offset points"
        )
    ax.set_xlim(-0.6, len(values) - 0.4)
    ax.set_ylim(0, top * 1.18)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(FuncFormatter(_axis_number))
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=7.5)
    ax.set_title(title, loc="left", fontweight="bold")
    ax.set_ylabel(ylabel)
    if any(partial):
        ax.legend(
            handles=[
                Patch(facecolor=BAR_COLOUR, label="hel uge"),
                Patch(facecolor=BAR_COLOUR, alpha=0.55, hatch=PARTIAL_HATCH, label=partial_label),
            ],
            loc="upper left",
            bbox_to_anchor=(0, -0.2),
            ncol=2,
            frameon=False,
            fontsize=8,
        )
    return _svg(fig)


def horizontal_bars(
    labels: Sequence[str],
    values: Sequence[float | None],
    highlight: Sequence[bool],
    *,
    title: str,
    xlabel: str,
    value_text: Callable[[float], str] = _axis_number,
    missing_text: str = "ingen data",
    reference: float | None = None,
    reference_label: str = "",
    xmax: float | None = None,
) -> str:
    """One bar per row, forum kommuner in the highlight colour (with a legend); a None value gets no bar but
    `missing_text`, and `reference` a dashed vertical line explained in the legend."""
    fig, ax = plt.subplots(figsize=(9, 0.38 * len(labels) + 1.5))
    present = [v for v in values if v is not None]
    right = xmax if xmax is not None else max([*present, reference or 0], default=0) * 1.15 or 1
    for i, (v, forum) in enumerate(zip(values, highlight, strict=True)):
        if v is None:
            ax.annotate(
                missing_text,
                (0, i),
                va="center",
                fontsize=8,
                color="#555",
                style="italic",
                xytext=(4, 0),
                textcoords="offset points",
            )
            continue
        ax.barh(i, v, color=FORUM_COLOUR if forum else OTHER_COLOUR)
        # White behind the value so a reference line running through it does not cut the digits.
        ax.annotate(
            value_text(v),
            (v, i),
            va="center",
            fontsize=8,
            xytext=(3, 0),
            textcoords="offset points",
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6},
        )
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlim(0, right)
    ax.xaxis.set_major_formatter(FuncFormatter(_axis_number))
    ax.set_title(title, loc="left", fontweight="bold")
    ax.set_xlabel(xlabel)
    handles: list[Patch | Line2D] = [
        Patch(facecolor=FORUM_COLOUR, label="forumkommune(r)"),
        Patch(facecolor=OTHER_COLOUR, label="øvrige kommuner"),
    ]
    if reference is not None:
        ax.axvline(reference, color="#333", linestyle="--", linewidth=1)
        handles.append(Line2D([0], [0], color="#333", linestyle="--", linewidth=1, label=reference_label))
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(0, -0.1 - 0.6 / (len(labels) + 3)),
        ncol=3,
        frameon=False,
        fontsize=8,
    )
    return _svg(fig)


@dataclass(frozen=True)
class Fan:
    """One panel of a fan chart: the value now, then the median and the 10th–90th percentile at each week's end."""

    title: str
    ylabel: str
    now: float
    median: Sequence[float]
    low: Sequence[float]
    high: Sequence[float]
    value_text: Callable[[float], str] = _axis_number
    actual: float | None = None  # what happened at the last point (a backcast), marked with a cross


def fan_chart(fans: Sequence[Fan], days: Sequence[float], tick_labels: Sequence[str], *, band_label: str) -> str:
    """Side-by-side panels over the same weeks (`days` after the start, the first 0 = now): the median as a line and
    the 80 % interval as a shaded band, so a reader sees both where it is heading and how sure that is."""
    fig, axes = plt.subplots(1, len(fans), figsize=(4.6 * len(fans), 3.3), squeeze=False)
    for ax, fan in zip(axes[0], fans, strict=True):
        median, low, high = [fan.now, *fan.median], [fan.now, *fan.low], [fan.now, *fan.high]
        ax.fill_between(days, low, high, color=BAR_COLOUR, alpha=0.25, linewidth=0)
        ax.plot(days, median, color=ACCENT, linewidth=2)
        ax.plot([days[0]], [fan.now], "o", color=ACCENT)
        ax.annotate(
            fan.value_text(median[-1]),
            (days[-1], median[-1]),
            fontsize=8,
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
        )
        if fan.actual is not None:
            ax.plot([days[-1]], [fan.actual], "x", color="#b5462b", markersize=9, markeredgewidth=2)
        top = max([*high, fan.actual or 0]) or 1
        ax.set_ylim(0, top * 1.15)
        ax.set_xlim(days[0], days[-1] * 1.12 or 1)
        # About five ticks, always the first (now) and the last (the meeting), never two crowding each other.
        step = max(1, len(days) // 5)
        gap = (days[-1] - days[0]) / 10  # a label closer than this to the meeting day's would overlap it
        shown = [i for i in range(0, len(days), step) if i == 0 or days[-1] - days[i] >= gap]
        shown = sorted({*shown, len(days) - 1})
        ax.set_xticks([days[i] for i in shown])
        ax.set_xticklabels([tick_labels[i] for i in shown], fontsize=7.5)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p, f=fan: f.value_text(v)))
        ax.set_title(fan.title, loc="left", fontweight="bold", fontsize=9.5)
        ax.set_ylabel(fan.ylabel)
    handles: list[Patch | Line2D] = [
        Line2D([0], [0], color=ACCENT, linewidth=2, label="median"),
        Patch(facecolor=BAR_COLOUR, alpha=0.25, label=band_label),
    ]
    if any(f.actual is not None for f in fans):
        handles.append(
            Line2D([0], [0], marker="x", color="#b5462b", linestyle="none", markeredgewidth=2, label="faktisk")
        )
    fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.05, -0.08), ncol=3, frameon=False, fontsize=8)
    fig.tight_layout()
    return _svg(fig)
