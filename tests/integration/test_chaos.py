"""A CI-sized chaos run: the three graphs on the real pool behind fault proxies that
add latency, stall, cut and reset connections and answer 503s on a seeded
schedule. Nothing computed may be lost: every answer the executor returned is
in its run's result, every span the runs must export is in the JSONL files,
no exception escapes ``agentrt.run``, and every run returns by its deadline
plus a margin (the measured overshoot is in docs/reliability.md, from
``python -m benchmarks chaos``) plus however late this process's event loop
ran around that run's deadline (``tests/support/lateness.py``): on a 2-core
machine the servers' threads can hold both cores for longer than any margin.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrt.pool import EndpointSpec
from agentrt.tts import LatencyModel
from benchmarks.audit import audit_answers, audit_spans, spans_by_trace, trace_of_runs
from benchmarks.chaos import ChaosPlan, run_chaos
from tests.support.lateness import measuring_lateness

MARGIN_S = 0.5
LATENCY: dict[str, LatencyModel] = {}
"""This machine's measured latency models (conftest's ``pool_latency``)."""


@pytest.fixture(autouse=True)
def _measured_latency(pool_latency: dict[str, LatencyModel]) -> None:
    LATENCY.update(pool_latency)


PLAN = ChaosPlan(runs=33, concurrency=6, deadline_min_s=2.0, deadline_max_s=5.0,
                 mean_gap_s=1.0)  # fmt: skip


async def test_random_faults_lose_no_answer_and_no_span(
    all_specs: list[EndpointSpec], tmp_path: Path
) -> None:
    latency = {g: m for g, m in LATENCY.items() if any(s.group == g for s in all_specs)}
    async with measuring_lateness() as lateness:
        runs, faults, spans = await run_chaos(all_specs, PLAN, latency, seed=8, traces_dir=tmp_path)
    assert len(runs) == PLAN.runs
    assert {f.kind for f in faults if f.at_s < 20} >= {"delay", "stall", "cut", "reject"}
    assert {r.ledger.graph for r in runs} == {"math", "mapreduce", "calculator"}
    assert sum(1 for r in runs if r.faults) >= PLAN.runs // 2, "most runs met a fault"
    traces = spans_by_trace(spans)
    by_number = trace_of_runs(traces)
    produced = 0
    for run in runs:
        ledger = run.ledger
        assert ledger.raised is None, f"run {ledger.number} raised: {run.reason}"
        due = run.started_at + ledger.deadline_s
        late_s = lateness.worst(due - MARGIN_S, run.started_at + ledger.elapsed_s)
        assert ledger.elapsed_s <= ledger.deadline_s + MARGIN_S + late_s, (
            f"run {ledger.number} ({ledger.graph}) took {ledger.elapsed_s:.3f}s "
            f"for a {ledger.deadline_s}s deadline under {run.faults} (the loop ran "
            f"{late_s:.3f}s late): {run.reason}"
        )
        mine = traces.get(ledger.trace_id or by_number[ledger.number], [])
        answers = audit_answers(ledger, mine)
        assert answers.lost == 0 and answers.not_carried == 0, (ledger.number, answers)
        span_audit = audit_spans(ledger, mine)
        assert span_audit.lost == 0 and span_audit.left_open == 0, (ledger.number, span_audit)
        produced += answers.produced
    assert produced >= PLAN.runs, "the runs made LLM calls that returned answers"
