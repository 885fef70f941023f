"""The Runtime owns the pool and what is learned about it: one run teaches the next.

A fake vLLM server (an in-process double) answers; what is checked is which
state lives where, not speed.
"""

from __future__ import annotations

from typing import Any, TypedDict

import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, StateGraph

from agentrt.core._errors import ConfigurationError
from agentrt.langgraph import RunObserver, Runtime, TTSChatModel, default_runtime
from agentrt.pool import EndpointPool, EndpointSpec
from agentrt.tts import LastNumber
from tests.unit.vllm_double import FakeCluster, FakeVLLM, answers_chunks


class S(TypedDict, total=False):
    question: str
    answer: str


def pool_of(cluster: FakeCluster) -> EndpointPool:
    return EndpointPool(
        [EndpointSpec(url=cluster.url("a"))], transport=cluster.transport, health_interval_s=0
    )


def _graph(model: TTSChatModel) -> Any:
    async def solve(state: S) -> S:
        reply = await model.ainvoke(state["question"])
        assert isinstance(reply, AIMessage)
        return {"answer": str(reply.content)}

    builder = StateGraph(S)
    builder.add_node("solve", solve)
    builder.add_edge(START, "solve")
    builder.add_edge("solve", END)
    return builder.compile(name="solve")


def _server() -> tuple[FakeCluster, FakeVLLM]:
    server = FakeVLLM(chunks=answers_chunks(["7"]))
    return FakeCluster(a=server), server


async def test_what_one_run_learns_the_next_run_plans_with() -> None:
    cluster, _ = _server()
    pool = pool_of(cluster)
    runtime = Runtime(pool=pool)
    graph = _graph(TTSChatModel(call_site="solve", answer_spec=LastNumber()))
    try:
        first = await runtime.run(graph, {"question": "3 + 4?"}, deadline=5.0)
        second = await runtime.run(graph, {"question": "3 + 4?"}, deadline=5.0)
    finally:
        await pool.aclose()
    before = first.calls[0].result.online
    after = second.calls[0].result.online
    assert before is not None and before.observations == 0, "the first call plans cold"
    assert after is not None and after.observations > 0, "the second run starts from the first"
    (state,) = runtime.state()
    assert state.groups[0].observations >= after.observations
    assert [s.site for s in state.lengths] == ["solve"]
    assert state.lengths[0].observations > 0
    assert second.calibration is None  # the runtime was given its pool: it plans with the prior


async def test_runtimes_share_nothing() -> None:
    cluster, _ = _server()
    pool = pool_of(cluster)
    one, other = Runtime(pool=pool), Runtime(pool=pool)
    graph = _graph(TTSChatModel(answer_spec=LastNumber()))
    try:
        await one.run(graph, {"question": "3 + 4?"}, deadline=5.0)
        result = await other.run(graph, {"question": "3 + 4?"}, deadline=5.0)
    finally:
        await pool.aclose()
    online = result.calls[0].result.online
    assert online is not None and online.observations == 0
    assert one.executor(pool=pool).hedge_bucket is not other.executor(pool=pool).hedge_bucket


async def test_without_learning_nothing_is_corrected() -> None:
    cluster, _ = _server()
    pool = pool_of(cluster)
    runtime = Runtime(pool=pool, learn=False)
    try:
        result = await runtime.run(_graph(TTSChatModel()), {"question": "3 + 4?"}, deadline=5.0)
    finally:
        await pool.aclose()
    assert result.calls[0].result.online is None
    assert runtime.state()[0].groups == ()


async def test_a_chat_model_inside_a_run_keeps_its_own_parameters() -> None:
    cluster, server = _server()
    pool = pool_of(cluster)
    runtime = Runtime(pool=pool)
    greedy = TTSChatModel(max_tokens=5, temperature=0, stop=["\n\n"])
    try:
        await runtime.run(_graph(greedy), {"question": "3 + 4?"}, deadline=5.0)
    finally:
        await pool.aclose()
    (request,) = server.requests
    assert request["max_tokens"] == 5
    assert request.get("n", 1) == 1 and request["temperature"] == 0.0
    assert request["stop"] == ["\n\n"]


async def test_a_standalone_chat_model_uses_its_runtimes_pool_and_knowledge() -> None:
    cluster, server = _server()
    pool = pool_of(cluster)
    runtime = Runtime(pool=pool)
    model = runtime.chat_model(slice_s=5.0, call_site="ask", answer_spec=LastNumber())
    try:
        await model.ainvoke("3 + 4?")
        reply = await model.ainvoke("3 + 4?")
    finally:
        await pool.aclose()
    assert len(server.requests) >= 2
    assert reply.response_metadata["agentrt"]["answer"] == "7"
    (state,) = runtime.state()
    assert state.groups[0].observations > 0 and state.lengths[0].site == "ask"


async def test_the_observer_labels_the_run_and_hears_its_nodes() -> None:
    cluster, _ = _server()
    pool = pool_of(cluster)
    events: list[str] = []
    observer = RunObserver(
        on_event=lambda e: events.append(f"{e.kind}:{e.node}"), judge=lambda s: True, task_seed=3
    )
    try:
        await Runtime(pool=pool).run(
            _graph(TTSChatModel()), {"question": "3 + 4?"}, deadline=5.0, observer=observer
        )
    finally:
        await pool.aclose()
    assert events == ["node_started:solve", "node_finished:solve"]


def test_the_default_runtime_is_one_per_process() -> None:
    assert default_runtime() is default_runtime()


def test_a_runtime_without_a_pool_says_how_to_get_one() -> None:
    with pytest.raises(ConfigurationError, match="async with Runtime"):
        Runtime().executor()


@pytest.mark.parametrize(
    ("options", "names"),
    [
        ({"endpoints": [EndpointSpec(url="http://a:1")], "local": True}, "endpoints"),
        ({"endpoints": []}, "endpoints= is empty"),
        ({"plain": -1}, "plain must be an integer >= 0, got -1"),
        ({"spec": True}, "spec must be an integer >= 0, got True"),
        ({"hedge": "yes"}, "hedge must be"),
    ],
)
def test_bad_runtime_options_name_the_field(options: dict[str, Any], names: str) -> None:
    with pytest.raises(ConfigurationError, match=names):
        Runtime(**options)


@pytest.mark.parametrize(
    ("options", "names"),
    [
        ({"deadline": float("inf")}, "deadline must be a finite"),
        ({"deadline": 0}, "deadline must be a positive"),
        ({"deadline": 1.0, "on_expiry": "explode"}, "on_expiry must be one of"),
    ],
)
async def test_bad_run_options_name_the_field(options: dict[str, Any], names: str) -> None:
    graph = _graph(TTSChatModel())
    with pytest.raises(ConfigurationError, match=names):
        await Runtime().run(graph, {}, **options)


def test_the_slowdown_follows_the_least_loaded_endpoint() -> None:
    """What admission scales a graph's minimum by: 1 on idle servers, more as the
    least loaded endpoint's running and waiting sequences grow."""
    cluster = FakeCluster(a=FakeVLLM(), b=FakeVLLM())
    pool = EndpointPool(
        [EndpointSpec(url=cluster.url("a")), EndpointSpec(url=cluster.url("b"))],
        transport=cluster.transport, health_interval_s=0,
    )  # fmt: skip
    runtime = Runtime(pool=pool)
    assert Runtime().slowdown() == 1.0  # no pool held
    assert runtime.slowdown() == 1.0
    a, b = pool.endpoints
    a.server_running, b.server_running = 16.0, 4.0
    at_four = runtime.slowdown()
    b.server_waiting = 12.0
    at_sixteen = runtime.slowdown()
    assert 1.0 < at_four < at_sixteen  # the least loaded one counts: 4, then 16
    a.ejected_until = b.ejected_until = float("inf")
    assert runtime.slowdown() == 1.0  # no healthy endpoint: nothing to scale by
