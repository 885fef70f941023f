"""The waterfall of one run: nodes, calls and branches on one time axis (pure).

:func:`layout` turns a :class:`~agentrt.tracing._run.RunTrace` into rows (no
drawing); :func:`render_figure` draws them as inline SVG with its legend, and
:func:`render_html` as a self-contained HTML page (no scripts or external
files): what ``agentrt trace view`` writes and ``agentrt serve``'s runs page
shows (the PNG, drawn with matplotlib, is the command's: ``agentrt.cli.waterfall``).
Each call row shows its slice as an outline behind the bar of what it used;
branches are coloured by how they ended (finished, early-stopped, cancelled —
cancelled ones hatched); the run's deadline is a vertical line.

Labels are text from a trace, drawn as text: every one is HTML-escaped. Slices
and deadlines outside ``(0, MAX_AXIS_S]`` are not drawn: a hostile or broken
figure must not stretch the axis to infinity.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from agentrt.tracing._attributes import AGENTRT, GEN_AI
from agentrt.tracing._run import RunTrace, SpanRecord

__all__ = [
    "COLOURS",
    "MAX_AXIS_S",
    "PAGE_STYLE",
    "Row",
    "Waterfall",
    "layout",
    "render_figure",
    "render_html",
]

MAX_AXIS_S = 1e6
"""Slices and deadlines past this many seconds (11 days) are not drawn."""

COLOURS = {
    "workflow": "#4c566a",
    "node": "#5e81ac",
    "chat": "#2e8b57",
    "tool": "#b48ead",
    "finished": "#88c0d0",
    "early_stopped": "#ebcb8b",
    "cancelled": "#bf616a",
    "slice": "#2e8b57",
    "other": "#a3a3a3",
    "deadline": "#d08770",
}


@dataclass(frozen=True)
class Row:
    """One bar: seconds from the run's start, what it is, and its label."""

    label: str
    kind: str  # workflow | node | chat | tool | branch | other
    depth: int
    start_s: float
    end_s: float
    outcome: str | None = None  # branches: finished | early_stopped | cancelled
    slice_s: float | None = None  # calls: the slice it was given
    error: str | None = None
    detail: str = ""

    @property
    def colour(self) -> str:
        if self.kind == "branch":
            return COLOURS.get(self.outcome or "finished", COLOURS["finished"])
        return COLOURS.get(self.kind, COLOURS["other"])


@dataclass(frozen=True)
class Waterfall:
    """The rows of one run and its time axis."""

    title: str
    rows: tuple[Row, ...]
    span_s: float
    deadline_s: float | None


def _kind(span: SpanRecord) -> str:
    if span.is_workflow:
        return "workflow"
    if span.is_node:
        return "node"
    if span.is_chat:
        return "chat"
    if span.is_tool:
        return "tool"
    if span.is_branch:
        return "branch"
    return "other"


def _detail(span: SpanRecord, kind: str) -> str:
    if kind == "chat":
        parts = [
            f"{span.get(AGENTRT.STRATEGY, '?')} n={span.get(AGENTRT.N, '?')} "
            f"on {span.get(AGENTRT.GROUP, '?')}",
        ]
        slice_s = span.number(AGENTRT.SLICE_S)
        if slice_s is not None:
            parts.append(f"slice {slice_s:.2f}s")
        parts.append(f"used {span.duration_s:.2f}s")
        predicted = span.number(AGENTRT.PREDICTED_LATENCY_S)
        if predicted is not None:
            parts.append(f"predicted {predicted:.2f}s")
        tokens = span.number(GEN_AI.USAGE_OUTPUT_TOKENS)
        if tokens is not None:
            parts.append(f"{tokens:.0f} tokens")
        if span.get(AGENTRT.DEGRADED):
            parts.append("degraded")
        return ", ".join(parts)
    if kind == "branch":
        return (
            f"{span.get(AGENTRT.BRANCH_OUTCOME)}, {span.get(AGENTRT.BRANCH_TOKENS, 0)} tokens"
            + (
                f", {span.get(AGENTRT.BRANCH_FINISH_REASON)}"
                if span.get(AGENTRT.BRANCH_FINISH_REASON)
                else ""
            )
        )
    return f"{span.duration_s:.3f}s"


def _drawable(seconds: float | None) -> float | None:
    return seconds if seconds is not None and 0 <= seconds <= MAX_AXIS_S else None


def layout(run: RunTrace) -> Waterfall:
    """The rows of ``run``, depth-first, times in seconds from its first span."""
    origin = run.start_ns
    rows = []
    for depth, span in run.walk():
        kind = _kind(span)
        label = span.name
        if kind == "branch":
            label = f"{span.name} ({span.get(AGENTRT.BRANCH_OUTCOME)})"
        rows.append(
            Row(
                label=label,
                kind=kind,
                depth=depth,
                start_s=(span.start_ns - origin) / 1e9,
                end_s=(span.end_ns - origin) / 1e9,
                outcome=str(span.get(AGENTRT.BRANCH_OUTCOME)) if kind == "branch" else None,
                slice_s=_drawable(span.number(AGENTRT.SLICE_S)) if kind == "chat" else None,
                error=str(span.get("error.type")) if span.get("error.type") else None,
                detail=_detail(span, kind),
            )
        )
    root = run.workflow
    deadline = _drawable(root.number(AGENTRT.DEADLINE_S)) if root is not None else None
    end = max([r.end_s for r in rows] + [r.start_s + (r.slice_s or 0.0) for r in rows] + [0.001])
    title = f"{run.graph or 'trace'} — run {run.run_id[:16]}"
    return Waterfall(title, tuple(rows), end, deadline)


# -- HTML ---------------------------------------------------------------------------

_ROW_H = 18
_LABEL_W = 300
_PLOT_W = 860
_TOP = 40


def _ticks(span_s: float) -> list[float]:
    for step in (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300):
        if span_s / step <= 12:
            return [i * step for i in range(int(span_s / step) + 1)]
    return [0.0, span_s]


PAGE_STYLE = (
    "body{font:13px system-ui,sans-serif;margin:16px;color:#2e3440;background:#fff}"
    "h1{font-size:16px;margin:0 0 8px}.legend{margin:6px 0 10px}"
    ".key{margin-right:14px}.key i{display:inline-block;width:12px;height:12px;"
    "margin-right:4px;vertical-align:-2px}"
    "svg text{font:11px ui-monospace,monospace;fill:#2e3440}"
    ".grid{stroke:#e5e9f0}.tick{fill:#4c566a;text-anchor:middle}"
    ".slice{fill:none;stroke:#2e8b57;stroke-dasharray:4 2;stroke-width:1.5}"
    ".bar.error{stroke:#bf616a;stroke-width:1.5}"
    ".deadline{stroke:#d08770;stroke-width:2;stroke-dasharray:6 3}"
    ".deadline-label{fill:#d08770}"
)
"""The CSS the figure is drawn with (a page that embeds :func:`render_figure` includes it)."""


def render_figure(waterfall: Waterfall) -> str:
    """The waterfall as an HTML fragment: its legend and the inline SVG (styled
    by :data:`PAGE_STYLE`)."""
    axis_s = max(waterfall.span_s, waterfall.deadline_s or 0.0) * 1.02
    scale = _PLOT_W / axis_s
    height = _TOP + _ROW_H * len(waterfall.rows) + 30
    width = _LABEL_W + _PLOT_W + 90
    out: list[str] = []
    add = out.append
    add(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="waterfall">')  # fmt: skip
    add(
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#bf616a"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#ffffff" stroke-width="2"/>'
        "</pattern></defs>"
    )
    for tick in _ticks(axis_s):
        x = _LABEL_W + tick * scale
        add(f'<line x1="{x:.1f}" y1="{_TOP - 8}" x2="{x:.1f}" y2="{height - 24}" class="grid"/>')
        add(f'<text x="{x:.1f}" y="{_TOP - 12}" class="tick">{tick:g}s</text>')
    for i, row in enumerate(waterfall.rows):
        y = _TOP + i * _ROW_H
        label = html.escape(row.label)
        add(f'<text x="{6 + 12 * row.depth}" y="{y + 13}" class="label {row.kind}">{label}</text>')
        if row.slice_s is not None:
            add(f'<rect x="{_LABEL_W + row.start_s * scale:.1f}" y="{y + 1}" '
                f'width="{max(1.0, row.slice_s * scale):.1f}" height="{_ROW_H - 2}" class="slice">'
                f"<title>slice {row.slice_s:.3f}s</title></rect>")  # fmt: skip
        fill = "url(#hatch)" if row.outcome == "cancelled" else row.colour
        bar_h = _ROW_H - 8 if row.kind == "branch" else _ROW_H - 6
        add(f'<rect x="{_LABEL_W + row.start_s * scale:.1f}" y="{y + (_ROW_H - bar_h) / 2:.1f}" '
            f'width="{max(1.0, (row.end_s - row.start_s) * scale):.1f}" height="{bar_h}" '
            f'fill="{fill}" class="bar {row.kind}{" error" if row.error else ""}">'
            f"<title>{label}: {html.escape(row.detail)}"
            f"{' — ' + html.escape(row.error) if row.error else ''}</title></rect>")  # fmt: skip
    if waterfall.deadline_s is not None:
        x = _LABEL_W + waterfall.deadline_s * scale
        add(
            f'<line x1="{x:.1f}" y1="{_TOP - 8}" x2="{x:.1f}" y2="{height - 24}" class="deadline"/>'
        )
        add(f'<text x="{x + 3:.1f}" y="{height - 10}" class="deadline-label">'
            f"deadline {waterfall.deadline_s:g}s</text>")  # fmt: skip
    add("</svg>")
    legend = "".join(
        f'<span class="key"><i style="background:{COLOURS[k]}"></i>{k.replace("_", " ")}</span>'
        for k in ("node", "chat", "tool", "finished", "early_stopped", "cancelled")
    )
    return (
        f'<div class="legend">{legend}<span class="key">dashed outline: a call\'s slice'
        f"</span></div>{''.join(out)}"
    )


def render_html(waterfall: Waterfall) -> str:
    """A self-contained HTML page with the waterfall as inline SVG."""
    title = html.escape(waterfall.title)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{PAGE_STYLE}</style></head><body>"
        f"<h1>{title}</h1>{render_figure(waterfall)}</body></html>\n"
    )
