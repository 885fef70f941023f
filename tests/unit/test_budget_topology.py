"""Graph topology: read from real compiled LangGraph graphs, longest remaining path."""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict

import pytest
from langgraph.graph import END as LG_END
from langgraph.graph import START as LG_START
from langgraph.graph import StateGraph
from langgraph.types import Send

from agentrt.budget import END, START, Edge, GraphTopology


class State(TypedDict, total=False):
    n: int
    items: Annotated[list[int], operator.add]


def noop(state: State) -> dict[str, Any]:
    return {}


def unit_cost(node: str) -> float:
    return 1.0


def build_chain() -> Any:
    graph = StateGraph(State)
    for name in ("a", "b", "c"):
        graph.add_node(name, noop)
    graph.add_edge(LG_START, "a")
    graph.add_edge("a", "b")
    graph.add_edge("b", "c")
    graph.add_edge("c", LG_END)
    return graph.compile()


def route(state: State) -> Literal["tools", "finish"]:
    return "finish"


def build_loop() -> Any:
    graph = StateGraph(State)
    for name in ("agent", "tools", "finish"):
        graph.add_node(name, noop)
    graph.add_edge(LG_START, "agent")
    graph.add_conditional_edges("agent", route)
    graph.add_edge("tools", "agent")
    graph.add_edge("finish", LG_END)
    return graph.compile()


def fan_out(state: State) -> list[Send]:
    return [Send("map", {"n": i}) for i in range(3)]


def build_fanout() -> Any:
    graph = StateGraph(State)
    for name in ("plan", "map", "reduce"):
        graph.add_node(name, noop)
    graph.add_edge(LG_START, "plan")
    graph.add_conditional_edges("plan", fan_out, ["map"])
    graph.add_edge("map", "reduce")
    graph.add_edge("reduce", LG_END)
    return graph.compile()


def test_chain_from_langgraph() -> None:
    topology = GraphTopology.from_langgraph(build_chain())
    assert topology.nodes == ("a", "b", "c")
    assert topology.entry == ("a",)
    assert topology.finish == ("c",)
    assert topology.loops == ()
    assert topology.fanout == frozenset()
    assert topology.remaining_path("a", unit_cost) == ("a", "b", "c")
    assert topology.remaining_path("c", unit_cost) == ("c",)
    assert topology == GraphTopology.chain(["a", "b", "c"])


def test_loop_from_langgraph() -> None:
    topology = GraphTopology.from_langgraph(build_loop())
    assert Edge("agent", "tools", conditional=True) in topology.edges
    assert topology.loops == (frozenset({"agent", "tools"}),)
    assert topology.in_loop("agent") and topology.in_loop("tools")
    assert not topology.in_loop("finish")
    assert topology.component("tools") == frozenset({"agent", "tools"})
    assert topology.remaining_path("agent", unit_cost) == ("agent", "tools", "finish")
    assert topology.remaining_path("tools", unit_cost) == ("tools", "agent", "finish")


def test_send_fanout_from_langgraph() -> None:
    topology = GraphTopology.from_langgraph(build_fanout())
    assert topology.fanout == frozenset({"map"})
    assert Edge("plan", "map", conditional=True) in topology.edges
    assert topology.remaining_path("plan", unit_cost) == ("plan", "map", "reduce")


def test_parallel_branches_count_as_the_longest() -> None:
    topology = GraphTopology.from_edges(
        [
            (START, "a"),
            ("a", "fast"),
            ("a", "slow"),
            ("fast", "join"),
            ("slow", "join"),
            ("join", END),
        ]
    )
    costs = {"a": 1.0, "fast": 1.0, "slow": 5.0, "join": 1.0}
    assert topology.remaining_path("a", costs.__getitem__) == ("a", "slow", "join")
    costs["fast"] = 9.0
    assert topology.remaining_path("a", costs.__getitem__) == ("a", "fast", "join")


def test_alternative_routes_count_as_the_longest_and_end_costs_nothing() -> None:
    topology = GraphTopology.from_edges(
        [
            Edge(START, "router"),
            Edge("router", "x", True),
            Edge("router", END, True),
            Edge("x", END),
        ]
    )
    assert topology.remaining_path("router", lambda n: 2.0) == ("router", "x")
    assert topology.remaining_path("x", lambda n: 2.0) == ("x",)


def test_self_loop_is_a_loop() -> None:
    topology = GraphTopology.from_edges([(START, "a"), ("a", "a"), ("a", END)])
    assert topology.in_loop("a")
    assert topology.loops == (frozenset({"a"}),)


def test_nested_components_and_costs_of_loop_members() -> None:
    # a -> (b <-> c) -> d, plus a shortcut a -> d
    topology = GraphTopology.from_edges(
        [(START, "a"), ("a", "b"), ("b", "c"), ("c", "b"), ("c", "d"), ("a", "d"), ("d", END)]
    )
    costs = {"a": 1.0, "b": 2.0, "c": 2.0, "d": 1.0}
    assert topology.remaining_path("a", costs.__getitem__) == ("a", "b", "c", "d")
    costs["b"] = costs["c"] = 0.0
    # equal totals: the first in sorted order wins, deterministically
    assert topology.remaining_path("a", costs.__getitem__) == ("a", "b", "c", "d")


def test_unknown_nodes() -> None:
    topology = GraphTopology.chain(["a"])
    assert "a" in topology and "z" not in topology and START not in topology
    with pytest.raises(KeyError):
        topology.remaining_path("z", unit_cost)
    with pytest.raises(ValueError, match="unknown node"):
        GraphTopology(("a",), (Edge("a", "z"),))


def test_topology_is_a_hashable_value() -> None:
    assert hash(GraphTopology.chain(["a", "b"])) == hash(GraphTopology.chain(["a", "b"]))
