"""The waterfall (HTML in headless Chromium, PNG with matplotlib) and the trace
summary, on the recorded traces in tests/data/traces."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from agentrt.cli.trace import trace_summary_command, trace_view_command
from agentrt.cli.waterfall import COLOURS, layout, render_html, render_png
from agentrt.core._errors import ConfigurationError
from agentrt.tracing._records import RunTrace, load_runs

TRACES = Path(__file__).parents[1] / "data" / "traces"
CHROMIUM = Path("/usr/bin/chromium")


def busiest_with_cancelled() -> RunTrace:
    runs = load_runs([TRACES])
    cut = [r for r in runs if any(s.get("agentrt.branch.outcome") == "cancelled" for s in r.spans)]
    return max(cut, key=lambda r: len(r.spans))


def test_layout_orders_nodes_calls_and_branches_on_one_axis() -> None:
    waterfall = layout(busiest_with_cancelled())
    kinds = [r.kind for r in waterfall.rows]
    assert kinds[0] == "workflow" and "node" in kinds and "chat" in kinds and "branch" in kinds
    assert waterfall.rows[0].start_s == 0.0
    for row in waterfall.rows:
        assert 0.0 <= row.start_s <= row.end_s <= waterfall.span_s
        if row.kind == "chat":
            assert row.slice_s is not None and row.depth == 2
        if row.kind == "branch":
            assert row.outcome in {"finished", "early_stopped", "cancelled"} and row.depth == 3
    assert any(r.outcome == "cancelled" for r in waterfall.rows)
    assert waterfall.deadline_s == 20.0


def test_the_html_page_is_self_contained() -> None:
    page = render_html(layout(busiest_with_cancelled()))
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "src=" not in page and "<link" not in page
    assert page.count("<rect") > 10 and "url(#hatch)" in page  # cancelled branches hatched
    assert 'class="slice"' in page and "deadline 20s" in page


def test_the_png_is_drawn(tmp_path: Path) -> None:
    path = render_png(layout(busiest_with_cancelled()), tmp_path / "run.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_trace_view_finds_a_run_by_trace_id_fragment(tmp_path: Path) -> None:
    run = busiest_with_cancelled()
    html, png = trace_view_command(
        run.trace_id[:8], traces_dir=TRACES, output=tmp_path / "view", console=Console(file=None)
    )
    assert html == tmp_path / "view.html" and png == tmp_path / "view.png"
    assert run.trace_id[:16] in html.read_text()
    with pytest.raises(ConfigurationError, match="no trace file for run 'nope'"):
        trace_view_command("nope", traces_dir=TRACES)


def test_summary_per_node_slices_and_sla(capsys: pytest.CaptureFixture[str]) -> None:
    rows, totals = trace_summary_command([TRACES], console=Console(width=200))
    by_node = {r.node: r for r in rows}
    assert set(by_node) == {"plan", "solve"}
    runs = load_runs([TRACES])
    assert totals.runs == len(runs) and totals.deadline_met == 1.0
    assert by_node["plan"].calls == len(runs)  # one plan call per run
    solve = by_node["solve"]
    assert solve.slice_p50_s is not None and 1.0 <= solve.slice_p50_s <= 6.0
    assert solve.within_slice is not None and 0.0 < solve.within_slice <= 1.0
    assert solve.correct is not None and solve.cancelled_branches > 0
    assert "LLM calls per node and call site" in capsys.readouterr().out


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs headless Chromium at /usr/bin/chromium (Debian: apt-get install chromium)",
)
def test_the_html_waterfall_renders_bars_in_headless_chromium(tmp_path: Path) -> None:
    import matplotlib.image

    page = tmp_path / "run.html"
    page.write_text(render_html(layout(busiest_with_cancelled())))
    shot = tmp_path / "shot.png"
    profile = tmp_path / "chromium-profile"
    subprocess.run(
        [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1280,720",
            page.as_uri(),
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    pixels = matplotlib.image.imread(shot)[..., :3]

    def count(colour: str) -> int:
        rgb = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        close = abs(pixels - rgb).max(axis=-1) < 0.02
        return int(close.sum())

    assert pixels.shape[1] == 1280
    assert count(COLOURS["chat"]) > 500  # the call bars
    assert count(COLOURS["node"]) > 500  # the node bars
    assert count(COLOURS["finished"]) > 500  # finished branches
    assert count(COLOURS["cancelled"]) > 100  # hatched cancelled branches
