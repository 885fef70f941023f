"""``agentrt trace view`` and ``agentrt trace summary``.

A trace file that cannot be read is a :class:`~agentrt.tracing.TraceFileError`
naming the file and line, which ``agentrt`` prints as one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agentrt.cli.waterfall import layout, render_html, render_png
from agentrt.core._errors import ConfigurationError
from agentrt.tracing._errors import TraceFileError
from agentrt.tracing._records import find_trace_file, load_runs
from agentrt.tracing._summary import RunTotals, SiteSummary, summarise

__all__ = ["trace_summary_command", "trace_view_command"]


def trace_view_command(
    run: str, *, output: Path | None = None, traces_dir: Path = Path("traces"),
    console: Console | None = None,
) -> tuple[Path, Path]:  # fmt: skip
    """Render the waterfall of ``run`` (a file, or a run/trace id or file-name
    fragment under ``traces_dir``) as ``OUT.html`` and ``OUT.png``; ``output``
    defaults to the trace file's name without its suffix. Returns both paths."""
    source = find_trace_file(run, traces_dir)
    runs = load_runs([source])
    if not runs:
        raise TraceFileError(source, None, "no spans")
    chosen = next((r for r in runs if run in (r.run_id, r.trace_id)), None)
    chosen = chosen or max(runs, key=lambda r: len(r.spans))
    waterfall = layout(chosen)
    stem = output if output is not None else source.with_suffix("")
    if stem.suffix in (".html", ".png"):
        stem = stem.with_suffix("")
    html_path, png_path = stem.with_suffix(".html"), stem.with_suffix(".png")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(render_html(waterfall), encoding="utf-8")
    render_png(waterfall, png_path)
    if console is not None:
        console.print(
            f"{len(waterfall.rows)} spans of {chosen.run_id}: wrote {html_path} and {png_path}"
        )
    return html_path, png_path


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def render_summary(rows: Sequence[SiteSummary], totals: RunTotals, console: Console) -> None:
    table = Table(title="LLM calls per node and call site")
    for column in (
        "node", "site", "calls", "slice p50", "used p50", "used p90", "predicted p50",
        "in slice", "degraded", "cut br.", "early br.", "tokens in/out", "correct",
    ):  # fmt: skip
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.node, row.call_site or "-", str(row.calls), _s(row.slice_p50_s),
            _s(row.used_p50_s), _s(row.used_p90_s), _s(row.predicted_p50_s),
            _pct(row.within_slice), str(row.degraded), str(row.cancelled_branches),
            str(row.early_stopped_branches),
            f"{row.input_tokens_mean:.0f}/{row.output_tokens_mean:.0f}", _pct(row.correct),
        )  # fmt: skip
    console.print(table)
    console.print(
        f"{totals.runs} runs: deadline met {_pct(totals.deadline_met)}, degraded "
        f"{_pct(totals.degraded)}, correct {_pct(totals.correct)}, median "
        f"{_s(totals.duration_p50_s)}s"
    )


def trace_summary_command(
    traces: Sequence[Path], *, console: Console
) -> tuple[list[SiteSummary], RunTotals]:
    """Summarise the runs in ``traces`` (files or directories) and print the table."""
    runs = load_runs(traces)
    if not runs:
        raise ConfigurationError(f"no spans in {[str(t) for t in traces]}")
    rows, totals = summarise(runs)
    render_summary(rows, totals, console)
    return rows, totals
