"""Tuning on traces the project recorded (tests/data/traces: labelled runs of a
two-node workflow on the local pool, made by tests/data/traces/make_traces.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentrt.budget._profile import load_profile
from agentrt.core._errors import ConfigurationError
from agentrt.langgraph._loading import graph_key
from agentrt.tracing._records import load_runs, load_spans
from agentrt.tts._calibrate import load_latency_models
from agentrt.tts._latency import expected_tokens_per_pass
from agentrt.tuning import select_runs, tune
from agentrt.tuning._fit import acceptance_from_tokens_per_pass, fit, fit_latency
from agentrt.tuning._profile_writer import load_tuned_models
from agentrt.tuning._samples import BranchSample, CallSample, extract

TRACES = Path(__file__).parents[1] / "data" / "traces"


@pytest.fixture(scope="module")
def runs() -> list[Any]:
    return extract(load_runs([TRACES]))


def test_the_recorded_traces_are_runs_of_one_graph(runs: list[Any]) -> None:
    assert len(runs) >= 10
    assert {r.graph for r in runs} == {"arith"}
    assert all(r.calls for r in runs)
    nodes = {c.node for r in runs for c in r.calls}
    assert nodes == {"plan", "solve"}
    for run in runs:
        for call in run.calls:
            assert call.n == len(call.branches)
            assert call.predicted_mean_s is not None and call.latency_s > 0
            assert call.server is not None and call.group == "plain"


def test_fit_recovers_node_structure_and_latency(runs: list[Any]) -> None:
    fitted = fit(runs)
    plan, solve = fitted.nodes["plan"], fitted.nodes["solve"]
    assert plan.stats.calls_per_visit == 1.0 and plan.stats.expected_visits == 1.0
    assert 1.0 <= solve.stats.expected_visits <= 3.0  # one to three solve visits per run
    assert max(plan.length.samples) == 16  # the plan call is capped at 16 tokens
    # the profile's p50/p90 are those whose log-normal best predicts the calls' latency
    assert plan.stats.tokens_p50 is not None and plan.stats.tokens_p90 is not None
    assert 1 <= plan.stats.tokens_p50 <= plan.stats.tokens_p90
    assert solve.stats.p50_s <= solve.stats.p90_s <= solve.stats.p99_s
    assert solve.accuracy is not None and solve.stats.accuracy_curve is not None
    model = fitted.latency["plain"]
    per_token_n1 = model.per_token_s(1)
    assert 0.005 < per_token_n1 < 0.5  # a CPU decode step of a 135M model
    assert model.per_token_s(8) >= per_token_n1  # monotone in concurrency


def test_tuning_lowers_the_held_out_prediction_error(tmp_path: Path) -> None:
    output = tmp_path / "arith.tuned.toml"
    outcome = tune([TRACES], "arith", output)
    quality = outcome.quality
    assert quality.held_out_runs >= 1 and quality.before.count == quality.after.count > 0
    assert quality.before.median_pct is not None and quality.after.median_pct is not None
    assert quality.after.median_pct < quality.before.median_pct
    profile = load_profile(output)
    assert profile.graph == "arith" and set(profile.nodes) == {"plan", "solve"}
    assert "held-out latency error" in output.read_text().lower()
    models = load_tuned_models(output)
    assert set(models.latency) == {"plain"} and set(models.length) == {"plan", "solve"}
    assert load_latency_models(outcome.models_path) == models.latency  # type: ignore[arg-type]


def test_traces_of_another_graph_are_refused(runs: list[Any]) -> None:
    with pytest.raises(
        ConfigurationError, match=r"runs of graph\(s\) \['arith'\], not of 'graphs/math.py:graph'"
    ):
        select_runs(runs, "graphs/math.py:graph", None)
    with pytest.raises(
        ConfigurationError, match=r"node\(s\) \['plan'\] that 'arith' does not have"
    ):
        select_runs(runs, "arith", {"solve", "check"})
    assert graph_key("graphs/math.py:graph") == graph_key("graphs/math.py") == "math"


def _otlp_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_otlp_value(v) for v in value]}}
    return {"stringValue": str(value)}


def _as_otlp(line: dict[str, Any]) -> dict[str, Any]:
    span = {
        "traceId": line["trace_id"],
        "spanId": line["span_id"],
        "name": line["name"],
        "kind": {"INTERNAL": 1, "CLIENT": 3}[line["kind"]],
        "startTimeUnixNano": str(line["start_time_unix_nano"]),
        "endTimeUnixNano": str(line["end_time_unix_nano"]),
        "attributes": [{"key": k, "value": _otlp_value(v)} for k, v in line["attributes"].items()],
        "events": [],
        "status": {"code": {"UNSET": 0, "OK": 1, "ERROR": 2}[line["status"]["code"]]},
    }
    if line["parent_span_id"]:
        span["parentSpanId"] = line["parent_span_id"]
    return {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [span]}]}]}


def test_otlp_json_reads_the_same_as_jsonl(tmp_path: Path) -> None:
    source = sorted(TRACES.glob("*.jsonl"))[0]
    lines = [json.loads(line) for line in source.read_text().splitlines()]
    otlp = tmp_path / "run.json"
    otlp.write_text(json.dumps({"resourceSpans": [
        doc["resourceSpans"][0] for doc in (_as_otlp(line) for line in lines)
    ]}))  # fmt: skip
    ours = sorted(load_spans([source]), key=lambda s: s.span_id)
    theirs = sorted(load_spans([otlp]), key=lambda s: s.span_id)
    assert [(s.name, s.parent_id, s.start_ns, dict(s.attributes)) for s in ours] == [
        (s.name, s.parent_id, s.start_ns, dict(s.attributes)) for s in theirs
    ]
    assert extract(load_runs([otlp]))[0].calls == extract(load_runs([source]))[0].calls


@pytest.mark.parametrize("acceptance", [0.0, 0.3, 0.6, 0.9])
def test_acceptance_inverts_tokens_per_pass(acceptance: float) -> None:
    tokens = expected_tokens_per_pass(acceptance, 4)
    assert acceptance_from_tokens_per_pass(tokens, 4) == pytest.approx(acceptance, abs=1e-3)


def _call(group: str, n: int, tokens: int, chunks: int, decode_s: float) -> CallSample:
    branch = BranchSample("finished", tokens, chunks, 0.1, decode_s, "stop", n)
    return CallSample(
        trace_id="t", span_id=f"{group}{n}", run_key="t", node="solve", group=group,
        server=None, strategy="majority", n=n, max_tokens=64, prompt_tokens=20,
        output_tokens=tokens * n, latency_s=decode_s + 0.1, slice_s=5.0,
        predicted_latency_s=1.0, predicted_mean_s=1.0, sla_quantile=0.9, finished=n,
        early_stopped=0, cancelled=0, degraded=False, correct=None,
        draft_tokens=4 if group == "spec" else None, start_ns=0, end_ns=1,
        branches=(branch,) * n,
    )  # fmt: skip


def test_speculative_acceptance_comes_from_tokens_per_chunk() -> None:
    calls = [
        _call("plain", 1, 41, 41, 0.8),
        _call("plain", 4, 41, 41, 0.9),
        _call("spec", 1, 41, 16, 0.4),  # 2.56 tokens a pass
        _call("spec", 4, 41, 26, 0.6),  # 1.58 tokens a pass: acceptance falls with N
    ]
    models = fit_latency(calls)
    assert models["plain"].speculative is None
    spec = models["spec"].speculative
    assert spec is not None and spec.num_speculative_tokens == 4
    assert spec.acceptance_at(1) > spec.acceptance_at(4) > 0
    assert models["spec"].per_token_s(1) == pytest.approx(0.4 / 40)
