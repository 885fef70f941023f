"""Split policies: exact slices on small cases, and properties for every policy."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agentrt.budget import (
    POLICY_NAMES,
    AllocationState,
    CallEstimate,
    CriticalPath,
    EqualSplit,
    LatencyStats,
    MarginalUtility,
    MaxOf,
    MinOf,
    Proportional,
    SlicePolicy,
    coerce_policy,
    expected_success,
    max_of,
    min_of,
    policy_from_name,
    water_fill,
)
from agentrt.budget._utility import log_hull
from agentrt.core._errors import ConfigurationError

POLICIES: list[SlicePolicy] = [
    EqualSplit(),
    Proportional(),
    CriticalPath(),
    CriticalPath(quantile=0.99),
    MarginalUtility(),
    EqualSplit() | CriticalPath(),
    MarginalUtility() & Proportional(),
    min_of(MarginalUtility(), CriticalPath(0.9), EqualSplit()),
]
IDS = [p.name for p in POLICIES]


def stats(p50: float, p90: float, p95: float, p99: float, min_s: float = 0.0) -> LatencyStats:
    return LatencyStats(p50, p90, p95, p99, min_s)


def call(
    node: str,
    count: float = 1.0,
    latency: LatencyStats | None = None,
    parallel: float = 1.0,
    curve: tuple[tuple[float, float], ...] | None = None,
) -> CallEstimate:
    return CallEstimate(node, count, latency or LatencyStats.constant(1.0), parallel, curve)


# -- strategies ---------------------------------------------------------------

seconds = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)


@st.composite
def latency_stats(draw: st.DrawFn) -> LatencyStats:
    points = sorted(draw(st.lists(seconds, min_size=5, max_size=5)))
    return LatencyStats(points[1], points[2], points[3], points[4], points[0])


@st.composite
def curves(draw: st.DrawFn) -> tuple[tuple[float, float], ...]:
    times = sorted(set(draw(st.lists(seconds, min_size=1, max_size=6))))
    accuracies = draw(st.lists(st.floats(0.0, 1.0), min_size=len(times), max_size=len(times)))
    return tuple(zip(times, accuracies, strict=True))


@st.composite
def estimates(draw: st.DrawFn, *, min_count: float = 0.0) -> CallEstimate:
    return CallEstimate(
        node=draw(st.sampled_from(["a", "b", "c", "d"])),
        count=draw(st.floats(min_value=min_count, max_value=12.0)),
        latency=draw(latency_stats()),
        parallel=draw(st.sampled_from([1.0, 1.0, 2.0, 5.0, 16.0])),
        curve=draw(st.none() | curves()),
    )


@st.composite
def states(draw: st.DrawFn) -> AllocationState:
    return AllocationState(
        time_left_s=draw(st.floats(min_value=0.0, max_value=5000.0)),
        current=draw(estimates(min_count=1.0)),
        downstream=tuple(draw(st.lists(estimates(), max_size=6))),
        reserve_s=draw(st.floats(min_value=0.0, max_value=50.0)),
        fixed_s=draw(st.floats(min_value=0.0, max_value=50.0)),
        sla_quantile=draw(st.floats(min_value=0.5, max_value=0.999)),
    )


def with_time(state: AllocationState, time_left_s: float) -> AllocationState:
    return AllocationState(
        time_left_s=time_left_s,
        current=state.current,
        downstream=state.downstream,
        reserve_s=state.reserve_s,
        fixed_s=state.fixed_s,
        sla_quantile=state.sla_quantile,
    )


def tol(x: float) -> float:
    return 1e-9 * max(1.0, abs(x))


# -- properties of every policy ----------------------------------------------


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
@given(state=states())
def test_slice_is_never_negative_nor_more_than_time_left_minus_reserve(
    policy: SlicePolicy, state: AllocationState
) -> None:
    slice_s = policy(state)
    assert slice_s >= 0.0
    assert slice_s <= max(0.0, state.time_left_s - state.reserve_s) + tol(state.time_left_s)
    assert slice_s <= state.available_s + tol(state.time_left_s)


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
@given(state=states())
def test_the_node_calls_together_never_overcommit(
    policy: SlicePolicy, state: AllocationState
) -> None:
    assert state.current.count * policy(state) <= state.available_s + tol(state.time_left_s) * 10


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
@given(state=states(), extra=st.floats(min_value=0.0, max_value=5000.0))
def test_slices_are_monotone_in_time_left(
    policy: SlicePolicy, state: AllocationState, extra: float
) -> None:
    less = policy(state)
    more = policy(with_time(state, state.time_left_s + extra))
    assert more >= less - tol(state.time_left_s + extra) * 10


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
@given(state=states())
def test_slices_are_deterministic(policy: SlicePolicy, state: AllocationState) -> None:
    first = policy(state)
    copy = with_time(state, state.time_left_s)
    assert policy(copy) == first
    assert coerce_policy(policy.name)(state) == first


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
@given(state=states())
def test_no_deadline_means_no_limit(policy: SlicePolicy, state: AllocationState) -> None:
    assert policy(with_time(state, math.inf)) == math.inf


@pytest.mark.parametrize("quantile", [None, 0.5, 0.9, 0.99])
@given(state=states())
def test_critical_path_keeps_downstream_quantiles_when_they_fit(
    quantile: float | None, state: AllocationState
) -> None:
    q = state.sla_quantile if quantile is None else quantile
    needed = sum(c.count * c.quantile_s(q) for c in state.calls)
    assume(needed <= state.available_s)
    slice_s = CriticalPath(quantile)(state)
    downstream = sum(c.count * c.quantile_s(q) for c in state.downstream)
    assert state.current.count * slice_s + downstream <= state.available_s + tol(needed) * 10
    assert slice_s >= state.current.quantile_s(q) - tol(needed)


@given(state=states(), weights=st.lists(st.floats(0.0, 1.0), min_size=7, max_size=7))
@settings(max_examples=200)
def test_water_filling_beats_any_other_feasible_split(
    state: AllocationState, weights: list[float]
) -> None:
    calls = state.calls
    best = water_fill(calls, state.available_s)
    assert sum(c.count * s for c, s in zip(calls, best, strict=True)) <= state.available_s + 1e-6
    assume(sum(weights[: len(calls)]) > 0)
    total = sum(w * c.count for w, c in zip(weights, calls, strict=False))
    assume(total > 0)
    other = [state.available_s * w / total for w, _ in zip(weights, calls, strict=False)]
    # Subnormal weights round (5e-324 * 1.25 == 5e-324): compare feasible splits only.
    assume(sum(c.count * s for c, s in zip(calls, other, strict=True)) <= state.available_s)
    assert expected_success(calls, best) >= expected_success(calls, other) * (1 - 1e-9)


# -- exact cases ----------------------------------------------------------------


def chain_state(
    time_left_s: float, *latencies: LatencyStats, reserve_s: float = 0.0
) -> AllocationState:
    current, *rest = (call(f"n{i}", latency=lat) for i, lat in enumerate(latencies))
    return AllocationState(time_left_s, current, tuple(rest), reserve_s=reserve_s)


def test_equal_split_divides_by_calls_left() -> None:
    state = chain_state(30.0, *(LatencyStats.constant(1.0),) * 3, reserve_s=3.0)
    assert EqualSplit()(state) == pytest.approx(9.0)


def test_calls_in_one_node_share_its_share() -> None:
    state = AllocationState(30.0, call("a", count=2), (call("b"),))
    assert EqualSplit()(state) == pytest.approx(10.0)


def test_proportional_follows_expected_latency() -> None:
    state = chain_state(40.0, LatencyStats.constant(1.0), LatencyStats.constant(3.0))
    assert Proportional()(state) == pytest.approx(10.0)


def test_proportional_with_zero_latencies_falls_back_to_equal() -> None:
    state = chain_state(40.0, LatencyStats.constant(0.0), LatencyStats.constant(0.0))
    assert Proportional()(state) == pytest.approx(20.0)


def test_critical_path_reserves_quantiles_and_shares_slack() -> None:
    slow_tail = stats(1.0, 4.0, 5.0, 9.0)
    state = AllocationState(20.0, call("a", latency=slow_tail), (call("b", latency=slow_tail),))
    # p95 = 5 each; slack 10 shared equally (same medians): 5 + 5
    assert CriticalPath()(state) == pytest.approx(10.0)
    # not enough for the quantiles: split in proportion to them
    assert CriticalPath()(with_time(state, 6.0)) == pytest.approx(3.0)
    assert CriticalPath(0.5)(with_time(state, 6.0)) == pytest.approx(3.0)


def test_fanout_shares_wall_clock_but_pays_the_tail() -> None:
    latency = stats(2.0, 4.0, 5.0, 9.0)
    fan = call("map", latency=latency, parallel=8)
    assert fan.expected_s > latency.p50_s  # the slowest of 8 is slower than one
    assert fan.quantile_s(0.95) < 8 * latency.p95_s  # but nothing like 8 in a row
    assert fan.quantile_s(0.95) == pytest.approx(latency.quantile(0.95 ** (1 / 8)))


def test_marginal_utility_favours_the_call_that_gains_most() -> None:
    steep = ((1.0, 0.2), (2.0, 0.9))
    flat = ((1.0, 0.6), (2.0, 0.7))
    state = AllocationState(3.0, call("a", curve=steep), (call("b", curve=flat),))
    slices = water_fill(state.calls, 3.0)
    assert slices == pytest.approx([2.0, 1.0])
    assert MarginalUtility()(state) == pytest.approx(2.0)
    assert expected_success(state.calls, slices) == pytest.approx(0.9 * 0.6)


def test_marginal_utility_shares_time_no_curve_can_use() -> None:
    curve = ((1.0, 0.8),)
    state = AllocationState(10.0, call("a", curve=curve), (call("b", curve=curve),))
    assert MarginalUtility()(state) == pytest.approx(5.0)


def test_log_hull_drops_dominated_points_and_flat_tails() -> None:
    hull = log_hull(((1.0, 0.5), (2.0, 0.4), (3.0, 0.9), (5.0, 0.9)))
    assert [t for t, _ in hull] == [0.0, 1.0, 3.0]


def test_composition_takes_smaller_or_larger() -> None:
    state = chain_state(40.0, LatencyStats.constant(1.0), LatencyStats.constant(3.0))
    small, large = Proportional()(state), EqualSplit()(state)
    assert (Proportional() | EqualSplit())(state) == small
    assert (Proportional() & EqualSplit())(state) == large
    nested = (Proportional() | EqualSplit()) | CriticalPath()
    assert isinstance(nested, MinOf) and len(nested.policies) == 3
    assert isinstance(max_of(EqualSplit()), MaxOf)
    assert nested.name == "proportional|equal|critical_path"


def test_policies_are_frozen_values() -> None:
    assert CriticalPath(0.9) == CriticalPath(0.9)
    assert hash(EqualSplit()) == hash(EqualSplit())
    with pytest.raises(AttributeError):
        CriticalPath(0.9).quantile = 0.5  # type: ignore[misc]


@pytest.mark.parametrize("name", [*POLICY_NAMES, "critical_path:0.99", "equal|proportional"])
def test_policy_from_name_round_trips(name: str) -> None:
    assert policy_from_name(name).name == name


@pytest.mark.parametrize(
    "bad", ["fastest", "critical_path:x", "critical_path:1.5", "equal:3", "equal|x", "a|b&c"]
)
def test_unknown_policy_names_are_configuration_errors(bad: str) -> None:
    with pytest.raises(ConfigurationError):
        policy_from_name(bad)


def test_coerce_accepts_objects_and_names_only() -> None:
    policy = CriticalPath(0.9)
    assert coerce_policy(policy) is policy
    assert coerce_policy("equal") == EqualSplit()
    with pytest.raises(ConfigurationError):
        coerce_policy(3)  # type: ignore[arg-type]


def test_state_arithmetic() -> None:
    state = AllocationState(
        10.0, call("a", count=2), (call("b", count=1.5),), reserve_s=2.0, fixed_s=3.0
    )
    assert state.available_s == 5.0
    assert state.remaining_calls == 3.5
    assert AllocationState(1.0, call("a"), reserve_s=5.0).available_s == 0.0


def test_estimates_validate() -> None:
    with pytest.raises(ValueError, match="p50"):
        LatencyStats(3.0, 2.0, 4.0, 5.0)
    with pytest.raises(ValueError, match="count"):
        call("a", count=-1)
    with pytest.raises(ValueError, match="parallel"):
        call("a", parallel=0.5)
    latency = stats(1.0, 2.0, 3.0, 5.0, 0.5)
    assert latency.quantile(0.0) == 0.5
    assert latency.quantile(0.7) == pytest.approx(1.5)
    assert latency.quantile(0.999) > 5.0
    assert latency.cdf_points()[0] == (0.5, 0.0)
