"""Tuning end to end on freshly generated traces: graph runs on the local pool
(traced through the runner), ``tune``, a tuned run, the trace view."""

from __future__ import annotations

from pathlib import Path

from agentrt.budget._profile import load_profile
from agentrt.cli.trace import trace_view_command
from agentrt.pool import EndpointSpec
from agentrt.tracing._records import load_runs
from agentrt.tuning import load_tuned_models, tune
from agentrt.tuning._loop import figures, traced_runs

GRAPH = "graphs/math.py:graph"


async def test_traced_graph_runs_tune_and_run_again(
    all_specs: list[EndpointSpec], tmp_path: Path
) -> None:
    files = await traced_runs(
        GRAPH, range(1, 5), deadline_s=8, traces_dir=tmp_path / "default", endpoints=all_specs
    )
    assert len(files) == 4 and all(f.is_file() for f in files)
    runs = load_runs(files)
    assert {r.graph for r in runs} == {"math"}
    for run in runs:
        names = {s.name.split(" ")[0] for s in run.spans}
        assert {"invoke_workflow", "node", "chat", "branch"} <= names
        assert all(run.node_of(c) == "solve" for c in run.calls())
    outcome = tune(files, GRAPH, tmp_path / "math.tuned.toml")
    assert outcome.quality.before.count > 0 or outcome.quality.held_out_runs >= 1
    profile = load_profile(tmp_path / "math.tuned.toml")
    assert profile.graph == GRAPH and "solve" in profile.nodes
    assert profile.nodes["solve"].tokens_p50 is not None
    assert set(load_tuned_models(tmp_path / "math.tuned.toml").latency) <= {"plain", "spec"}
    tuned = await traced_runs(
        GRAPH, [5], deadline_s=8, traces_dir=tmp_path / "tuned", endpoints=all_specs,
        profile=outcome.profile_path, calibration=outcome.models_path,
    )  # fmt: skip
    after = figures(tuned)
    assert after.runs == 1 and after.calls >= 1
    html, png = trace_view_command(str(tuned[0]), output=tmp_path / "view")
    assert "node solve" in html.read_text() and png.stat().st_size > 10_000
