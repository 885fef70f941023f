"""``agentrt trace summary``: slices against what calls used, SLA hits, tokens.

One row per node and call site over all the runs given, and one line for the
runs themselves (deadline met, degraded, correct when labelled).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from agentrt.core._stats import quantile, share
from agentrt.tracing._attributes import AGENTRT, GEN_AI
from agentrt.tracing._records import RunTrace, SpanRecord

__all__ = ["RunTotals", "SiteSummary", "summarise"]


@dataclass(frozen=True)
class SiteSummary:
    """The calls of one node and call site."""

    node: str
    call_site: str | None
    calls: int
    slice_p50_s: float | None
    used_p50_s: float
    used_p90_s: float
    within_slice: float | None
    predicted_p50_s: float | None
    degraded: int
    cancelled_branches: int
    early_stopped_branches: int
    output_tokens_mean: float
    input_tokens_mean: float
    correct: float | None


@dataclass(frozen=True)
class RunTotals:
    runs: int
    deadline_met: float | None
    degraded: float | None
    correct: float | None
    duration_p50_s: float | None


def summarise(runs: Sequence[RunTrace]) -> tuple[list[SiteSummary], RunTotals]:
    """Per node and call site, and for the runs as a whole."""
    sites: dict[tuple[str, str | None], list[SpanRecord]] = defaultdict(list)
    for run in runs:
        for call in run.calls():
            site = call.get(AGENTRT.CALL_SITE)
            sites[run.node_of(call) or "*", str(site) if site else None].append(call)
    rows = []
    for (node, site), calls in sorted(sites.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        used = [c.number(AGENTRT.ACTUAL_LATENCY_S) or c.duration_s for c in calls]
        slices = [s for c in calls if (s := c.number(AGENTRT.SLICE_S)) is not None]
        inside = [
            (c.number(AGENTRT.ACTUAL_LATENCY_S) or c.duration_s) <= s
            for c in calls
            if (s := c.number(AGENTRT.SLICE_S)) is not None
        ]
        predicted = [p for c in calls if (p := c.number(AGENTRT.PREDICTED_LATENCY_S)) is not None]
        labels = [v for c in calls if isinstance(v := c.get(AGENTRT.ACTUAL_CORRECT), bool)]
        rows.append(
            SiteSummary(
                node=node,
                call_site=site,
                calls=len(calls),
                slice_p50_s=statistics.median(slices) if slices else None,
                used_p50_s=quantile(used, 0.5),
                used_p90_s=quantile(used, 0.9),
                within_slice=share(inside),
                predicted_p50_s=statistics.median(predicted) if predicted else None,
                degraded=sum(1 for c in calls if c.get(AGENTRT.DEGRADED)),
                cancelled_branches=sum(
                    int(c.number(AGENTRT.BRANCHES_CANCELLED) or 0) for c in calls
                ),
                early_stopped_branches=sum(
                    int(c.number(AGENTRT.BRANCHES_EARLY_STOPPED) or 0) for c in calls
                ),
                output_tokens_mean=statistics.fmean(
                    c.number(GEN_AI.USAGE_OUTPUT_TOKENS) or 0.0 for c in calls
                ),
                input_tokens_mean=statistics.fmean(
                    c.number(GEN_AI.USAGE_INPUT_TOKENS) or 0.0 for c in calls
                ),
                correct=share(labels),
            )
        )
    roots = [r.workflow for r in runs if r.workflow is not None]
    totals = RunTotals(
        runs=len(runs),
        deadline_met=share(
            [v for w in roots if isinstance(v := w.get(AGENTRT.RUN_DEADLINE_MET), bool)]
        ),
        degraded=share([v for w in roots if isinstance(v := w.get(AGENTRT.RUN_DEGRADED), bool)]),
        correct=share([v for w in roots if isinstance(v := w.get(AGENTRT.RUN_CORRECT), bool)]),
        duration_p50_s=statistics.median(w.duration_s for w in roots) if roots else None,
    )
    return rows, totals
