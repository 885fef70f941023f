"""The chaos benchmark's pure parts: the seeded fault schedule, its timeline, the
audit's view of a run, and the rows (no server, no time passes)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from benchmarks.audit import AnswerAudit, CallEntry, RunLedger, SpanAudit
from benchmarks.chaos import (
    FAULT_KINDS,
    ChaosRun,
    Fault,
    chaos_rows,
    fault_schedule,
    faults_during,
    timeline,
)
from benchmarks.load import Sample, level_row


def test_the_schedule_replays_from_its_seed() -> None:
    assert fault_schedule(4, 3, 60.0) == fault_schedule(4, 3, 60.0)
    assert fault_schedule(4, 3, 60.0) != fault_schedule(5, 3, 60.0)


def test_one_fault_at_a_time_on_each_proxy_within_the_horizon() -> None:
    faults = fault_schedule(1, 3, 300.0, mean_gap_s=1.0)
    assert {f.proxy for f in faults} == {0, 1, 2}
    assert {f.kind for f in faults} == set(FAULT_KINDS)
    for proxy in range(3):
        mine = [f for f in faults if f.proxy == proxy]
        for before, after in itertools.pairwise(mine):
            assert before.at_s + before.duration_s <= after.at_s
        assert all(0.0 <= f.at_s < 300.0 for f in mine)
    assert [f.at_s for f in faults] == sorted(f.at_s for f in faults)


def test_fault_amounts_are_in_range() -> None:
    for fault in fault_schedule(2, 2, 500.0):
        if fault.kind == "reset":
            assert fault.duration_s == 0.0
        else:
            assert 0.5 <= fault.duration_s <= 4.0
        if fault.kind == "delay":
            assert 0.1 <= fault.amount <= 1.0
        if fault.kind == "cut":
            assert 300 <= fault.amount <= 6000
        if fault.kind == "reject":
            assert fault.amount == 503


def test_the_kinds_can_be_narrowed_and_unknown_kinds_are_refused() -> None:
    assert {f.kind for f in fault_schedule(0, 2, 100.0, kinds=("stall",))} == {"stall"}
    with pytest.raises(ValueError, match="unknown fault kinds"):
        fault_schedule(0, 1, 10.0, kinds=("meteor",))


def test_the_timeline_switches_each_fault_on_then_off() -> None:
    stall = Fault(1.0, 0, "stall", 2.0)
    reset = Fault(3.0, 1, "reset", 0.0)
    delay = Fault(3.0, 0, "delay", 1.0, 0.2)
    events = timeline([delay, stall, reset])
    assert [(at, on, f.kind) for at, on, f in events] == [
        (1.0, True, "stall"),
        (3.0, False, "stall"),  # an end before a start at the same instant
        (3.0, True, "delay"),
        (3.0, True, "reset"),
        (4.0, False, "delay"),
    ]


def test_faults_during_a_run() -> None:
    faults = [Fault(1.0, 0, "stall", 2.0), Fault(5.0, 1, "reset", 0.0)]
    assert faults_during(faults, 0.0, 0.9) == set()
    assert faults_during(faults, 2.5, 4.0) == {"stall"}
    assert faults_during(faults, 3.0, 5.0) == {"stall", "reset"}


def _run(number: int, graph: str, elapsed: float, faults: tuple[str, ...]) -> ChaosRun:
    ledger = RunLedger(number, graph, 4.0, elapsed, trace_id=f"t{number}",
                       calls=(CallEntry(0, "solve:a", "7"),), nodes_started=1)  # fmt: skip
    return ChaosRun(ledger, started_s=0.0, task=number, faults=faults, reason=None)


def _spans(number: int, *, chat: bool = True) -> list[dict[str, Any]]:
    trace = f"t{number}"
    spans = [
        {"trace_id": trace, "span_id": "w", "parent_span_id": None,
         "name": "invoke_workflow math", "attributes": {"agentrt.run.task_seed": number}},
        {"trace_id": trace, "span_id": "n", "parent_span_id": "w", "name": "node solve",
         "attributes": {}},
    ]  # fmt: skip
    if chat:
        attributes = {"agentrt.call.index": 0, "agentrt.actual.latency_s": 1.0}
        spans.append({"trace_id": trace, "span_id": "c", "parent_span_id": "n",
                      "name": "chat m", "attributes": attributes})  # fmt: skip
    return spans


def test_rows_by_graph_and_by_fault() -> None:
    runs = [_run(0, "math", 3.0, ("stall",)), _run(1, "math", 4.2, ("stall", "cut")),
            _run(2, "mapreduce", 3.5, ())]  # fmt: skip
    spans = _spans(0) + _spans(1, chat=False) + _spans(2)
    by_graph, by_fault = chaos_rows(runs, spans, margin_s=0.05)
    every = by_graph[-1]
    assert every["graph"] == "all" and every["runs"] == 3
    assert every["inside"] == 0.667
    assert every["max ms"] == pytest.approx(200.0)
    assert every["spans lost"] == 1 and every["answers lost"] == 0
    assert [r["graph"] for r in by_graph] == ["mapreduce", "math", "all"]
    stall = next(r for r in by_fault if r["fault during run"] == "stall")
    none = next(r for r in by_fault if r["fault during run"] == "none")
    assert stall["runs"] == 2 and none["runs"] == 1


def test_a_load_level_row() -> None:
    ledgers = [RunLedger(i, "math", 4.0, 3.0 + i / 10, calls=(CallEntry(0, "s", "1"),))
               for i in range(5)]  # fmt: skip
    samples = [Sample(0.001, 100 << 20, 7, 10, 5), Sample(0.02, 110 << 20, 8, 12, 5)]
    row = level_row(5, ledgers, samples, wall_s=2.0, rss_before=100 << 20,
                    cpu_s=0.05, rss_after=101 << 20, answered=4, margin_s=0.05, spans=SpanAudit(),
                    answers=AnswerAudit())  # fmt: skip
    assert row["runs"] == 5 and row["runs/s"] == 2.5 and row["client CPU ms/run"] == 10.0
    assert row["inside"] == 1.0 and row["calls/run"] == 1.0 and row["answered"] == 0.8
    assert row["peak growth MiB"] == 10.0 and row["KiB per run in flight"] == 2048.0
    assert row["left after MiB"] == 1.0
    assert row["threads max"] == 8 and row["sockets max"] == 12
    assert row["loop lag p99 ms"] == 19.8  # 1 ms + 0.99 x (20 - 1) ms: linear, as numpy
