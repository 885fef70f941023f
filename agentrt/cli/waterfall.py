"""The waterfall of one run as a PNG (matplotlib), beside the pure parts.

The rows (:func:`layout`) and the HTML page (:func:`render_html`) live in the
library (:mod:`agentrt.tracing._waterfall`, which ``agentrt serve`` draws its
runs page with); they are re-exported here for the commands. :func:`render_png`
draws with matplotlib, an application dependency the library never imports.

Labels are text from the trace file, drawn as text: for matplotlib with every
``$`` escaped (a ``$...$`` pair would otherwise be parsed as math text, and bad
math text stops the drawing).
"""

from __future__ import annotations

from pathlib import Path

from agentrt.tracing._waterfall import (
    COLOURS,
    MAX_AXIS_S,
    Row,
    Waterfall,
    layout,
    render_figure,
    render_html,
)

__all__ = [
    "COLOURS",
    "MAX_AXIS_S",
    "Row",
    "Waterfall",
    "layout",
    "render_figure",
    "render_html",
    "render_png",
]


def _plain_text(label: str) -> str:
    """``label`` as matplotlib draws it literally: no ``$`` opens math text."""
    return label.replace("$", r"\$")


def render_png(waterfall: Waterfall, path: Path, *, dpi: int = 110) -> Path:
    """Draw the waterfall with matplotlib (Agg) into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    rows = waterfall.rows
    fig_h = max(2.5, 0.8 + 0.22 * len(rows))
    fig, ax = plt.subplots(figsize=(12, fig_h))
    try:
        for i, row in enumerate(rows):
            y = len(rows) - 1 - i
            if row.slice_s is not None:
                outline = Rectangle(
                    (row.start_s, y - 0.45), row.slice_s, 0.9, fill=False,
                    edgecolor=COLOURS["slice"], linestyle="--", linewidth=1.2,
                )  # fmt: skip
                ax.add_patch(outline)
            height = 0.5 if row.kind == "branch" else 0.7
            ax.add_patch(Rectangle(
                (row.start_s, y - height / 2), max(row.end_s - row.start_s, 1e-4), height,
                facecolor=row.colour, edgecolor=COLOURS["cancelled"] if row.error else "none",
                hatch="///" if row.outcome == "cancelled" else None,
            ))  # fmt: skip
        if waterfall.deadline_s is not None:
            ax.axvline(waterfall.deadline_s, color=COLOURS["deadline"], linestyle="--", linewidth=2)
        ax.set_yticks(range(len(rows)))
        labels = [_plain_text("  " * r.depth + r.label) for r in reversed(rows)]
        ax.set_yticklabels(labels, fontsize=7)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_xlim(0, max(waterfall.span_s, waterfall.deadline_s or 0.0) * 1.02)
        ax.set_xlabel("seconds from the run's start")
        ax.set_title(_plain_text(waterfall.title), fontsize=10)
        ax.grid(axis="x", color="#e5e9f0")
        ax.legend(
            handles=[Patch(color=COLOURS[k], label=k.replace("_", " "))
                     for k in ("node", "chat", "finished", "early_stopped", "cancelled")]
            + [Patch(fill=False, edgecolor=COLOURS["slice"], linestyle="--", label="slice")],
            loc="lower right", fontsize=7,
        )  # fmt: skip
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
    return path
