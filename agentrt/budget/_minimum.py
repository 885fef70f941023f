"""The least time a whole run is planned to need: the admission check of a deadline.

:func:`minimum_run_s` walks the path the budget manager plans with (the longest
expected path from the graph's entry to its end, loops counted with their
expected visits, a ``Send`` fan-out as one step) and prices every LLM call on
it at the profile's predicted minimum latency (``min_call_s``, the cheapest
config with nothing queued), plus each node's non-LLM ``overhead_s``. A deadline
shorter than that cannot be met even if every call runs its cheapest config, so
a server refuses such a run before it starts rather than return it degraded.
Pure: a function of the profile and the topology.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentrt.budget._profile import BudgetProfile
from agentrt.budget._topology import GraphTopology

__all__ = ["minimum_run_s"]


def minimum_run_s(
    profile: BudgetProfile,
    topology: GraphTopology | None = None,
    *,
    start: Sequence[str] | None = None,
) -> float:
    """Seconds a run of the graph needs at least, as the budget manager plans it.

    With a ``topology``: the costliest path from any entry node (or from each of
    ``start``, the nodes a resumed run goes on from; parallel starts share wall
    clock, so the longest of them counts), each node at ``expected_visits ×
    (calls_per_visit × min_call_s + overhead_s)``. Without one (the graph is
    unknown): ``calls_per_run`` calls of the default node.
    """
    if topology is None:
        return profile.calls_per_run * profile.default_node.min_call_s

    def cost(node: str) -> float:
        stats = profile.stats_for(node)
        return stats.expected_visits * (stats.calls_per_visit * stats.min_call_s + stats.overhead_s)

    best = 0.0
    for node in topology.entry if start is None else start:
        if node not in topology:  # START -> END, or a node the topology does not draw
            continue
        best = max(best, sum(cost(n) for n in topology.remaining_path(node, cost)))
    return best
