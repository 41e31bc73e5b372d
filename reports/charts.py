"""Inline SVG charts, byte-for-byte reproducible (fixed hash salt, no dates in metadata)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display here; must precede the pyplot import
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

FORUM_COLOUR = "#c8102e"
OTHER_COLOUR = "#7f8c9a"
ACCENT = "#1f4e79"

plt.rcParams.update(
    {
        "svg.hashsalt": "sagsflow",
        "svg.fonttype": "none",  # text stays text: smaller, searchable, no font-dependent glyph paths
        "font.size": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": "Sagsflow"})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    ylabel: str,
    colour: str = ACCENT,
    every_nth_label: int = 1,
) -> str:
    fig, ax = plt.subplots(figsize=(8, 2.8))
    ax.bar(range(len(values)), values, color=colour)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(
        [lbl if i % every_nth_label == 0 else "" for i, lbl in enumerate(labels)], rotation=45, ha="right"
    )
    ax.set_title(title, loc="left", fontweight="bold")
    ax.set_ylabel(ylabel)
    for i, v in enumerate(values):
        if v:
            ax.annotate(f"{v:g}", (i, v), ha="center", va="bottom", fontsize=8)
    return _svg(fig)


def horizontal_bars(
    labels: Sequence[str],
    values: Sequence[float],
    highlight: Sequence[bool],
    *,
    title: str,
    xlabel: str,
    reference: float | None = None,
    reference_label: str = "",
) -> str:
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(labels) + 1.2))
    colours = [FORUM_COLOUR if h else OTHER_COLOUR for h in highlight]
    ax.barh(range(len(values)), values, color=colours)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    ax.set_title(title, loc="left", fontweight="bold")
    ax.set_xlabel(xlabel)
    for i, v in enumerate(values):
        ax.annotate(f" {v:g}", (v, i), va="center", fontsize=8)
    if reference is not None:
        ax.axvline(reference, color="black", linestyle="--", linewidth=1)
        ax.annotate(reference_label, (reference, -0.6), fontsize=8, ha="left")
    return _svg(fig)
