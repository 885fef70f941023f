"""The runs page: a worker's recent runs, and each one's waterfall, as HTML.

``GET /ui`` is a table of the latest runs this worker ran, newest first (as many
as it keeps traces of): run id, graph, status, degraded and why, deadline,
elapsed time, and a link to ``GET /ui/runs/{run_id}``, the run's waterfall
(:func:`~agentrt.tracing._waterfall.layout`, the renderer of ``agentrt trace
view``), drawn from the spans the worker keeps in memory
(:class:`~agentrt.tracing.RecentRuns`, filled while :class:`RunService` runs the
graph). A run this worker does not know, or whose spans it no longer keeps, is
a 404 page that says which. The pages are pure functions of the records: plain
HTML with inline SVG and CSS, no scripts, nothing fetched, every text escaped
(graph, node and run names are the client's and the graph author's).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from agentrt.serve._threads import RunRecord, RunRegistry
from agentrt.tracing import RecentRuns, RecordedRun
from agentrt.tracing._waterfall import PAGE_STYLE, layout, render_figure

__all__ = [
    "UI_PATH",
    "RunRow",
    "missing_page",
    "missing_reason",
    "row_of",
    "run_page",
    "runs_page",
    "ui_routes",
]

UI_PATH = "/ui"
"""Where the runs page is; a run's waterfall is at ``/ui/runs/{run_id}``."""
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}
"""The pages run no script and fetch nothing; the policy says so to the browser."""
_STYLE = (
    "table{border-collapse:collapse;margin-top:8px}"
    "th,td{padding:3px 10px;border-bottom:1px solid #e5e9f0;text-align:left;"
    "vertical-align:top}th{background:#eceff4}"
    ".num{text-align:right;font-variant-numeric:tabular-nums}"
    ".degraded{color:#bf616a;font-weight:600}.ok{color:#2e8b57}"
    ".reason{max-width:420px;overflow-wrap:anywhere}.note{color:#4c566a}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:8px 0}"
    "dt{color:#4c566a}dd{margin:0;overflow-wrap:anywhere}nav{margin-bottom:8px}"
)


@dataclass(frozen=True)
class RunRow:
    """One run as the pages show it (``degraded`` is ``None`` while it runs)."""

    run_id: str
    graph: str
    thread_id: str
    stateless: bool
    created_at: str
    status: str
    degraded: bool | None
    reason: str | None
    deadline_s: float
    deadline_source: str
    elapsed_s: float | None
    kept: bool
    """Whether the worker still keeps the run's spans (its waterfall can be drawn)."""


def row_of(record: RunRecord, *, kept: bool) -> RunRow:
    """The row of ``record``, a run of this worker's registry."""
    outcome = record.outcome or {}
    degraded = outcome.get("degraded") if record.done else None
    reason = outcome.get("reason")
    elapsed = outcome.get("elapsed_s")
    return RunRow(
        run_id=record.run_id,
        graph=record.assistant_id,
        thread_id=record.thread_id,
        stateless=record.stateless,
        created_at=record.created_at,
        status=record.status,
        degraded=bool(degraded) if degraded is not None else None,
        reason=str(reason) if reason else None,
        deadline_s=record.deadline.seconds,
        deadline_source=record.deadline.source,
        elapsed_s=float(elapsed) if isinstance(elapsed, int | float) else None,
        kept=kept,
    )


# -- pages (pure) -------------------------------------------------------------------


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{PAGE_STYLE}{_STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}s"


def _when(created_at: str) -> str:
    """An ISO time in UTC as ``YYYY-MM-DD HH:MM:SS``."""
    return created_at[:19].replace("T", " ")


def _degraded(row: RunRow) -> str:
    if row.degraded is None:
        return '<td class="note">—</td>'
    if row.degraded:
        return '<td class="degraded">degraded</td>'
    return '<td class="ok">no</td>'


def runs_page(rows: Sequence[RunRow], *, keeps: int, recording: bool) -> str:
    """The table of ``rows`` (newest first). ``keeps``: how many runs' spans the
    worker keeps; ``recording``: whether it records spans at all."""
    note = (
        f"The latest {keeps} runs of this worker, newest first; each one's waterfall "
        "is drawn from the spans this worker keeps in memory."
        if recording
        else "This worker records no spans (no OpenTelemetry SDK tracer provider is "
        "configured: start it with `agentrt serve`, or create_app(..., telemetry=True)), "
        "so no run has a waterfall."
    )
    head = (
        "<tr><th>run</th><th>graph</th><th>started (UTC)</th><th>status</th>"
        "<th>degraded</th><th>reason</th><th>deadline</th><th>elapsed</th><th>waterfall</th></tr>"
    )
    body: list[str] = []
    for row in rows:
        link = (
            f'<a href="ui/runs/{_e(quote(row.run_id, safe=""))}">waterfall</a>'
            if row.kept
            else '<span class="note">not kept</span>'
        )
        body.append(
            f'<tr class="run" id="run-{_e(row.run_id)}">'
            f"<td><code>{_e(row.run_id)}</code></td><td>{_e(row.graph)}</td>"
            f"<td>{_e(_when(row.created_at))}</td>"
            f'<td class="status">{_e(row.status)}</td>{_degraded(row)}'
            f'<td class="reason">{_e(row.reason or "")}</td>'
            f'<td class="num">{_seconds(row.deadline_s)}</td>'
            f'<td class="num">{_seconds(row.elapsed_s)}</td><td>{link}</td></tr>'
        )
    table = (
        f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"
        if body
        else '<p class="empty">No runs yet: start one (POST /runs/wait) and reload.</p>'
    )
    return _page("agentrt — recent runs", f"<h1>Recent runs</h1><p class='note'>{note}</p>{table}")


def run_page(run_id: str, row: RunRow | None, recorded: RecordedRun) -> str:
    """The waterfall of one run, under what the registry says of it (``row``;
    ``None`` when the registry has forgotten it but its spans are still kept)."""
    trace = recorded.trace
    facts: list[tuple[str, str]] = []
    if row is not None:
        facts += [
            ("graph", row.graph),
            ("thread", f"{row.thread_id}{' (stateless run)' if row.stateless else ''}"),
            ("started (UTC)", _when(row.created_at)),
            ("status", row.status),
            ("degraded", "—" if row.degraded is None else ("yes" if row.degraded else "no")),
            ("reason", row.reason or "—"),
            ("deadline", f"{_seconds(row.deadline_s)} ({row.deadline_source})"),
            ("elapsed", _seconds(row.elapsed_s)),
        ]
    facts += [("trace id", trace.trace_id), ("spans kept", str(len(trace.spans)))]
    listing = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    notes: list[str] = []
    if not recorded.finished:
        notes.append(
            "The run is still going: the waterfall shows the spans that have ended so far."
        )
    if recorded.dropped_spans:
        notes.append(
            f"{recorded.dropped_spans} later spans were not kept (past this worker's "
            "limit of spans per run)."
        )
    figure = (
        render_figure(layout(trace))
        if trace.spans
        else '<p class="empty">No span of this run has ended yet: reload to see it fill in.</p>'
    )
    body = (
        '<nav><a href="../../ui">← recent runs</a></nav>'
        f"<h1>Run <code>{_e(run_id)}</code></h1><dl>{listing}</dl>"
        + "".join(f'<p class="note">{_e(n)}</p>' for n in notes)
        + figure
    )
    graph = row.graph if row is not None else (trace.graph or "run")
    return _page(f"{graph} — run {run_id}", body)


def missing_reason(run_id: str, row: RunRow | None, *, keeps: int, recording: bool) -> str:
    """Why run ``run_id`` has no waterfall here."""
    if row is None:
        return (
            f"No run '{run_id}' is known to this worker: it ran on another worker, or "
            "before this one started, or it is older than the runs this worker remembers."
        )
    if not recording:
        return (
            f"Run '{run_id}' has no trace: this worker records no spans (no OpenTelemetry "
            "SDK tracer provider is configured)."
        )
    if row.status in ("pending", "running"):
        return f"Run '{run_id}' has not started its graph yet: reload in a moment."
    return (
        f"The spans of run '{run_id}' are no longer kept: this worker keeps the latest "
        f"{keeps} runs' (or the run ended before its graph started)."
    )


def missing_page(message: str) -> str:
    """The 404 page: ``message`` and the way back."""
    return _page(
        "agentrt — run not found",
        f'<nav><a href="../../ui">← recent runs</a></nav><h1>Run not found</h1>'
        f'<p class="missing">{_e(message)}</p>',
    )


# -- routes (thin) ------------------------------------------------------------------


def _record(registry: RunRegistry, run_id: str) -> RunRecord | None:
    return next((r for r in reversed(registry.runs()) if r.run_id == run_id), None)


def ui_routes(registry: RunRegistry, recent: RecentRuns) -> list[Route]:
    """``GET /ui`` and ``GET /ui/runs/{run_id}`` for the runs of ``registry``."""

    async def runs(request: Request) -> Response:
        records = list(reversed(registry.runs()))[: recent.max_runs]
        rows = [row_of(r, kept=r.run_id in recent) for r in records]
        page = runs_page(rows, keeps=recent.max_runs, recording=recent.recording_spans)
        return HTMLResponse(page, headers=HEADERS)

    async def run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        record = _record(registry, run_id)
        recorded = recent.get(run_id)
        row = row_of(record, kept=recorded is not None) if record is not None else None
        if recorded is None:
            message = missing_reason(
                run_id, row, keeps=recent.max_runs, recording=recent.recording_spans
            )
            return HTMLResponse(missing_page(message), status_code=404, headers=HEADERS)
        return HTMLResponse(run_page(run_id, row, recorded), headers=HEADERS)

    return [
        Route(UI_PATH, runs, methods=["GET"]),
        Route(f"{UI_PATH}/runs/{{run_id}}", run, methods=["GET"]),
    ]
