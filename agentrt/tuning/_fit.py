"""Fit models from trace samples: latency per endpoint group, statistics per node.

* **Latency model per endpoint group** (:class:`~agentrt.tts._latency.LatencyModel`):
  TTFT against the prompt-token estimate the planner sees and the call's other
  ``n - 1`` branches; per-token decode time of finished branches against the
  call's ``n`` (the concurrency the planner predicts with); for a speculative
  group, the acceptance rate from the tokens each streamed chunk carried
  (a target pass yields ``(1 - a^(g+1)) / (1 - a)`` tokens; solved for ``a``).
* **Per node**: output lengths of finished branches (a
  :class:`~agentrt.tts._length.LengthModel`), call-latency quantiles, calls per
  visit, visits per run, fan-out width, non-LLM time per visit, and, when the
  calls carry labels, accuracy per strategy x N and an accuracy-vs-seconds curve.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agentrt.budget._profile import NodeStats
from agentrt.core._stats import quantile
from agentrt.tts._accuracy import AccuracyModel, MeasuredAccuracy
from agentrt.tts._config import STRATEGY_NAMES, TTSConfig
from agentrt.tts._curve import Curve
from agentrt.tts._latency import LatencyModel, SpeculativeModel
from agentrt.tts._length import LengthModel
from agentrt.tuning._samples import CallSample, RunSample

__all__ = [
    "Fit",
    "NodeFit",
    "acceptance_from_tokens_per_pass",
    "config_of",
    "fit",
    "fit_latency",
    "fit_length",
]

MAX_LENGTH_SAMPLES = 200
"""Output lengths kept per node (evenly spaced order statistics), to keep profiles small."""
MIN_LABELLED_CALLS = 3
"""Labelled calls a config needs before its accuracy is measured."""
DEFAULT_DRAFT_TOKENS = 4


def acceptance_from_tokens_per_pass(tokens_per_pass: float, draft_tokens: int) -> float:
    """The acceptance ``a`` with ``(1 - a^(g+1)) / (1 - a) = tokens_per_pass`` (bisection)."""
    target = min(max(tokens_per_pass, 1.0), draft_tokens + 1 - 1e-6)
    low, high = 0.0, 0.999
    for _ in range(60):
        mid = (low + high) / 2
        if (1 - mid ** (draft_tokens + 1)) / (1 - mid) < target:
            low = mid
        else:
            high = mid
    return round((low + high) / 2, 4)


def config_of(call: CallSample) -> TTSConfig:
    """The config a call ran (temperature as the planner sets it)."""
    strategy = call.strategy if call.strategy in STRATEGY_NAMES else "majority"
    if strategy == "single":
        return TTSConfig("single", 1, call.group, call.max_tokens)
    temperature = 0.0 if strategy == "beam" else 0.7
    return TTSConfig(strategy, call.n, call.group, call.max_tokens, temperature)


def fit_length(calls: Iterable[CallSample], prior: LengthModel | None = None) -> LengthModel:
    """Output lengths of finished branches (thinned to :data:`MAX_LENGTH_SAMPLES`)."""
    tokens = sorted(b.tokens for c in calls for b in c.branches if b.outcome == "finished")
    if not tokens:
        return prior or LengthModel()
    if len(tokens) > MAX_LENGTH_SAMPLES:
        step = (len(tokens) - 1) / (MAX_LENGTH_SAMPLES - 1)
        tokens = [tokens[round(i * step)] for i in range(MAX_LENGTH_SAMPLES)]
    return LengthModel.from_samples(tokens)


def _speculative(calls: Sequence[CallSample]) -> SpeculativeModel | None:
    draft = next((c.draft_tokens for c in calls if c.draft_tokens), None)
    by_n: dict[int, list[float]] = defaultdict(list)
    for call in calls:
        for branch in call.branches:
            ratio = branch.tokens_per_chunk
            if branch.outcome == "finished" and ratio is not None and branch.tokens >= 4:
                by_n[call.n].append(ratio)
    if draft is None and not any(statistics.median(v) > 1.05 for v in by_n.values()):
        return None
    gamma = draft or DEFAULT_DRAFT_TOKENS
    points = [
        (float(n), acceptance_from_tokens_per_pass(statistics.median(v), gamma))
        for n, v in sorted(by_n.items())
    ]
    if not points:
        return None
    return SpeculativeModel(gamma, Curve.of(points, monotone=False))


def fit_latency(
    calls: Sequence[CallSample], prior: dict[str, LatencyModel] | None = None
) -> dict[str, LatencyModel]:
    """One latency model per endpoint group that has finished multi-token branches;
    other groups keep ``prior``'s model."""
    models = dict(prior or {})
    by_group: dict[str, list[CallSample]] = defaultdict(list)
    for call in calls:
        by_group[call.group].append(call)
    for group, group_calls in sorted(by_group.items()):
        ttft = [
            (c.prompt_tokens, c.n - 1, b.ttft_s)
            for c in group_calls
            for b in c.branches
            if b.ttft_s is not None
        ]
        decode = [
            (c.n, per_token)
            for c in group_calls
            for b in c.branches
            if (per_token := b.per_token_s) is not None and per_token > 0
        ]
        if not ttft or not decode:
            continue
        models[group] = LatencyModel.fit(group, ttft, decode, speculative=_speculative(group_calls))
    return models


_P90_RATIOS = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0)


def length_quantiles_for_planning(
    calls: Sequence[CallSample], latency: dict[str, LatencyModel], length: LengthModel
) -> tuple[float, float]:
    """The ``(tokens_p50, tokens_p90)`` a profile should carry for this node.

    A run builds a log-normal length model from these two numbers, and branch
    lengths are rarely log-normal (greedy answers are short, sampled ones run
    to the cap), so the pair is chosen among the observed quantiles to best
    predict the node's complete calls' latencies (least mean absolute log
    error) with the fitted latency models. Without complete calls it is the
    observed p50 and p90.
    """
    observed = (max(1.0, length.quantile(0.5)), max(1.0, length.quantile(0.9)))
    complete = [c for c in calls if c.complete and c.latency_s > 0 and c.group in latency]
    if not complete:
        return observed[0], max(observed)
    candidates = sorted({max(1.0, round(length.quantile(q), 1)) for q in
                         (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)})  # fmt: skip

    def loss(p50: float, p90: float) -> float:
        model = LengthModel.from_quantiles(p50, p90)
        total = 0.0
        for call in complete:
            predicted = latency[call.group].predict_mean(config_of(call), call.prompt_tokens, model)
            total += abs(math.log(max(predicted, 1e-6) / call.latency_s))
        return total / len(complete)

    pairs = [(p50, round(p50 * r, 1)) for p50 in candidates for r in _P90_RATIOS]
    best = min(pairs, key=lambda pair: (loss(*pair), pair))
    return best if loss(*best) < loss(observed[0], max(observed)) else (observed[0], max(observed))


@dataclass(frozen=True)
class NodeFit:
    """What was fitted for one node, and from how much."""

    node: str
    stats: NodeStats
    length: LengthModel
    accuracy: AccuracyModel | None
    calls: int
    visits: int
    labelled: int

    @property
    def runtime_length(self) -> LengthModel:
        """The length model a run builds from this node's profile statistics
        (log-normal through ``tokens_p50`` and ``tokens_p90``)."""
        p50, p90 = self.stats.tokens_p50, self.stats.tokens_p90
        if p50 is None or p90 is None:
            return self.length
        return LengthModel.from_quantiles(p50, p90)


@dataclass(frozen=True)
class Fit:
    """Everything fitted from a set of runs."""

    latency: dict[str, LatencyModel]
    nodes: dict[str, NodeFit]
    runs: int
    calls: int
    calls_per_run: float | None


def _accuracy(
    calls: Sequence[CallSample],
) -> tuple[AccuracyModel | None, tuple[tuple[float, float], ...] | None, int]:
    labelled = [c for c in calls if c.correct is not None]
    by_config: dict[tuple[str, int], list[CallSample]] = defaultdict(list)
    for call in labelled:
        by_config[call.config_key].append(call)
    rows, points = [], []
    for (strategy, n), group in sorted(by_config.items()):
        if len(group) < MIN_LABELLED_CALLS or strategy not in STRATEGY_NAMES:
            continue
        accuracy = sum(1 for c in group if c.correct) / len(group)
        rows.append(MeasuredAccuracy(strategy, n, accuracy, len(group)))
        points.append((statistics.fmean(c.latency_s for c in group), accuracy))
    if not rows:
        return None, None, len(labelled)
    model = AccuracyModel(
        measured=tuple(rows), measured_max_tokens=max(c.max_tokens for c in labelled)
    )
    curve: list[tuple[float, float]] = []
    for seconds, accuracy in sorted(points):
        seconds = round(seconds, 3)
        if curve and accuracy <= curve[-1][1]:
            continue  # not on the frontier: more time, no better
        if curve and seconds <= curve[-1][0]:
            curve[-1] = (curve[-1][0], accuracy)
            continue
        curve.append((seconds, round(accuracy, 4)))
    return model, tuple(curve), len(labelled)


def _node_stats(
    node: str,
    calls: Sequence[CallSample],
    runs: Sequence[RunSample],
    latency: dict[str, LatencyModel],
    length: LengthModel,
    curve: tuple[tuple[float, float], ...] | None,
) -> NodeStats:
    visits = [v for r in runs for v in r.visits if v.node == node]
    graph_runs = [r for r in runs if r.visits]
    fields: dict[str, object] = {}
    if calls:
        seconds = [c.latency_s for c in calls]
        p50, p90, p95, p99 = (quantile(seconds, q) for q in (0.5, 0.9, 0.95, 0.99))
        fields |= {"p50_s": p50, "p90_s": p90, "p95_s": p95, "p99_s": p99}
        cheapest = _cheapest_s(calls, latency, length)
        fields["min_call_s"] = min(p50, cheapest if cheapest is not None else min(seconds))
    if visits:
        fields["calls_per_visit"] = sum(v.calls for v in visits) / len(visits)
        overhead = [max(0.0, v.duration_s - v.call_s) for v in visits]
        fields["overhead_s"] = statistics.median(overhead)
        widths: dict[tuple[str, int | None], int] = defaultdict(int)
        for v in visits:
            widths[v.trace_id, v.step if v.step is not None else v.start_ns] += 1
        fields["fanout"] = max(1.0, statistics.fmean(widths.values()))
        rounds = len(widths)
        fields["expected_visits"] = rounds / max(1, len(graph_runs))
    if not length.is_prior:
        fields["tokens_p50"], fields["tokens_p90"] = length_quantiles_for_planning(
            calls, latency, length
        )
    if curve:
        fields["accuracy_curve"] = curve
    return NodeStats.model_validate({k: _round(v) for k, v in fields.items()})


def _round(value: object) -> object:
    return round(value, 4) if isinstance(value, float) else value


def _cheapest_s(
    calls: Sequence[CallSample], latency: dict[str, LatencyModel], length: LengthModel
) -> float | None:
    prompt = int(statistics.median(c.prompt_tokens for c in calls))
    max_tokens = min(c.max_tokens for c in calls)
    times = [
        model.predict_quantile(TTSConfig("single", 1, group, max_tokens), prompt, length, 0.5)
        for group, model in latency.items()
    ]
    return min(times) if times else None


def fit(
    runs: Sequence[RunSample],
    *,
    prior_latency: dict[str, LatencyModel] | None = None,
) -> Fit:
    """Fit every model from ``runs`` (calls of runs without a graph count for latency only)."""
    calls = [c for r in runs for c in r.calls]
    latency = fit_latency(calls, prior_latency)
    graph_runs = [r for r in runs if r.graph is not None]
    by_node: dict[str, list[CallSample]] = defaultdict(list)
    for run in graph_runs:
        for call in run.calls:
            by_node[call.node].append(call)
    visited = {v.node for r in graph_runs for v in r.visits}
    nodes: dict[str, NodeFit] = {}
    for node in sorted(set(by_node) | visited):
        node_calls = by_node.get(node, [])
        length = fit_length(node_calls)
        accuracy, curve, labelled = _accuracy(node_calls)
        stats = _node_stats(node, node_calls, graph_runs, latency, length, curve)
        visits = sum(1 for r in graph_runs for v in r.visits if v.node == node)
        nodes[node] = NodeFit(node, stats, length, accuracy, len(node_calls), visits, labelled)
    per_run = statistics.fmean(len(r.calls) for r in graph_runs) if graph_runs else None
    return Fit(latency, nodes, len(runs), len(calls), per_run)
