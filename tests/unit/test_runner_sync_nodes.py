"""Which nodes the runner reports as uncancellable: only plain functions LangGraph
runs in a worker thread, not async nodes or ToolNode (which runs on the loop)."""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode

from agentrt.langgraph._runner import sync_nodes


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class State(TypedDict):
    messages: list[Any]


def plain(state: State) -> dict[str, Any]:
    return {}


async def coroutine(state: State) -> dict[str, Any]:
    return {}


def test_only_plain_function_nodes_run_in_a_thread() -> None:
    builder = StateGraph(State)
    builder.add_node("plain", plain)
    builder.add_node("coroutine", coroutine)
    builder.add_node("tools", ToolNode([add]))
    builder.add_edge(START, "plain")
    builder.add_edge("plain", "coroutine")
    builder.add_edge("coroutine", "tools")
    builder.add_edge("tools", END)
    assert sync_nodes(builder.compile()) == ("plain",)


def test_the_prebuilt_agent_has_no_thread_nodes() -> None:
    from graphs.agent import graph

    assert sync_nodes(graph) == ()
