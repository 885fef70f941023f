"""The budget manager, driven by hand and from inside real LangGraph graphs.

Time is a FakeClock, advanced by hand or (in the real graphs) jumping to the
nodes' fake sleeps; nothing waits for real.
"""

from __future__ import annotations

import asyncio
import math
import operator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from agentrt.budget import (
    BudgetManager,
    BudgetProfile,
    BudgetSpec,
    GraphTopology,
    NodeStats,
    budget_scope,
    current_budget,
    decide,
)
from agentrt.core._clock import FakeClock
from agentrt.core._deadline import Deadline, current_deadline
from agentrt.core._errors import (
    BudgetRefused,
    ConfigurationError,
    DeadlineExceeded,
    TokenCapReached,
)


def const(seconds: float, **fields: Any) -> NodeStats:
    """A node whose calls always take ``seconds`` (minimum a quarter of it)."""
    return NodeStats(
        p50_s=seconds,
        p90_s=seconds,
        p95_s=seconds,
        p99_s=seconds,
        min_call_s=seconds / 4,
        **fields,
    )


def profile(
    policy: str = "equal", nodes: dict[str, NodeStats] | None = None, **spec: Any
) -> BudgetProfile:
    return BudgetProfile(
        spec=BudgetSpec(policy=policy, **spec), default_node=const(2.0), nodes=nodes or {}
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=0.0)


def run_chain_by_hand(clock: FakeClock, work_s: dict[str, float]) -> dict[str, float]:
    manager = BudgetManager(
        Deadline.after(30, clock=clock), profile(), GraphTopology.chain(["a", "b", "c"])
    )
    slices = {}
    for node in ("a", "b", "c"):
        manager.node_started(node)
        allocation = manager.allocate(node)
        slices[node] = allocation.slice_s
        clock.advance(work_s[node])
        manager.call_finished(allocation)
        manager.node_finished(node)
    return slices


def test_chain_replans_when_a_node_finishes_early_or_late(clock: FakeClock) -> None:
    early = run_chain_by_hand(clock, {"a": 2.0, "b": 3.0, "c": 1.0})
    late = run_chain_by_hand(FakeClock(start=0.0), {"a": 8.0, "b": 3.0, "c": 1.0})
    assert early == pytest.approx({"a": 10.0, "b": 14.0, "c": 25.0})
    assert late == pytest.approx({"a": 10.0, "b": 11.0, "c": 19.0})


def test_allocation_carries_a_child_deadline(clock: FakeClock) -> None:
    run = Deadline.after(30, clock=clock)
    manager = BudgetManager(run, profile(), GraphTopology.chain(["a", "b", "c"]))
    allocation = manager.allocate("a", "prompt-1")
    assert allocation.ok and allocation.index == 0
    assert allocation.deadline.remaining() == pytest.approx(10.0)
    assert allocation.deadline.scope == "call:a"
    assert allocation.deadline.hard_at <= run.hard_at
    assert allocation.policy == "equal"
    assert [c.node for c in allocation.path] == ["a", "b", "c"]
    assert allocation.what == "call #0 in node 'a' at prompt-1"


def test_calls_in_one_node_share_its_share(clock: FakeClock) -> None:
    nodes = {"a": const(2.0, calls_per_visit=2)}
    manager = BudgetManager(
        Deadline.after(30, clock=clock), profile(nodes=nodes), GraphTopology.chain(["a", "b"])
    )
    first = manager.allocate("a")
    assert first.slice_s == pytest.approx(10.0)  # 30 / (2 calls here + 1 in b)
    clock.advance(4.0)
    second = manager.allocate("a")
    assert second.slice_s == pytest.approx(13.0)  # 26 / (1 + 1)


def test_without_graph_or_profile_slices_are_still_sensible(clock: FakeClock) -> None:
    manager = BudgetManager(Deadline.after(30, clock=clock))
    assert manager.profile == BudgetProfile.default()
    assert manager.policy.name == "critical_path"
    slices = []
    for _ in range(6):
        allocation = manager.allocate("anything")
        slices.append(allocation.slice_s)
        clock.advance(2.0)
        manager.call_finished(allocation)
    # 4 calls a run are assumed; past them, plan for one more each time
    assert all(0 < s <= 30 for s in slices)
    assert slices[3] == pytest.approx(24.0)  # the last expected call may use what is left
    assert slices[4] < 22.0 and slices[5] < 20.0  # an overrunning run keeps some back


def test_equal_split_without_graph(clock: FakeClock) -> None:
    manager = BudgetManager(Deadline.after(30, clock=clock), policy="equal")
    assert manager.allocate("x").slice_s == pytest.approx(7.5)  # 30 / 4


def test_unknown_node_falls_back_to_calls_per_run(clock: FakeClock) -> None:
    manager = BudgetManager(Deadline.after(30, clock=clock), profile(), GraphTopology.chain(["a"]))
    assert manager.allocate("not-in-graph").slice_s == pytest.approx(7.5)


def test_no_deadline_gives_unbounded_slices(clock: FakeClock) -> None:
    manager = BudgetManager(Deadline.never(clock=clock), profile("marginal_utility"))
    allocation = manager.allocate("a")
    assert allocation.ok
    assert allocation.slice_s == math.inf
    assert allocation.deadline.remaining() == math.inf


def test_decide_is_pure_and_exact() -> None:
    assert decide(2.0, 1.0, 10.0, 0.0, None)[:2] == ("ok", 2.0)
    assert decide(2.0, 3.0, 10.0, 0.0, None)[:2] == ("degraded", 3.0)
    assert decide(2.0, 3.0, 10.0, 8.0, None)[:2] == ("refused", 2.0)
    assert decide(2.0, 1.0, 10.0, 0.0, 0)[0] == "refused"


def test_a_call_that_cannot_fit_its_slice_is_degraded_before_it_starts(
    clock: FakeClock,
) -> None:
    manager = BudgetManager(Deadline.after(1.0, clock=clock), profile("equal"))
    allocation = manager.allocate("x")  # 1 s / 4 calls = 0.25 s, minimum is 0.5 s
    assert allocation.degraded
    assert allocation.planned_s == pytest.approx(0.25)
    assert allocation.slice_s == pytest.approx(0.5)
    assert "raised to the minimum" in allocation.reason
    assert manager.degraded and manager.report().degraded


def test_a_call_that_cannot_finish_in_time_is_refused(clock: FakeClock) -> None:
    manager = BudgetManager(Deadline.after(1.0, clock=clock), profile(reserve_s=0.8))
    allocation = manager.allocate("x")
    assert allocation.refused
    assert "before the reserve" in allocation.reason


def test_refusal_raises_when_the_spec_says_raise(clock: FakeClock) -> None:
    manager = BudgetManager(
        Deadline.after(1.0, clock=clock), profile(reserve_s=0.8, on_expiry="raise")
    )
    with pytest.raises(BudgetRefused) as info:
        manager.allocate("x", "summarise")
    assert info.value.minimum_s == 0.5
    assert "summarise" in str(info.value)
    assert manager.report().calls[0].status == "refused"


def test_expired_deadline_raises_deadline_exceeded(clock: FakeClock) -> None:
    manager = BudgetManager(Deadline.after(1.0, clock=clock), profile(on_expiry="raise"))
    clock.advance(1.5)
    with pytest.raises(DeadlineExceeded) as info:
        manager.allocate("x")
    assert info.value.elapsed_s == 1.5


def test_expired_deadline_degrades_by_default(clock: FakeClock) -> None:
    manager = BudgetManager(Deadline.after(1.0, clock=clock), profile())
    clock.advance(1.5)
    allocation = manager.allocate("x")
    assert allocation.refused and allocation.slice_s == 0.0


def test_check_before_spending_with_a_better_prediction(clock: FakeClock) -> None:
    manager = BudgetManager(
        Deadline.after(30, clock=clock), profile(), GraphTopology.chain(["a", "b", "c"])
    )
    allocation = manager.allocate("a")
    assert manager.check_before_spending(allocation, 4.0).ok
    slower = manager.check_before_spending(allocation, 12.0)
    assert slower.degraded and slower.slice_s == 12.0
    assert slower.deadline.remaining() == pytest.approx(12.0)
    assert manager.check_before_spending(allocation, 40.0).refused
    assert manager.report().calls[0].status == "refused"


def test_check_before_spending_raises_when_told(clock: FakeClock) -> None:
    manager = BudgetManager(Deadline.after(30, clock=clock), profile(on_expiry="raise"))
    allocation = manager.allocate("a")
    with pytest.raises(BudgetRefused):
        manager.check_before_spending(allocation, 31.0)


def test_token_cap(clock: FakeClock) -> None:
    manager = BudgetManager(Deadline.after(30, clock=clock), profile(token_cap=100))
    first = manager.allocate("a")
    assert first.max_tokens == 25  # 100 tokens over 4 expected calls
    manager.call_finished(first, tokens=100)
    assert manager.tokens_left == 0
    assert manager.allocate("a").refused
    strict = BudgetManager(
        Deadline.after(30, clock=clock), profile(token_cap=100, on_expiry="raise")
    )
    strict.call_finished(strict.allocate("a"), tokens=150)
    with pytest.raises(TokenCapReached, match="150 of 100"):
        strict.allocate("a")


def test_report_lists_allocated_and_used(clock: FakeClock) -> None:
    manager = BudgetManager(
        Deadline.after(30, clock=clock), profile(), GraphTopology.chain(["a", "b"])
    )
    manager.node_started("a")
    allocation = manager.allocate("a", "draft")
    clock.advance(4.0)
    manager.call_finished(allocation, tokens=120)
    clock.advance(1.0)
    manager.node_finished("a")
    manager.allocate("b")
    report = manager.snapshot()
    assert report.budget_s == 30 and report.elapsed_s == 5.0 and report.remaining_s == 25.0
    assert report.tokens_used == 120 and not report.degraded
    assert report.call_rows()[0] == {
        "index": 0,
        "node": "a",
        "call_site": "draft",
        "slice_s": 15.0,
        "predicted_min_s": 0.5,
        "status": "ok",
        "used_s": 4.0,
        "tokens": 120,
    }
    assert report.calls[1].used_s is None
    rows = {row["node"]: row for row in report.node_rows()}
    assert rows["a"] == {
        "node": "a",
        "rounds": 1,
        "calls": 1,
        "allocated_s": 15.0,
        "used_s": 4.0,
        "busy_s": 5.0,
    }
    assert rows["b"]["allocated_s"] == 25.0


def test_state_for_records_nothing(clock: FakeClock) -> None:
    manager = BudgetManager(
        Deadline.after(30, clock=clock), profile(), GraphTopology.chain(["a", "b"])
    )
    state = manager.state_for("a")
    assert state.remaining_calls == 2 and state.time_left_s == 30
    assert manager.report().nodes == () and manager.report().calls == ()
    assert manager.allocate("a").slice_s == pytest.approx(15.0)


def test_reporting_a_call_twice_replaces_the_first_report(clock: FakeClock) -> None:
    manager = BudgetManager(Deadline.after(30, clock=clock), profile(token_cap=1000))
    allocation = manager.allocate("a")
    manager.call_finished(allocation, used_s=1.0, tokens=100)
    manager.call_finished(allocation, used_s=2.0, tokens=300)
    assert manager.tokens_left == 700
    assert manager.report().calls[0].used_s == 2.0


def test_budget_scope_makes_manager_and_deadline_ambient(clock: FakeClock) -> None:
    manager = BudgetManager(Deadline.after(30, clock=clock))
    assert current_budget() is None
    with budget_scope(manager) as active:
        assert active is manager
        assert current_budget() is manager
        assert current_deadline() is manager.deadline
    assert current_budget() is None and current_deadline() is None


def test_for_run_builds_deadline_and_topology(clock: FakeClock) -> None:
    graph = build_chain(lambda name: lambda state: {})
    manager = BudgetManager.for_run(profile(reserve_s=1.0), graph=graph, deadline_s=12, clock=clock)
    assert manager.deadline.budget_s == 12.0
    assert manager.deadline.soft_remaining() == 11.0
    assert manager.topology == GraphTopology.chain(["a", "b", "c"])
    assert manager.state_for("a").available_s == 11.0


# -- real LangGraph graphs -----------------------------------------------------------


class State(TypedDict, total=False):
    n: int
    items: Annotated[list[int], operator.add]


def build_chain(body: Any) -> Any:
    graph = StateGraph(State)
    for name in ("a", "b", "c"):
        graph.add_node(name, body(name))
    graph.add_edge(START, "a")
    graph.add_edge("a", "b")
    graph.add_edge("b", "c")
    graph.add_edge("c", END)
    return graph.compile()


def llm_node(clock: FakeClock, work_s: dict[str, float], slices: list[tuple[str, float]]) -> Any:
    """A node body that asks the ambient budget for a slice and 'works' work_s."""

    def make(name: str) -> Any:
        async def node(state: State) -> dict[str, Any]:
            manager = current_budget()
            assert manager is not None
            manager.node_started(name)
            allocation = manager.allocate(name)
            slices.append((name, allocation.slice_s))
            await clock.sleep(work_s[name])
            manager.call_finished(allocation, tokens=10)
            manager.node_finished(name)
            return {"n": state.get("n", 0) + 1}

        return node

    return make


async def run_chain_graph(a_takes_s: float) -> list[tuple[str, float]]:
    clock = FakeClock(start=0.0, autojump=True)
    slices: list[tuple[str, float]] = []
    graph = build_chain(llm_node(clock, {"a": a_takes_s, "b": 3.0, "c": 1.0}, slices))
    manager = BudgetManager(
        Deadline.after(30, clock=clock), profile(), GraphTopology.from_langgraph(graph)
    )
    with budget_scope(manager):
        await graph.ainvoke({"n": 0})
    return slices


async def test_real_chain_replans_early_and_late() -> None:
    early = await run_chain_graph(a_takes_s=2.0)
    late = await run_chain_graph(a_takes_s=8.0)
    assert [n for n, _ in early] == ["a", "b", "c"]
    assert dict(early) == pytest.approx({"a": 10.0, "b": 14.0, "c": 25.0})
    assert dict(late) == pytest.approx({"a": 10.0, "b": 11.0, "c": 19.0})


def build_loop(clock: FakeClock, rounds: int, slices: list[tuple[str, float]]) -> Any:
    async def agent(state: State) -> dict[str, Any]:
        manager = current_budget()
        assert manager is not None
        manager.node_started("agent")
        allocation = manager.allocate("agent")
        slices.append(("agent", allocation.slice_s))
        await clock.sleep(2.0)
        manager.call_finished(allocation)
        manager.node_finished("agent")
        return {"n": state.get("n", 0) + 1}

    async def tools(state: State) -> dict[str, Any]:
        manager = current_budget()
        assert manager is not None
        manager.node_started("tools")
        await clock.sleep(1.0)
        manager.node_finished("tools")
        return {}

    def route(state: State) -> Any:
        return "tools" if state["n"] < rounds else END

    graph = StateGraph(State)
    graph.add_node("agent", agent)
    graph.add_node("tools", tools)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route, ["tools", END])
    graph.add_edge("tools", "agent")
    return graph.compile()


LOOP_NODES = {
    "agent": const(2.0, expected_visits=3),
    "tools": const(2.0, calls_per_visit=0, overhead_s=1.0, expected_visits=2),
}


async def test_real_loop_counts_expected_visits_and_replans_past_them() -> None:
    clock = FakeClock(start=0.0, autojump=True)
    slices: list[tuple[str, float]] = []
    graph = build_loop(clock, rounds=4, slices=slices)
    topology = GraphTopology.from_langgraph(graph)
    assert topology.loops == (frozenset({"agent", "tools"}),)
    manager = BudgetManager(Deadline.after(30, clock=clock), profile(nodes=LOOP_NODES), topology)
    with budget_scope(manager):
        await graph.ainvoke({"n": 0})
    # round 1: 2 more agent calls and 2 tool visits (1 s each) expected: (30 - 2) / 3
    # round 2 at t=3: (27 - 1) / 2; round 3 at t=6: the last expected one, all of 24 s
    # round 4 at t=9: past the expectation, plan one more pass: (21 - 1) / 2
    assert [s for _, s in slices] == pytest.approx([28 / 3, 13.0, 24.0, 10.0])
    report = manager.report()
    rounds = {row.node: row.rounds for row in report.nodes}
    assert rounds == {"agent": 4, "tools": 3}


async def test_a_graph_told_visit_count_splits_the_budget_over_it() -> None:
    clock = FakeClock(start=0.0, autojump=True)
    slices: list[tuple[str, float]] = []
    graph = build_loop(clock, rounds=4, slices=slices)
    topology = GraphTopology.from_langgraph(graph)
    manager = BudgetManager(Deadline.after(30, clock=clock), profile(nodes=LOOP_NODES), topology)
    manager.expect_visits("agent", 4)  # the graph knows: 4 rounds, not the profile's 3
    manager.expect_visits("tools", 3)
    with budget_scope(manager):
        await graph.ainvoke({"n": 0})
    # round 1: 3 more agent calls and 3 tool visits (1 s each): (30 - 3) / 4; then
    # (27 - 2) / 3 at t=3, (24 - 1) / 2 at t=6, and the last one gets all 21 s
    assert [s for _, s in slices] == pytest.approx([27 / 4, 25 / 3, 23 / 2, 21.0])


@pytest.mark.parametrize(
    ("node", "visits", "named"),
    [("agent", -1, "-1"), ("agent", math.nan, "nan"), ("agent", "3", "'3'"),
     ("agent", True, "True"), ("nope", 2, "'nope'")],
)  # fmt: skip
def test_a_bad_visit_count_is_refused_by_name(
    clock: FakeClock, node: str, visits: Any, named: str
) -> None:
    topology = GraphTopology.chain(["agent", "tools"])
    manager = BudgetManager(Deadline.after(30, clock=clock), profile(), topology)
    with pytest.raises(ConfigurationError, match=named):
        manager.expect_visits(node, visits)


def build_fanout(clock: FakeClock, map_work_s: list[float], slices: list[tuple[str, float]]) -> Any:
    barrier = asyncio.Barrier(len(map_work_s))

    async def plan(state: State) -> dict[str, Any]:
        manager = current_budget()
        assert manager is not None
        allocation = manager.allocate("plan")
        slices.append(("plan", allocation.slice_s))
        await clock.sleep(2.0)
        manager.node_finished("plan")
        return {}

    async def map_(state: State, config: RunnableConfig) -> dict[str, Any]:
        manager = current_budget()
        assert manager is not None
        task = str(config["metadata"]["langgraph_checkpoint_ns"])
        manager.node_started("map", visit=task)
        allocation = manager.allocate("map", visit=task)
        slices.append(("map", allocation.slice_s))
        started = clock.now()
        await barrier.wait()  # the branches run side by side
        work_s = map_work_s[state["n"]]
        await clock.sleep_until(started + work_s)
        manager.call_finished(allocation, used_s=work_s)
        manager.node_finished("map", visit=task)
        return {"items": [state["n"]]}

    async def reduce_(state: State) -> dict[str, Any]:
        manager = current_budget()
        assert manager is not None
        slices.append(("reduce", manager.allocate("reduce").slice_s))
        return {}

    def fan_out(state: State) -> list[Send]:
        return [Send("map", {"n": i}) for i in range(len(map_work_s))]

    graph = StateGraph(State)
    graph.add_node("plan", plan)
    graph.add_node("map", map_)
    graph.add_node("reduce", reduce_)
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", fan_out, ["map"])
    graph.add_edge("map", "reduce")
    graph.add_edge("reduce", END)
    return graph.compile()


async def test_real_send_fanout_shares_wall_clock() -> None:
    clock = FakeClock(start=0.0, autojump=True)
    slices: list[tuple[str, float]] = []
    graph = build_fanout(clock, [1.0, 3.0, 2.0], slices)
    topology = GraphTopology.from_langgraph(graph)
    assert topology.fanout == frozenset({"map"})
    nodes = {"map": const(2.0, fanout=3)}
    manager = BudgetManager(Deadline.after(30, clock=clock), profile(nodes=nodes), topology)
    with budget_scope(manager):
        result = await graph.ainvoke({"n": 0})
    assert sorted(result["items"]) == [0, 1, 2]
    # plan: 3 steps left (plan, one parallel map step, reduce), not 5 calls: 30 / 3
    # each map branch at t=2: itself and reduce: 28 / 2; reduce at t=5 (slowest branch): 25
    assert slices[0][0] == "plan" and slices[0][1] == pytest.approx(10.0)
    assert [s for n, s in slices if n == "map"] == pytest.approx([14.0, 14.0, 14.0])
    assert slices[-1][0] == "reduce" and slices[-1][1] == pytest.approx(25.0)
    row = {r.node: r for r in manager.report().nodes}["map"]
    assert (row.rounds, row.calls) == (1, 3)
    assert row.used_s == pytest.approx(6.0)


async def test_fanout_widens_the_tail_for_critical_path() -> None:
    spread = NodeStats(p50_s=1.0, p90_s=3.0, p95_s=4.0, p99_s=8.0, min_call_s=0.1)
    nodes = {"map": spread.model_copy(update={"fanout": 8.0})}
    wide = BudgetManager(
        Deadline.after(30, clock=FakeClock()),
        profile("critical_path", nodes=nodes, sla_quantile=0.9),
        GraphTopology.chain(["plan", "map", "reduce"]),
    )
    narrow = BudgetManager(
        Deadline.after(30, clock=FakeClock()),
        profile("critical_path", nodes={"map": spread}, sla_quantile=0.9),
        GraphTopology.chain(["plan", "map", "reduce"]),
    )
    # the slowest of 8 branches needs more reserve than one call, far less than 8 calls
    assert wide.allocate("plan").slice_s < narrow.allocate("plan").slice_s
    sequential = BudgetManager(
        Deadline.after(30, clock=FakeClock()),
        profile(
            "critical_path",
            nodes={"map": spread.model_copy(update={"expected_visits": 8})},
            sla_quantile=0.9,
        ),
        GraphTopology.chain(["plan", "map", "reduce"]),
    )
    assert sequential.allocate("plan").slice_s < wide.allocate("plan").slice_s


def test_sync_fanout_tasks_in_threads_share_one_round() -> None:
    clock = FakeClock(start=0.0)
    slices: list[float] = []

    def map_(state: State, config: RunnableConfig) -> dict[str, Any]:
        manager = current_budget()  # the contextvar reaches LangGraph's worker threads
        assert manager is not None
        task = str(config["metadata"]["langgraph_checkpoint_ns"])
        manager.node_started("map", visit=task)
        slices.append(manager.allocate("map", visit=task).slice_s)
        return {"items": [state["n"]]}

    graph = StateGraph(State)
    graph.add_node("plan", lambda state: {})
    graph.add_node("map", map_)
    graph.add_edge(START, "plan")
    graph.add_conditional_edges(
        "plan", lambda state: [Send("map", {"n": i}) for i in range(8)], ["map"]
    )
    graph.add_edge("map", END)
    compiled = graph.compile()
    manager = BudgetManager(
        Deadline.after(30, clock=clock),
        profile(nodes={"map": const(2.0, fanout=8)}),
        GraphTopology.from_langgraph(compiled),
    )
    with budget_scope(manager):
        result = compiled.invoke({"n": 0})
    assert sorted(result["items"]) == list(range(8))
    assert slices == [30.0] * 8
    row = {r.node: r for r in manager.report().nodes}["map"]
    assert (row.rounds, row.calls) == (1, 8)


def test_tasks_of_one_step_are_one_round_even_if_they_do_not_overlap(clock: FakeClock) -> None:
    manager = BudgetManager(Deadline.after(30, clock=clock), profile())
    for task in ("t1", "t2", "t3"):
        manager.node_started("map", visit=task, step=2)
        manager.node_finished("map", visit=task)
    manager.allocate("map", visit="t4", step=2)
    manager.allocate("map", visit="t5", step=4)
    assert {r.node: r.rounds for r in manager.report().nodes} == {"map": 2}
    manager.node_started("solo")
    manager.node_finished("solo")
    manager.node_started("solo")
    assert {r.node: r.rounds for r in manager.report().nodes}["solo"] == 2
