"""The run accounting of the chaos and load benchmarks: deadline shares, overshoot
quantiles, answers lost and spans lost (pure functions over made-up records)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.audit import (
    AnswerAudit,
    CallEntry,
    RunLedger,
    SpanAudit,
    audit_answers,
    audit_spans,
    deadline_stats,
    spans_by_trace,
    trace_of_runs,
)


def _span(name: str, span_id: str, parent: str | None = None, trace: str = "t1",
          **attributes: Any) -> dict[str, Any]:  # fmt: skip
    return {"trace_id": trace, "span_id": span_id, "parent_span_id": parent, "name": name,
            "attributes": attributes}  # fmt: skip


def _chat(span_id: str, index: int, *, answered: bool = True, parent: str = "n1") -> dict[str, Any]:
    attributes: dict[str, Any] = {"agentrt.call.index": index}
    if answered:
        attributes["agentrt.actual.latency_s"] = 0.5
    return _span("chat smollm2", span_id, parent, **attributes)


def _ledger(**changes: Any) -> RunLedger:
    base: dict[str, Any] = {
        "number": 3, "graph": "math", "deadline_s": 4.0, "elapsed_s": 3.9, "trace_id": "t1",
        "calls": (CallEntry(0, "solve:a", "7"), CallEntry(1, "solve:b", "9")),
        "nodes_started": 2,
        "writes": (("solve:a", {"results": ["7"]}), ("solve:b", {"results": ["7", "9"]})),
    }  # fmt: skip
    return RunLedger(**{**base, **changes})


def _trace() -> list[dict[str, Any]]:
    return [
        _span("invoke_workflow math", "w", None, **{"agentrt.run.task_seed": 3}),
        _span("node solve", "n1", "w"),
        _span("node solve", "n2", "w"),
        _chat("c0", 0, parent="n1"),
        _chat("c1", 1, parent="n2"),
        _span("branch 0", "b0", "c0"),
    ]


# -- deadlines --------------------------------------------------------------------------


def test_deadline_stats_count_the_margin_inclusively() -> None:
    stats = deadline_stats([(3.0, 4.0), (4.0, 4.0), (4.05, 4.0), (4.2, 4.0)], margin_s=0.05)
    assert stats.runs == 4
    assert stats.inside == 0.5  # returning exactly at the deadline is inside
    assert stats.inside_margin == 0.75
    assert stats.overshoot_p50_ms == pytest.approx(25.0)  # halfway between 0 and 50 ms
    assert stats.overshoot_max_ms == pytest.approx(200.0)
    assert stats.overshoot_p99_ms == pytest.approx(50.0 + 0.97 * 150.0)  # linear, as numpy


def test_early_runs_count_as_no_overshoot() -> None:
    stats = deadline_stats([(1.0, 4.0)] * 100 + [(4.5, 4.0)], margin_s=0.05)
    assert stats.overshoot_p99_ms == 0.0 and stats.overshoot_max_ms == pytest.approx(500.0)
    assert stats.inside_margin == pytest.approx(100 / 101)


def test_no_runs_give_zeros() -> None:
    assert deadline_stats([], 0.05).runs == 0


# -- spans ------------------------------------------------------------------------------


def test_a_complete_trace_loses_nothing() -> None:
    audit = audit_spans(_ledger(), _trace())
    assert audit == SpanAudit(expected=5, found=5, lost=0, left_open=0)


def test_a_missing_chat_span_is_lost_by_call_index() -> None:
    trace = [s for s in _trace() if s["span_id"] != "c1"]
    trace.append(_chat("c9", 5, answered=False))  # a cancelled call of another index
    assert audit_spans(_ledger(), trace).lost == 1


def test_missing_workflow_and_node_spans_are_lost() -> None:
    trace = [s for s in _trace() if s["span_id"] not in ("w", "n2")]
    audit = audit_spans(_ledger(), trace)
    assert audit.lost == 2
    assert audit.left_open == 2  # both are named as parents by spans that were exported


def test_a_span_named_as_parent_but_never_exported_was_left_open() -> None:
    trace = [*_trace(), _span("branch 1", "b1", "ghost")]
    assert audit_spans(_ledger(), trace).left_open == 1


def test_a_run_that_raised_is_audited_on_its_workflow_span() -> None:
    ledger = _ledger(raised="RuntimeError", calls=(), trace_id=None)
    assert audit_spans(ledger, _trace()[:1]) == SpanAudit(1, 1, 0, 0)
    assert audit_spans(ledger, []).lost == 1


def test_span_audits_add_up() -> None:
    assert SpanAudit(1, 2, 3, 4) + SpanAudit(1, 1, 1, 1) == SpanAudit(2, 3, 4, 5)


# -- answers ----------------------------------------------------------------------------


def test_every_produced_answer_recorded_and_carried() -> None:
    assert audit_answers(_ledger(), _trace()) == AnswerAudit(2, 2, 0, 0)


def test_an_answer_the_executor_returned_but_the_result_lacks_is_lost() -> None:
    ledger = _ledger(calls=(CallEntry(0, "solve:a", "7"),))
    assert audit_answers(ledger, _trace()).lost == 1


def test_a_cancelled_call_produced_no_answer() -> None:
    trace = [*_trace(), _chat("c2", 2, answered=False)]
    assert audit_answers(_ledger(), trace).lost == 0


def test_an_answer_missing_from_its_finished_tasks_write_is_not_carried() -> None:
    ledger = _ledger(writes=(("solve:a", {"results": ["7"]}), ("solve:b", {"results": ["7"]})))
    assert audit_answers(ledger, _trace()).not_carried == 1


def test_answers_are_found_in_nested_writes() -> None:
    ledger = _ledger(
        calls=(CallEntry(0, "solve:a", "7"),),
        writes=(("solve:a", {"answers": [(0, "7")], "other": {"x": None}}),),
    )
    assert audit_answers(ledger, _trace()[:4]).not_carried == 0


def test_a_call_whose_task_was_cut_is_not_checked_against_a_write() -> None:
    ledger = _ledger(writes=(("solve:a", {"results": ["7"]}),))
    assert audit_answers(ledger, _trace()).not_carried == 0


def _timed(span: dict[str, Any], end_ns: int) -> dict[str, Any]:
    return {**span, "end_time_unix_nano": end_ns}


def test_an_answer_returned_after_the_run_had_returned_is_late_not_lost() -> None:
    ends = {"w": 100, "c1": 150}  # call 1 answered 50 ns after the run returned
    trace = [_timed(s, ends.get(s["span_id"], 90)) for s in _trace()]
    ledger = _ledger(calls=(CallEntry(0, "solve:a", "7"),))
    assert audit_answers(ledger, trace) == AnswerAudit(2, 1, lost=0, not_carried=0, late=1)


def test_an_answer_returned_before_the_run_returned_and_missing_is_lost() -> None:
    trace = [_timed(s, 100 if s["span_id"] == "w" else 90) for s in _trace()]
    ledger = _ledger(calls=(CallEntry(0, "solve:a", "7"),))
    assert audit_answers(ledger, trace) == AnswerAudit(2, 1, lost=1, not_carried=0, late=0)


def test_a_run_that_raised_loses_at_least_one_answer() -> None:
    ledger = _ledger(raised="KeyError", calls=())
    assert audit_answers(ledger, _trace()).lost == 2
    assert audit_answers(ledger, []).lost == 1


def test_runs_are_found_by_the_number_their_workflow_span_carries() -> None:
    spans = [*_trace(), _span("invoke_workflow math", "w2", None, "t2",
                              **{"agentrt.run.task_seed": 4})]  # fmt: skip
    traces = spans_by_trace(spans)
    assert set(traces) == {"t1", "t2"} and len(traces["t1"]) == 6
    assert trace_of_runs(traces) == {3: "t1", 4: "t2"}
