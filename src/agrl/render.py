"""What every report draws with: one Markdown table writer and one grouped bar plot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table; cells are rendered with `str`."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"markdown_table: a row has {len(row)} cells for {len(header)} columns")
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines) + "\n"


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (no display on servers and CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_plot(
    path: Path,
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    intervals: Mapping[str, Sequence[Sequence[float] | None]] | None = None,
    ylabel: str = "",
    title: str = "",
    ylim: tuple[float, float] | None = None,
    figsize: tuple[float, float] = (9, 4),
) -> None:
    """Grouped bars: one group per x label, one bar per series; whiskers from [low, high] intervals."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=figsize)
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        bounds = (intervals or {}).get(name) or [None] * len(values)
        errors = [
            [v - b[0] if b else 0.0 for v, b in zip(values, bounds)],
            [b[1] - v if b else 0.0 for v, b in zip(values, bounds)],
        ]
        ax.bar([j + i * width for j in range(len(groups))], values, width, yerr=errors, capsize=3, label=name)
    ax.set_xticks(
        [j + width * (len(series) - 1) / 2 for j in range(len(groups))],
        list(groups),
        rotation=30 if max((len(g) for g in groups), default=0) > 12 else 0,
        ha="right" if max((len(g) for g in groups), default=0) > 12 else "center",
        fontsize=8,
    )
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
