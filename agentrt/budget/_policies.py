"""Split policies: how much of the time left the current LLM call may use.

Each policy is a small frozen object; ``policy(state) -> seconds`` is a pure
function of one :class:`AllocationState` snapshot (as tenacity's stop and
wait strategies are). Policies compose: ``a | b`` takes the smaller slice,
``a & b`` the larger, :func:`min_of` / :func:`max_of` take any number.

Every policy, composed or not, returns a slice in ``[0, available_s]``, where
``available_s`` is the time left minus the wrap-up reserve and the expected
non-LLM time on the path; with no deadline (infinite time left) the slice is
infinite.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from agentrt.budget._estimates import CallEstimate
from agentrt.budget._utility import water_fill
from agentrt.core._errors import ConfigurationError

__all__ = [
    "POLICY_NAMES",
    "AllocationState",
    "CriticalPath",
    "EqualSplit",
    "MarginalUtility",
    "MaxOf",
    "MinOf",
    "Proportional",
    "SlicePolicy",
    "coerce_policy",
    "max_of",
    "min_of",
    "policy_from_name",
]


_NEGLIGIBLE_S = 1e-12
"""Sums of seconds below this count as zero (a picosecond)."""


@dataclass(frozen=True)
class AllocationState:
    """Everything a policy may look at when slicing one call.

    ``current`` is the node making the call: ``current.count`` is the calls
    left in this visit, this one included (they share the node's share).
    ``downstream`` is the expected remaining critical path after this visit,
    in order. ``fixed_s`` is expected non-LLM time on that path.
    """

    time_left_s: float
    current: CallEstimate
    downstream: tuple[CallEstimate, ...] = ()
    reserve_s: float = 0.0
    fixed_s: float = 0.0
    sla_quantile: float = 0.95
    call_site: str | None = None

    @property
    def available_s(self) -> float:
        """Time the remaining LLM calls may share: time left minus reserve and fixed time."""
        return max(0.0, self.time_left_s - self.reserve_s - self.fixed_s)

    @property
    def calls(self) -> tuple[CallEstimate, ...]:
        """The current node's calls, then the downstream ones."""
        return (self.current, *self.downstream)

    @property
    def remaining_calls(self) -> float:
        """Expected number of sequential calls left, this one included."""
        return sum(c.count for c in self.calls)


class SlicePolicy(ABC):
    """Base of every policy: clamps the raw slice to ``[0, available_s]``."""

    @property
    def name(self) -> str:
        return type(self).__name__

    @abstractmethod
    def raw_slice(self, state: AllocationState) -> float:
        """The policy's own answer, before clamping; ``available_s`` is finite."""

    def __call__(self, state: AllocationState) -> float:
        available = state.available_s
        if math.isinf(available):
            return math.inf
        raw = self.raw_slice(state)
        if math.isnan(raw):
            return 0.0
        return min(max(raw, 0.0), available)

    def __or__(self, other: SlicePolicy) -> MinOf:
        return min_of(self, other)

    def __and__(self, other: SlicePolicy) -> MaxOf:
        return max_of(self, other)


def _share(total: float, weight: float, weights_sum: float, count_sum: float) -> float:
    """``total`` split in proportion to ``weight``; equally if all weights are
    (next to) zero, where rounding would make proportions meaningless."""
    if weights_sum > _NEGLIGIBLE_S:
        return total * (weight / weights_sum)
    return total / count_sum if count_sum > 0 else total


@dataclass(frozen=True)
class EqualSplit(SlicePolicy):
    """Time left over the expected number of calls left on the critical path."""

    @property
    def name(self) -> str:
        return "equal"

    def raw_slice(self, state: AllocationState) -> float:
        return state.available_s / max(state.remaining_calls, 1.0)


@dataclass(frozen=True)
class Proportional(SlicePolicy):
    """Time left in proportion to each call's expected (median) latency."""

    @property
    def name(self) -> str:
        return "proportional"

    def raw_slice(self, state: AllocationState) -> float:
        weights = sum(c.count * c.expected_s for c in state.calls)
        return _share(
            state.available_s, state.current.expected_s, weights, max(state.remaining_calls, 1.0)
        )


@dataclass(frozen=True)
class CriticalPath(SlicePolicy):
    """Keep a quantile reserve for every downstream call, share the slack.

    Each remaining call is first given its ``quantile`` latency (the state's
    SLA quantile when ``quantile`` is None; fan-outs at the quantile of their
    slowest branch); what is left over is shared in proportion to expected
    latency. When even the quantiles do not fit, time is split in proportion
    to them. Downstream calls are never promised less than their quantile
    while the quantiles fit.
    """

    quantile: float | None = None

    def __post_init__(self) -> None:
        if self.quantile is not None and not 0.0 < self.quantile < 1.0:
            raise ConfigurationError(
                f"CriticalPath.quantile must be in (0, 1), got {self.quantile!r}"
            )

    @property
    def name(self) -> str:
        return "critical_path" if self.quantile is None else f"critical_path:{self.quantile:g}"

    def raw_slice(self, state: AllocationState) -> float:
        q = self.quantile if self.quantile is not None else state.sla_quantile
        available = state.available_s
        count = max(state.remaining_calls, 1.0)
        needed = sum(c.count * c.quantile_s(q) for c in state.calls)
        mine = state.current.quantile_s(q)
        slack = available - needed
        if slack < 0:
            return _share(available, mine, needed, count)
        expected = sum(c.count * c.expected_s for c in state.calls)
        return mine + _share(slack, state.current.expected_s, expected, count)


@dataclass(frozen=True)
class MarginalUtility(SlicePolicy):
    """Water-filling over each remaining call's accuracy-vs-time curve.

    Maximises the run's expected success, the product of per-call accuracies
    along the path (a sum of logs), subject to the calls fitting in the time
    available. Calls without a known curve use their latency CDF (the chance
    of finishing within the slice). Time no curve can use is shared in
    proportion to expected latency, so slices still grow with time left.
    """

    @property
    def name(self) -> str:
        return "marginal_utility"

    def raw_slice(self, state: AllocationState) -> float:
        calls = state.calls
        slices = water_fill(calls, state.available_s)
        used = sum(c.count * s for c, s in zip(calls, slices, strict=True))
        leftover = max(0.0, state.available_s - used)
        weights = sum(c.count * c.expected_s for c in calls)
        return slices[0] + _share(
            leftover, state.current.expected_s, weights, max(state.remaining_calls, 1.0)
        )


@dataclass(frozen=True)
class MinOf(SlicePolicy):
    """The smallest slice of several policies (the most cautious)."""

    policies: tuple[SlicePolicy, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return "|".join(p.name for p in self.policies)

    def raw_slice(self, state: AllocationState) -> float:
        return min((p(state) for p in self.policies), default=state.available_s)


@dataclass(frozen=True)
class MaxOf(SlicePolicy):
    """The largest slice of several policies (the most generous)."""

    policies: tuple[SlicePolicy, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return "&".join(p.name for p in self.policies)

    def raw_slice(self, state: AllocationState) -> float:
        return max((p(state) for p in self.policies), default=0.0)


def _flatten(
    kind: type[MinOf] | type[MaxOf], policies: tuple[SlicePolicy, ...]
) -> tuple[SlicePolicy, ...]:
    out: list[SlicePolicy] = []
    for p in policies:
        out.extend(p.policies if isinstance(p, kind) else (p,))
    return tuple(out)


def min_of(*policies: SlicePolicy) -> MinOf:
    """A policy giving the smallest of the ``policies``' slices."""
    return MinOf(_flatten(MinOf, policies))


def max_of(*policies: SlicePolicy) -> MaxOf:
    """A policy giving the largest of the ``policies``' slices."""
    return MaxOf(_flatten(MaxOf, policies))


_BY_NAME: dict[str, SlicePolicy] = {
    "equal": EqualSplit(),
    "proportional": Proportional(),
    "critical_path": CriticalPath(),
    "marginal_utility": MarginalUtility(),
}
POLICY_NAMES = tuple(sorted(_BY_NAME))
"""The names :func:`policy_from_name` knows (``critical_path:0.99`` sets the quantile)."""


def _one_policy(name: str) -> SlicePolicy:
    base, _, arg = name.strip().partition(":")
    if base == "critical_path" and arg:
        try:
            return CriticalPath(quantile=float(arg))
        except ValueError as exc:
            raise ConfigurationError(f"bad quantile in policy {name!r}: {exc}") from None
    if arg or base not in _BY_NAME:
        raise ConfigurationError(
            f"unknown budget policy {name!r}; known: {', '.join(POLICY_NAMES)}"
            " (combine with '|' for the smaller slice, '&' for the larger)"
        )
    return _BY_NAME[base]


def policy_from_name(name: str) -> SlicePolicy:
    """A policy from its name: ``"equal"``, ``"critical_path:0.99"``,
    ``"marginal_utility|critical_path"`` (``|`` = smaller slice, ``&`` = larger)."""
    if "|" in name and "&" in name:
        raise ConfigurationError(f"policy {name!r} mixes '|' and '&'; use one")
    if "|" in name:
        return min_of(*(_one_policy(part) for part in name.split("|")))
    if "&" in name:
        return max_of(*(_one_policy(part) for part in name.split("&")))
    return _one_policy(name)


def coerce_policy(policy: str | SlicePolicy) -> SlicePolicy:
    """Accept a policy object or its name."""
    if isinstance(policy, SlicePolicy):
        return policy
    if isinstance(policy, str):
        return policy_from_name(policy)
    raise ConfigurationError(f"a budget policy must be a name or a SlicePolicy, got {policy!r}")
