"""Accounting over many graph runs (pure): deadline shares, overshoot quantiles,
and the two audits that must come out at zero, answers lost and spans lost.

What each figure means, exactly:

- **overshoot** of a run: ``max(0, elapsed - deadline)``, elapsed measured by
  the caller from the call of :func:`agentrt.run` to its return; its p50 and
  p99 interpolate linearly between order statistics (the package's one
  quantile, :func:`agentrt.core._stats.quantile`).
- an **answer is lost** when the executor returned a result for a call (its
  ``chat`` span carries ``agentrt.actual.latency_s``, written only once the
  executor returned) but :attr:`RunResult.calls` has no call of that index;
  and a run that raised instead of returning its last state loses every
  answer it had, counted as at least one. An answer whose ``chat`` span ended
  after the run's ``invoke_workflow`` span (the run had returned: a hard cut
  does not wait for calls still in flight) is **late**, not lost: the run
  never had it. Late answers are counted apart; a rising count says calls
  overrun their slices (a loop too lagged to cut them in time).
- an answer is **not carried** when a recorded call's answer key is missing
  from the write of the node task that made the call, although that task
  finished (the runtime dropped what the node returned).
- a **span is lost** when a span the run must have exported is not in the
  trace files: one ``invoke_workflow`` span per run, one ``node`` span per
  node task the run saw start, one ``chat`` span per recorded call (matched by
  call index). A span **left open** is one another span names as its parent
  but that was never exported (the SDK exports a span only when it ends).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from agentrt.core._stats import quantile

__all__ = [
    "CALL_INDEX",
    "RESULT_MARK",
    "AnswerAudit",
    "CallEntry",
    "DeadlineStats",
    "RunLedger",
    "SpanAudit",
    "audit_answers",
    "audit_spans",
    "deadline_stats",
    "spans_by_trace",
    "trace_of_runs",
]

RESULT_MARK = "agentrt.actual.latency_s"
"""Set on a ``chat`` span only when the executor returned a result for the call."""
CALL_INDEX = "agentrt.call.index"
RUN_NUMBER = "agentrt.run.task_seed"
"""The benchmarks pass each run's number as its ``task_seed``: the workflow span
carries it, so a run's trace is found even when the run raised."""


@dataclass(frozen=True)
class DeadlineStats:
    """How a set of runs kept their deadlines."""

    runs: int
    inside: float
    """Share of runs that returned at or before their deadline."""
    inside_margin: float
    """Share of runs that returned at or before their deadline plus the margin."""
    overshoot_p50_ms: float
    overshoot_p99_ms: float
    overshoot_max_ms: float

    def as_row(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def deadline_stats(runs: Iterable[tuple[float, float]], margin_s: float) -> DeadlineStats:
    """Shares and overshoot quantiles of ``(elapsed_s, deadline_s)`` pairs."""
    pairs = list(runs)
    if not pairs:
        return DeadlineStats(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    over = [max(0.0, elapsed - deadline) for elapsed, deadline in pairs]
    n = len(pairs)
    return DeadlineStats(
        runs=n,
        inside=sum(o == 0.0 for o in over) / n,
        inside_margin=sum(o <= margin_s for o in over) / n,
        overshoot_p50_ms=1000 * quantile(over, 0.50),
        overshoot_p99_ms=1000 * quantile(over, 0.99),
        overshoot_max_ms=1000 * max(over),
    )


@dataclass(frozen=True)
class CallEntry:
    """One recorded LLM call of a run: its index, node visit and answer key."""

    index: int
    visit: str
    answer: str | None


@dataclass(frozen=True)
class RunLedger:
    """What one run returned (or that it raised), as the audits need it.

    ``writes`` holds ``(visit, write)`` for every node task that finished,
    ``visit`` being ``"node:task_id"`` as the budget manager keys calls.
    """

    number: int
    graph: str
    deadline_s: float
    elapsed_s: float
    raised: str | None = None
    degraded: bool = False
    trace_id: str | None = None
    calls: tuple[CallEntry, ...] = ()
    nodes_started: int = 0
    writes: tuple[tuple[str, Any], ...] = ()

    @property
    def overshoot_s(self) -> float:
        return max(0.0, self.elapsed_s - self.deadline_s)


@dataclass(frozen=True)
class SpanAudit:
    expected: int = 0
    found: int = 0
    lost: int = 0
    left_open: int = 0

    def __add__(self, other: SpanAudit) -> SpanAudit:
        return SpanAudit(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


@dataclass(frozen=True)
class AnswerAudit:
    produced: int = 0
    """Calls the executor returned a result for (from the chat spans)."""
    recorded: int = 0
    """Calls in the run's result."""
    lost: int = 0
    not_carried: int = 0
    late: int = 0
    """Answers the executor returned after the run had returned (not lost: never had)."""

    def __add__(self, other: AnswerAudit) -> AnswerAudit:
        return AnswerAudit(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def _kind(span: Mapping[str, Any]) -> str:
    return str(span.get("name", "")).split(" ", 1)[0]


def _attributes(span: Mapping[str, Any]) -> Mapping[str, Any]:
    attributes = span.get("attributes")
    return attributes if isinstance(attributes, Mapping) else {}


def spans_by_trace(spans: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Exported spans (JSONL records) grouped by trace id."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for span in spans:
        grouped.setdefault(str(span.get("trace_id")), []).append(span)
    return grouped


def trace_of_runs(traces: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[int, str]:
    """Run number -> trace id, from the run number each workflow span carries."""
    found: dict[int, str] = {}
    for trace_id, spans in traces.items():
        for span in spans:
            number = _attributes(span).get(RUN_NUMBER)
            if _kind(span) == "invoke_workflow" and isinstance(number, int):
                found[number] = trace_id
    return found


def audit_spans(run: RunLedger, spans: Sequence[Mapping[str, Any]]) -> SpanAudit:
    """The run's spans expected against those exported (its trace's records)."""
    kinds = Counter(_kind(s) for s in spans)
    ids = {s.get("span_id") for s in spans}
    parents = {s.get("parent_span_id") for s in spans} - {None}
    left_open = len(parents - ids)
    if run.raised is not None:  # what ran is unknown past the workflow span itself
        lost = max(0, 1 - kinds["invoke_workflow"])
        return SpanAudit(1, kinds["invoke_workflow"], lost, left_open)
    chat_indices = Counter(_attributes(s).get(CALL_INDEX) for s in spans if _kind(s) == "chat")
    missing_chat = sum(1 for c in run.calls if chat_indices[c.index] == 0)
    expected = 1 + run.nodes_started + len(run.calls)
    lost = (
        max(0, 1 - kinds["invoke_workflow"])
        + max(0, run.nodes_started - kinds["node"])
        + missing_chat
    )
    found = min(kinds["invoke_workflow"], 1) + min(kinds["node"], run.nodes_started)
    found += len(run.calls) - missing_chat
    return SpanAudit(expected, found, lost, left_open)


def _leaves(value: Any) -> set[str]:
    """Every scalar inside ``value`` (dicts, lists, tuples) as a string."""
    if isinstance(value, Mapping):
        return set().union(*(_leaves(v) for v in value.values())) if value else set()
    if isinstance(value, list | tuple | set | frozenset):
        return set().union(*(_leaves(v) for v in value)) if value else set()
    return {str(value)}


def _ended_ns(span: Mapping[str, Any]) -> int | None:
    end = span.get("end_time_unix_nano")
    return end if isinstance(end, int) else None


def audit_answers(run: RunLedger, spans: Sequence[Mapping[str, Any]]) -> AnswerAudit:
    """Answers the executor produced against those the run's result holds."""
    answered = [s for s in spans if _kind(s) == "chat" and RESULT_MARK in _attributes(s)]
    produced = {_attributes(s).get(CALL_INDEX) for s in answered}
    if run.raised is not None:
        return AnswerAudit(len(produced), 0, max(1, len(produced)), 0)
    recorded = {c.index for c in run.calls}
    returned = [_ended_ns(s) for s in spans if _kind(s) == "invoke_workflow"]
    returned_ns = returned[0] if len(returned) == 1 else None
    late: set[Any] = set()
    if returned_ns is not None:
        late = {
            _attributes(s).get(CALL_INDEX) for s in answered if (_ended_ns(s) or 0) > returned_ns
        } - recorded
    writes = dict(run.writes)
    not_carried = sum(
        1
        for c in run.calls
        if c.answer is not None and c.visit in writes and c.answer not in _leaves(writes[c.visit])
    )
    return AnswerAudit(
        len(produced), len(recorded), len(produced - recorded - late), not_carried, len(late)
    )
