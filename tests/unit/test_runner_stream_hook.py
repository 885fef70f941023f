"""``RunObserver.on_chunk``: a run forwards the chunks of the stream modes its observer
asks for, as LangGraph yields them, and a hook that fails costs the run nothing."""

from __future__ import annotations

import operator
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypedDict

import httpx
import pytest
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph

from agentrt.langgraph import RunObserver, Runtime
from agentrt.pool import EndpointPool, EndpointSpec


class State(TypedDict, total=False):
    steps: Annotated[list[str], operator.add]


def _graph() -> Any:
    async def first(state: State) -> State:
        get_stream_writer()({"note": "from first"})
        return {"steps": ["first"]}

    async def second(state: State) -> State:
        return {"steps": ["second"]}

    builder = StateGraph(State)
    builder.add_node("first", first)
    builder.add_node("second", second)
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", END)
    return builder.compile(name="two")


@pytest.fixture
async def pool() -> AsyncIterator[EndpointPool]:
    """A pool that answers nothing: these graphs make no LLM call."""
    pool = EndpointPool(
        [EndpointSpec(url="http://127.0.0.1:9")],
        transport=httpx.MockTransport(lambda request: httpx.Response(503)),
        health_interval_s=0,
    )
    yield pool
    await pool.aclose()


async def test_the_chunks_of_the_asked_modes_are_forwarded_in_order(pool: EndpointPool) -> None:
    heard: list[tuple[str, Any]] = []
    observer = RunObserver(
        stream_modes=("updates", "custom"), on_chunk=lambda m, c: heard.append((m, c))
    )
    result = await Runtime(pool=pool).run(_graph(), {"steps": []}, deadline=10, observer=observer)
    assert not result.degraded
    assert result.state == {"steps": ["first", "second"]}
    assert heard == [
        ("custom", {"note": "from first"}),
        ("updates", {"first": {"steps": ["first"]}}),
        ("updates", {"second": {"steps": ["second"]}}),
    ]


async def test_the_runners_own_modes_can_be_heard_too(pool: EndpointPool) -> None:
    heard: list[str] = []
    events: list[str] = []
    observer = RunObserver(
        stream_modes=("values", "tasks"),
        on_chunk=lambda mode, chunk: heard.append(mode),
        on_event=lambda event: events.append(event.kind),
    )
    result = await Runtime(pool=pool).run(_graph(), {"steps": []}, deadline=10, observer=observer)
    assert result.state == {"steps": ["first", "second"]}
    assert heard.count("values") == 3  # the input, then after each step
    assert heard.count("tasks") == 4  # each node's start and finish
    assert events == ["node_started", "node_finished"] * 2  # the runner still sees them


async def test_a_failing_hook_costs_the_run_nothing(pool: EndpointPool) -> None:
    def broken(mode: str, chunk: Any) -> None:
        raise RuntimeError("display went away")

    observer = RunObserver(stream_modes=("updates",), on_chunk=broken)
    result = await Runtime(pool=pool).run(_graph(), {"steps": []}, deadline=10, observer=observer)
    assert not result.degraded
    assert result.state == {"steps": ["first", "second"]}


async def test_modes_without_a_hook_are_not_streamed(pool: EndpointPool) -> None:
    graph = _graph()
    asked: list[Any] = []
    original = graph.astream

    def spy(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs["stream_mode"])
        return original(*args, **kwargs)

    graph.astream = spy
    await Runtime(pool=pool).run(
        graph, {"steps": []}, deadline=10, observer=RunObserver(stream_modes=("updates",))
    )
    await Runtime(pool=pool).run(
        graph,
        {"steps": []},
        deadline=10,
        observer=RunObserver(stream_modes=("updates", "values"), on_chunk=lambda m, c: None),
    )
    assert asked == [["values", "tasks"], ["values", "tasks", "updates"]]
