"""What tuning reads out of traces: one sample per LLM call, branch and node visit.

Only the attributes agentrt writes are used (see :mod:`agentrt.tracing._attributes`);
a chat span without a config (another library's span in the same trace) is
skipped. ``load`` is the number of branches of *other* calls running on the
same server when a call started, from the overlap of the traced calls.
"""

from __future__ import annotations

import bisect
import heapq
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agentrt.tracing._attributes import AGENTRT, GEN_AI, SERVER_ADDRESS, SERVER_PORT
from agentrt.tracing._records import RunTrace, SpanRecord

__all__ = ["BranchSample", "CallSample", "NodeVisitSample", "RunSample", "extract"]


@dataclass(frozen=True)
class BranchSample:
    """One branch of a call."""

    outcome: str
    tokens: int
    chunks: int
    ttft_s: float | None
    decode_s: float | None
    finish_reason: str | None
    concurrency: int

    @property
    def per_token_s(self) -> float | None:
        """Decode seconds per token after the first (finished branches of 4+ tokens)."""
        if self.outcome != "finished" or self.decode_s is None or self.tokens < 4:
            return None
        return self.decode_s / (self.tokens - 1)

    @property
    def tokens_per_chunk(self) -> float | None:
        return self.tokens / self.chunks if self.chunks > 0 else None


@dataclass(frozen=True)
class CallSample:
    """One executor call (a ``chat`` span) with its plan, predictions and outcome."""

    trace_id: str
    span_id: str
    run_key: str
    node: str
    group: str
    server: str | None
    strategy: str
    n: int
    max_tokens: int
    prompt_tokens: int
    output_tokens: int
    latency_s: float
    slice_s: float | None
    predicted_latency_s: float | None
    predicted_mean_s: float | None
    sla_quantile: float | None
    finished: int
    early_stopped: int
    cancelled: int
    degraded: bool
    correct: bool | None
    draft_tokens: int | None
    start_ns: int
    end_ns: int
    branches: tuple[BranchSample, ...]
    load: int = 0

    @property
    def complete(self) -> bool:
        """Every branch ran to its end: the latency is the config's full latency
        (neither an early stop nor the slice cut it short)."""
        return self.finished >= self.n and self.early_stopped == 0 and self.cancelled == 0

    @property
    def within_slice(self) -> bool | None:
        return None if self.slice_s is None else self.latency_s <= self.slice_s

    @property
    def config_key(self) -> tuple[str, int]:
        return (self.strategy, self.n)


@dataclass(frozen=True)
class NodeVisitSample:
    """One visit of a node: its wall time and the calls made in it."""

    trace_id: str
    node: str
    step: int | None
    duration_s: float
    calls: int
    call_s: float
    start_ns: int


@dataclass(frozen=True)
class RunSample:
    """One run: graph, outcome, deadline, its calls and node visits."""

    trace_id: str
    graph: str | None
    deadline_s: float | None
    duration_s: float
    deadline_met: bool | None
    correct: bool | None
    degraded: bool | None
    calls: tuple[CallSample, ...]
    visits: tuple[NodeVisitSample, ...]


def _int(span: SpanRecord, key: str, default: int = 0) -> int:
    value = span.number(key)
    return default if value is None else int(value)


def _bool(span: SpanRecord, key: str) -> bool | None:
    value = span.get(key)
    return value if isinstance(value, bool) else None


def _branch(span: SpanRecord) -> BranchSample:
    reason = span.get(AGENTRT.BRANCH_FINISH_REASON)
    return BranchSample(
        outcome=str(span.get(AGENTRT.BRANCH_OUTCOME)),
        tokens=_int(span, AGENTRT.BRANCH_TOKENS),
        chunks=_int(span, AGENTRT.BRANCH_CHUNKS),
        ttft_s=span.number(AGENTRT.BRANCH_TTFT_S),
        decode_s=span.number(AGENTRT.BRANCH_DECODE_S),
        finish_reason=str(reason) if reason is not None else None,
        concurrency=_int(span, AGENTRT.BRANCH_CONCURRENCY, 1),
    )


def _call(run: RunTrace, span: SpanRecord, run_correct: bool | None) -> CallSample | None:
    strategy, n = span.get(AGENTRT.STRATEGY), span.number(AGENTRT.N)
    latency = span.number(AGENTRT.ACTUAL_LATENCY_S)
    if strategy is None or n is None or latency is None:
        return None
    address, port = span.get(SERVER_ADDRESS), span.get(SERVER_PORT)
    prompt = span.number(AGENTRT.PROMPT_TOKENS_ESTIMATE) or span.number(GEN_AI.USAGE_INPUT_TOKENS)
    correct = _bool(span, AGENTRT.ACTUAL_CORRECT)
    return CallSample(
        trace_id=run.trace_id,
        span_id=span.span_id,
        run_key=run.trace_id,
        node=run.node_of(span) or "*",
        group=str(span.get(AGENTRT.GROUP) or span.get(AGENTRT.ENDPOINT_GROUP) or "plain"),
        server=f"{address}:{port}" if address is not None else None,
        strategy=str(strategy),
        n=int(n),
        max_tokens=_int(span, GEN_AI.REQUEST_MAX_TOKENS, 256),
        prompt_tokens=int(prompt or 0),
        output_tokens=_int(span, GEN_AI.USAGE_OUTPUT_TOKENS),
        latency_s=latency,
        slice_s=span.number(AGENTRT.SLICE_S),
        predicted_latency_s=span.number(AGENTRT.PREDICTED_LATENCY_S),
        predicted_mean_s=span.number(AGENTRT.PREDICTED_LATENCY_MEAN_S),
        sla_quantile=span.number(AGENTRT.SLA_QUANTILE),
        finished=_int(span, AGENTRT.BRANCHES_FINISHED),
        early_stopped=_int(span, AGENTRT.BRANCHES_EARLY_STOPPED),
        cancelled=_int(span, AGENTRT.BRANCHES_CANCELLED),
        degraded=bool(span.get(AGENTRT.DEGRADED, False)),
        correct=correct if correct is not None else run_correct,
        draft_tokens=int(d) if (d := span.number(AGENTRT.DRAFT_TOKENS)) else None,
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        branches=tuple(_branch(b) for b in run.branches(span)),
    )


def _with_load(calls: Sequence[CallSample]) -> list[CallSample]:
    """Each call's ``load``: branches of other traced calls on its server at its
    start (a call counts while ``start <= t < end``). One sweep per server in
    start order, so many calls cost n log n, not n²."""
    by_server: dict[str, list[int]] = defaultdict(list)
    for i, call in enumerate(calls):
        if call.server is not None:
            by_server[call.server].append(i)
    loads = [0] * len(calls)
    for indexes in by_server.values():
        indexes.sort(key=lambda i: calls[i].start_ns)
        running: list[tuple[int, int]] = []  # (end_ns, n) of calls started so far
        active = k = 0
        while k < len(indexes):
            at = calls[indexes[k]].start_ns
            end = k
            while end < len(indexes) and calls[indexes[end]].start_ns == at:
                started = calls[indexes[end]]
                heapq.heappush(running, (started.end_ns, started.n))
                active += started.n
                end += 1
            while running and running[0][0] <= at:
                active -= heapq.heappop(running)[1]
            for i in indexes[k:end]:
                loads[i] = active - (calls[i].n if calls[i].end_ns > at else 0)
            k = end
    return [
        call if load == call.load else _replace_load(call, load)
        for call, load in zip(calls, loads, strict=True)
    ]


def _replace_load(call: CallSample, load: int) -> CallSample:
    from dataclasses import replace

    return replace(call, load=load)


def _visits(run: RunTrace) -> list[NodeVisitSample]:
    """Each node visit with the calls of that node that ran inside its time
    (calls grouped by node and sorted once, so a trace of many visits stays
    near-linear)."""
    by_node: dict[str, list[SpanRecord]] = defaultdict(list)
    for call in run.calls():
        node = run.node_of(call)
        if node is not None:
            by_node[node].append(call)
    starts: dict[str, list[int]] = {}
    for node, calls in by_node.items():
        calls.sort(key=lambda s: s.start_ns)
        starts[node] = [s.start_ns for s in calls]
    visits = []
    for span in run.nodes():
        name = str(span.get(AGENTRT.NODE))
        calls = by_node.get(name, [])
        inside = []
        for i in range(bisect.bisect_left(starts.get(name, []), span.start_ns), len(calls)):
            if calls[i].start_ns > span.end_ns:
                break
            if calls[i].end_ns <= span.end_ns:
                inside.append(calls[i])
        step = span.number(AGENTRT.NODE_STEP)
        visits.append(
            NodeVisitSample(
                trace_id=run.trace_id,
                node=name,
                step=int(step) if step is not None else None,
                duration_s=span.duration_s,
                calls=len(inside),
                call_s=sum(s.duration_s for s in inside),
                start_ns=span.start_ns,
            )
        )
    return visits


def extract(runs: Iterable[RunTrace]) -> list[RunSample]:
    """One :class:`RunSample` per run, calls carrying their server load."""
    samples: list[RunSample] = []
    all_calls: list[CallSample] = []
    for run in runs:
        root = run.workflow
        correct = _bool(root, AGENTRT.RUN_CORRECT) if root is not None else None
        calls = [c for s in run.calls() if (c := _call(run, s, correct)) is not None]
        all_calls.extend(calls)
        samples.append(
            RunSample(
                trace_id=run.trace_id,
                graph=run.graph,
                deadline_s=root.number(AGENTRT.DEADLINE_S) if root is not None else None,
                duration_s=(
                    root.duration_s if root is not None else (run.end_ns - run.start_ns) / 1e9
                ),
                deadline_met=_bool(root, AGENTRT.RUN_DEADLINE_MET) if root is not None else None,
                correct=correct,
                degraded=_bool(root, AGENTRT.RUN_DEGRADED) if root is not None else None,
                calls=tuple(calls),
                visits=tuple(_visits(run)),
            )
        )
    loaded = {(c.trace_id, c.span_id): c for c in _with_load(all_calls)}
    return [
        RunSample(
            r.trace_id,
            r.graph,
            r.deadline_s,
            r.duration_s,
            r.deadline_met,
            r.correct,
            r.degraded,
            tuple(loaded[c.trace_id, c.span_id] for c in r.calls),
            r.visits,
        )
        for r in samples
    ]
