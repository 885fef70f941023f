"""The per-run budget manager: one slice of the time left for every LLM call.

At each call the manager takes a snapshot (time left on the run's deadline,
visits and calls so far, the expected remaining path from the topology and
the profile), asks its policy for a slice, and checks before spending that the
call's predicted minimum latency fits. Nothing is carried over between calls
but counts: every slice is re-planned from the time actually left, so a slow
early step shrinks later slices and a fast one grows them.

The manager reads time only through its deadline's clock. It is safe to call
from the parallel tasks of one LangGraph step (a lock guards its counters).
"""

from __future__ import annotations

import contextvars
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from agentrt.budget._allocation import Allocation, decide
from agentrt.budget._estimates import CallEstimate
from agentrt.budget._policies import AllocationState, SlicePolicy, coerce_policy
from agentrt.budget._profile import BudgetProfile
from agentrt.budget._report import BudgetReport, CallRecord, NodeRecord
from agentrt.budget._topology import GraphTopology
from agentrt.core._clock import Clock
from agentrt.core._deadline import Deadline, deadline_scope
from agentrt.core._errors import BudgetRefused, ConfigurationError, TokenCapReached

__all__ = ["BudgetManager", "budget_scope", "current_budget"]


@dataclass
class _Visit:
    node: str
    key: str
    round: int
    started_at: float
    calls: int = 0


@dataclass
class _CallEntry:
    allocation: Allocation
    used_s: float | None = None
    tokens: int | None = None


class BudgetManager:
    """Splits one run's deadline across the LLM calls its graph will make.

    ``topology`` may be None (the graph is unknown: the run is taken as
    ``profile.calls_per_run`` calls in a row); ``policy`` defaults to the
    profile spec's.
    """

    def __init__(
        self,
        deadline: Deadline,
        profile: BudgetProfile | None = None,
        topology: GraphTopology | None = None,
        policy: str | SlicePolicy | None = None,
    ) -> None:
        self._deadline = deadline
        self._profile = profile or BudgetProfile.default()
        self._topology = topology
        self._policy = coerce_policy(policy if policy is not None else self._profile.spec.policy)
        self._lock = threading.RLock()
        self._rounds: dict[str, int] = {}
        self._expected: dict[str, float] = {}
        self._last_step: dict[str, int] = {}
        self._busy_s: dict[str, float] = {}
        self._active: dict[tuple[str, str], _Visit] = {}
        self._calls: list[_CallEntry] = []
        self._tokens_used = 0

    @classmethod
    def for_run(
        cls,
        profile: BudgetProfile | None = None,
        *,
        graph: Any = None,
        deadline_s: float | None = None,
        policy: str | SlicePolicy | None = None,
        clock: Clock | None = None,
    ) -> BudgetManager:
        """A manager with a fresh deadline (``deadline_s`` or the spec's, soft
        instant ``reserve_s`` before it) for a compiled graph (or None)."""
        profile = profile or BudgetProfile.default()
        if deadline_s is not None:
            profile = profile.with_spec(deadline_s=deadline_s)
        spec = profile.spec
        deadline = Deadline.after(spec.deadline_s, clock=clock, soft_margin_s=spec.reserve_s)
        topology = GraphTopology.from_langgraph(graph) if graph is not None else None
        return cls(deadline, profile, topology, policy)

    # -- reading --------------------------------------------------------------

    @property
    def deadline(self) -> Deadline:
        return self._deadline

    @property
    def profile(self) -> BudgetProfile:
        return self._profile

    @property
    def topology(self) -> GraphTopology | None:
        return self._topology

    @property
    def policy(self) -> SlicePolicy:
        return self._policy

    @property
    def tokens_left(self) -> int | None:
        cap = self._profile.spec.token_cap
        return None if cap is None else cap - self._tokens_used

    @property
    def degraded(self) -> bool:
        """Whether any call so far was degraded or refused."""
        with self._lock:
            return any(not entry.allocation.ok for entry in self._calls)

    # -- node visits ----------------------------------------------------------

    def expect_visits(self, node: str, visits: float) -> None:
        """Tell the manager that ``node`` makes ``visits`` rounds in this run in all,
        in place of the profile's ``expected_visits`` (a loop whose length the
        graph knows once it has read its input: the number of steps to solve).
        Every slice from now on is planned for it."""
        if isinstance(visits, bool) or not isinstance(visits, int | float):
            raise ConfigurationError(f"visits must be a number, got {visits!r}")
        if not (math.isfinite(visits) and visits >= 0):
            raise ConfigurationError(f"visits must be finite and >= 0, got {visits!r}")
        if self._topology is not None and node not in self._topology:
            raise ConfigurationError(
                f"node {node!r} is not in the graph (nodes: {sorted(self._topology.nodes)})"
            )
        with self._lock:
            self._expected[node] = float(visits)

    def node_started(self, node: str, visit: str | None = None, *, step: int | None = None) -> str:
        """Record that a visit of ``node`` began; returns its key.

        Parallel tasks of one node (``Send``) pass distinct ``visit`` keys and
        make one round: those in the same LangGraph ``step`` when it is given
        (the ``langgraph_step`` metadata), else those that overlap in time.
        """
        key = visit if visit is not None else node
        with self._lock:
            if (node, key) in self._active:
                return key
            if step is not None:
                new_round = self._last_step.get(node) != step
                self._last_step[node] = step
            else:
                new_round = not any(n == node for n, _ in self._active)
            if new_round or node not in self._rounds:
                self._rounds[node] = self._rounds.get(node, 0) + 1
            self._active[(node, key)] = _Visit(
                node, key, self._rounds[node], self._deadline.clock.now()
            )
            return key

    def node_finished(self, node: str, visit: str | None = None) -> None:
        """Record that a visit of ``node`` ended (unknown visits are ignored)."""
        key = visit if visit is not None else node
        with self._lock:
            entry = self._active.pop((node, key), None)
            if entry is not None:
                spent = self._deadline.clock.now() - entry.started_at
                self._busy_s[node] = self._busy_s.get(node, 0.0) + spent

    # -- allocation -----------------------------------------------------------

    def state_for(self, node: str, visit: str | None = None) -> AllocationState:
        """The snapshot a policy would see for the next call of ``node`` now
        (records nothing: a visit not yet started is assumed to start now)."""
        key = visit if visit is not None else node
        with self._lock:
            if (node, key) in self._active:
                return self._state(node, self._active[(node, key)], None)
            rounds, last_step = dict(self._rounds), dict(self._last_step)
            self.node_started(node, key)
            try:
                return self._state(node, self._active[(node, key)], None)
            finally:
                del self._active[(node, key)]
                self._rounds, self._last_step = rounds, last_step

    def allocate(
        self,
        node: str,
        call_site: str | None = None,
        *,
        visit: str | None = None,
        step: int | None = None,
        min_latency_s: float | None = None,
    ) -> Allocation:
        """A slice for the next LLM call made by ``node``, checked before spending.

        ``visit`` and ``step`` are as for :meth:`node_started` (a visit not
        started yet starts here). ``min_latency_s`` overrides the profile's
        predicted minimum. A refused
        call raises (:class:`BudgetRefused`, :class:`TokenCapReached`, or the
        deadline's :class:`DeadlineExceeded` once it has passed) when the spec
        says ``on_expiry = "raise"``; otherwise it comes back with
        ``status == "refused"``.
        """
        key = visit if visit is not None else node
        with self._lock:
            if (node, key) not in self._active:
                self.node_started(node, key, step=step)
            current_visit = self._active[(node, key)]
            state = self._state(node, current_visit, call_site)
            planned_s = self._policy(state)
            min_s = (
                min_latency_s
                if min_latency_s is not None
                else self._profile.stats_for(node).min_call_s
            )
            tokens_left = self.tokens_left
            status, slice_s, reason = decide(
                planned_s, min_s, state.time_left_s, state.reserve_s, tokens_left
            )
            max_tokens = None
            if tokens_left is not None:
                max_tokens = max(0, math.floor(tokens_left / max(state.remaining_calls, 1.0)))
            allocation = Allocation(
                index=len(self._calls),
                node=node,
                call_site=call_site,
                visit=key,
                slice_s=slice_s,
                planned_s=planned_s,
                deadline=self._child(slice_s, node),
                predicted_min_s=min_s,
                status=status,
                reason=reason,
                time_left_s=state.time_left_s,
                available_s=state.available_s,
                policy=self._policy.name,
                path=state.calls,
                max_tokens=max_tokens,
                started_at=self._deadline.clock.now(),
            )
            current_visit.calls += 1
            self._calls.append(_CallEntry(allocation))
        self._raise_if_refused(allocation)
        return allocation

    def check_before_spending(self, allocation: Allocation, min_latency_s: float) -> Allocation:
        """Re-check a call against a better minimum-latency prediction (from
        the executor's latency model) before it starts; returns the updated
        allocation (its deadline still counted from when it was allocated), or
        raises as :meth:`allocate` does."""
        with self._lock:
            status, slice_s, reason = decide(
                allocation.planned_s,
                min_latency_s,
                allocation.time_left_s,
                self._profile.spec.reserve_s,
                self.tokens_left,
            )
            elapsed = self._deadline.clock.now() - allocation.started_at
            updated = replace(
                allocation,
                slice_s=slice_s,
                deadline=self._child(max(0.0, slice_s - elapsed), allocation.node),
                predicted_min_s=min_latency_s,
                status=status,
                reason=reason,
            )
            self._calls[allocation.index].allocation = updated
        self._raise_if_refused(updated)
        return updated

    def call_finished(
        self, allocation: Allocation, used_s: float | None = None, tokens: int = 0
    ) -> None:
        """Record what a call actually used (``used_s`` defaults to the time
        since it was allocated, on the deadline's clock)."""
        if used_s is None:
            used_s = self._deadline.clock.now() - allocation.started_at
        with self._lock:
            entry = self._calls[allocation.index]
            self._tokens_used -= entry.tokens or 0  # a repeated report replaces the first
            entry.used_s = max(0.0, used_s)
            entry.tokens = max(0, tokens)
            self._tokens_used += entry.tokens

    # -- reporting ------------------------------------------------------------

    def report(self) -> BudgetReport:
        """Allocated vs used, per call and per node, for the run table."""
        with self._lock:
            calls = tuple(
                CallRecord(
                    index=e.allocation.index,
                    node=e.allocation.node,
                    call_site=e.allocation.call_site,
                    slice_s=e.allocation.slice_s,
                    predicted_min_s=e.allocation.predicted_min_s,
                    status=e.allocation.status,
                    used_s=e.used_s,
                    tokens=e.tokens,
                )
                for e in self._calls
            )
            names = sorted({*self._rounds, *(c.node for c in calls)})
            nodes = tuple(
                NodeRecord(
                    node=name,
                    rounds=self._rounds.get(name, 0),
                    calls=sum(1 for c in calls if c.node == name),
                    allocated_s=sum(c.slice_s for c in calls if c.node == name),
                    used_s=sum(c.used_s or 0.0 for c in calls if c.node == name),
                    busy_s=self._busy_s.get(name, 0.0),
                )
                for name in names
            )
            return BudgetReport(
                budget_s=self._deadline.budget_s,
                elapsed_s=self._deadline.elapsed(),
                remaining_s=self._deadline.remaining(),
                policy=self._policy.name,
                tokens_used=self._tokens_used,
                token_cap=self._profile.spec.token_cap,
                degraded=any(c.status != "ok" for c in calls),
                calls=calls,
                nodes=nodes,
            )

    snapshot = report

    # -- internals ------------------------------------------------------------

    def _child(self, slice_s: float, node: str) -> Deadline:
        return self._deadline.child(at_most_s=slice_s, scope=f"call:{node}")

    def _raise_if_refused(self, allocation: Allocation) -> None:
        if not allocation.refused or self._profile.spec.on_expiry != "raise":
            return
        cap = self._profile.spec.token_cap
        if cap is not None and self._tokens_used >= cap:
            raise TokenCapReached(cap, self._tokens_used)
        if self._deadline.expired:
            raise self._deadline.exceeded()
        raise BudgetRefused(allocation.what, allocation.slice_s, allocation.predicted_min_s)

    def _state(self, node: str, visit: _Visit, call_site: str | None) -> AllocationState:
        spec = self._profile.spec
        stats = self._profile.stats_for(node)
        width = max(stats.fanout, sum(1 for n, _ in self._active if n == node))
        current = CallEstimate(
            node,
            max(1.0, stats.calls_per_visit - visit.calls),
            stats.latency,
            width,
            stats.curve,
        )
        if self._topology is not None and node in self._topology:
            downstream, fixed_s = self._path_from_topology(node, self._topology)
        else:
            downstream, fixed_s = self._path_without_topology(current), 0.0
        return AllocationState(
            time_left_s=self._deadline.remaining(),
            current=current,
            downstream=downstream,
            reserve_s=spec.reserve_s,
            fixed_s=fixed_s,
            sla_quantile=spec.sla_quantile,
            call_site=call_site,
        )

    def _path_without_topology(self, current: CallEstimate) -> tuple[CallEstimate, ...]:
        """No graph: the run is ``calls_per_run`` calls of the default node in a
        row; once past that, plan for one more."""
        left = self._profile.calls_per_run - len(self._calls) - current.count
        count = left if len(self._calls) + current.count <= self._profile.calls_per_run else 1.0
        if count <= 0:
            return ()
        stats = self._profile.default_node
        return (CallEstimate("*", count, stats.latency, stats.fanout, stats.curve),)

    def _visits_left(self, node: str, current: str, topology: GraphTopology) -> float:
        """Rounds of ``node`` still expected after now. In the current node's
        loop, a node already past its expected visits is given one more."""
        expected = self._expected.get(node, self._profile.stats_for(node).expected_visits)
        done = self._rounds.get(node, 0)
        same_loop = topology.in_loop(current) and node in topology.component(current)
        if same_loop and done > expected:
            return 1.0
        return max(0.0, expected - done)

    def _path_from_topology(
        self, node: str, topology: GraphTopology
    ) -> tuple[tuple[CallEstimate, ...], float]:
        def estimate(name: str, visits: float) -> CallEstimate:
            stats = self._profile.stats_for(name)
            count = visits * stats.calls_per_visit
            return CallEstimate(name, count, stats.latency, stats.fanout, stats.curve)

        def cost(name: str) -> float:
            visits = self._visits_left(name, node, topology)
            stats = self._profile.stats_for(name)
            return estimate(name, visits).count * estimate(name, 1).expected_s + (
                visits * stats.overhead_s
            )

        steps: list[CallEstimate] = []
        fixed_s = 0.0
        for name in topology.remaining_path(node, cost):
            visits = self._visits_left(name, node, topology)
            if visits <= 0:
                continue
            fixed_s += visits * self._profile.stats_for(name).overhead_s
            step = estimate(name, visits)
            if step.count > 0:
                steps.append(step)
        return tuple(steps), fixed_s


_current: contextvars.ContextVar[BudgetManager | None] = contextvars.ContextVar(
    "agentrt_budget", default=None
)


def current_budget() -> BudgetManager | None:
    """The budget manager of the run in this context, or None."""
    return _current.get()


@contextmanager
def budget_scope(manager: BudgetManager) -> Iterator[BudgetManager]:
    """Make ``manager`` (and its deadline) ambient inside the block."""
    token = _current.set(manager)
    try:
        with deadline_scope(manager.deadline):
            yield manager
    finally:
        _current.reset(token)
