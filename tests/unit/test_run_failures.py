"""A run returns, always: every failure after the start becomes a flagged result.

In-process doubles (a fake vLLM behind httpx's MockTransport, graphs whose
nodes raise) drive the logic; tests/integration/test_hostile_runs.py runs the
same faults against a real out-of-process server.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, TypedDict

import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, StateGraph

from agentrt.core._errors import ConfigurationError, EndpointRejected
from agentrt.core._token_bucket import TokenBucket
from agentrt.langgraph import RunFailed, Runtime, TTSChatModel, run_sync
from agentrt.langgraph import _runtime as runtime_module
from agentrt.langgraph._runner import RunDeadlineExceeded
from agentrt.pool import EndpointPool, EndpointSpec, RetrySettings
from agentrt.tts import LastNumber, TTSConfig, TTSExecutor
from agentrt.tts._executor import MAX_ROUNDS
from tests.unit.vllm_double import FakeCluster, FakeVLLM, answers_chunks

MESSAGES = [{"role": "user", "content": "3 + 4?"}]
UNREACHABLE = EndpointSpec(url="http://127.0.0.1:9")


class S(TypedDict, total=False):
    question: str
    first: str
    answer: str


def pool_of(cluster: FakeCluster, *names: str, **options: Any) -> EndpointPool:
    specs = [EndpointSpec(url=cluster.url(n)) for n in names or ("a",)]
    return EndpointPool(specs, transport=cluster.transport, health_interval_s=0, **options)


def _two_step(second: Any) -> Any:
    """``first`` always works; ``second`` is the node under test."""

    async def first(state: S) -> S:
        return {"first": "done"}

    builder = StateGraph(S)
    builder.add_node("first", first)
    builder.add_node("second", second)
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", END)
    return builder.compile(name="two-step")


def _asking(model: TTSChatModel) -> Any:
    async def second(state: S) -> S:
        reply = await model.ainvoke(state["question"])
        assert isinstance(reply, AIMessage)
        return {"answer": str(reply.content)}

    return _two_step(second)


async def _run(graph: Any, cluster: FakeCluster, **options: Any) -> Any:
    async with pool_of(cluster) as pool:
        return await Runtime(pool=pool).run(graph, {"question": "3 + 4?"}, deadline=5.0, **options)


async def test_a_node_that_raises_returns_the_last_state_flagged() -> None:
    async def second(state: S) -> S:
        raise ValueError("the node's own bug")

    result = await _run(_two_step(second), FakeCluster(a=FakeVLLM()))
    assert result.degraded
    assert "node 'second' failed" in (result.reason or "")
    assert result.error == "ValueError: the node's own bug"
    assert result.failed_nodes == ("second",)
    assert result.state["first"] == "done"  # the last consistent state
    assert ("first", {"first": "done"}) in result.finished_tasks


async def test_on_error_raise_carries_the_same_result() -> None:
    async def second(state: S) -> S:
        raise KeyError("missing")

    with pytest.raises(RunFailed) as raised:
        await _run(_two_step(second), FakeCluster(a=FakeVLLM()), on_error="raise")
    assert raised.value.result.degraded and raised.value.result.state["first"] == "done"
    assert isinstance(raised.value.__cause__, KeyError)


async def test_on_error_is_checked_before_the_run() -> None:
    with pytest.raises(ConfigurationError, match=r"on_error.*'explode'"):
        await _run(_two_step(lambda s: s), FakeCluster(a=FakeVLLM()), on_error="explode")


async def test_a_graph_past_its_recursion_limit_returns_flagged() -> None:
    async def loop(state: S) -> S:
        return {"answer": "again"}

    builder = StateGraph(S)
    builder.add_node("loop", loop)
    builder.add_edge(START, "loop")
    builder.add_conditional_edges("loop", lambda s: "loop")
    graph = builder.compile(name="forever")
    result = await _run(graph, FakeCluster(a=FakeVLLM()), config={"recursion_limit": 5})
    assert result.degraded and "GraphRecursionError" in (result.error or "")
    assert result.state["answer"] == "again"


async def test_a_rejected_call_is_recorded_and_the_run_returns() -> None:
    server = FakeVLLM(chat_statuses=[400] * 10)
    result = await _run(_asking(TTSChatModel(answer_spec=LastNumber())), FakeCluster(a=server))
    assert result.degraded and "EndpointRejected" in (result.error or "")
    assert len(result.calls) == 1  # the failed call's result is kept
    assert result.calls[0].result.failure is not None
    assert result.state["first"] == "done"


async def test_a_deadline_raise_is_also_a_run_failed() -> None:
    assert issubclass(RunDeadlineExceeded, RunFailed)


async def test_a_failed_hedge_does_not_fail_a_call_whose_other_branches_finished() -> None:
    """One endpoint refuses (401), the other answers: the call keeps the answer."""
    refusing = FakeVLLM(chat_statuses=[401] * 10)
    healthy = FakeVLLM(chunks=answers_chunks(["7", "7"]))
    async with pool_of(FakeCluster(a=refusing, b=healthy), "a", "b") as pool:
        result = await TTSExecutor(pool).run(
            MESSAGES, slice_s=5, config=TTSConfig("majority", 2, temperature=0.7, max_tokens=8)
        )
    assert result.answer is not None and result.answer.key == "7"
    assert result.failure is None
    assert "401" in (result.degraded_reason or "")  # recorded, not fatal


async def test_a_call_every_request_of_which_fails_carries_its_failure() -> None:
    async with pool_of(FakeCluster(a=FakeVLLM(chat_statuses=[400] * 10))) as pool:
        result = await TTSExecutor(pool).run(MESSAGES, slice_s=5, config=TTSConfig("single", 1))
    assert isinstance(result.failure, EndpointRejected) and result.degraded


async def test_a_storm_of_503s_is_bounded_by_rounds_and_the_retry_budget() -> None:
    # Every request 503s: the pool gives up on each open, the executor re-issues.
    server = FakeVLLM(chat_statuses=[503] * 1000)
    async with pool_of(FakeCluster(a=server)) as pool:
        unbounded = await TTSExecutor(pool, hedge=None).run(
            MESSAGES, slice_s=3, config=TTSConfig("single", 1)
        )
    rounds_alone = len(server.requests)
    server = FakeVLLM(chat_statuses=[503] * 1000)
    bucket = TokenBucket(ratio=0.0, capacity=1.0)  # one retry round for everyone
    async with pool_of(FakeCluster(a=server)) as pool:
        executors = [TTSExecutor(pool, hedge=None, retry_bucket=bucket) for _ in range(4)]
        results = await asyncio.gather(
            *(e.run(MESSAGES, slice_s=3, config=TTSConfig("single", 1)) for e in executors)
        )
    assert unbounded.degraded and all(r.degraded for r in results)
    # 503s pass: the emptied calls return degraded and empty, they do not raise.
    assert unbounded.failure is None and all(r.failure is None for r in results)
    attempts = RetrySettings().max_attempts  # the pool's own retries of one open
    # Without a budget a call sends at most MAX_ROUNDS rounds (each retried by the pool) ...
    assert MAX_ROUNDS < rounds_alone <= MAX_ROUNDS * attempts
    # ... and with a shared budget of one token, four calls send 4 first rounds + 1 re-issue.
    assert len(server.requests) <= 5 * attempts
    assert bucket.tokens == 0.0
    assert any("retry budget" in (r.degraded_reason or "") for r in results)


def test_run_sync_returns_while_a_sync_node_still_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    # The process-default runtime, on an endpoint nothing listens at (the node calls no LLM).
    monkeypatch.setattr(runtime_module, "_default", Runtime(endpoints=[UNREACHABLE]))
    finished = threading.Event()
    release = threading.Event()

    def stuck(state: S) -> S:
        release.wait(30)  # far past the deadline; it cannot be cancelled
        finished.set()
        return {"answer": "late"}

    graph = _two_step(stuck)
    try:
        result = run_sync(graph, {"question": "?"}, deadline=0.5)
        assert not finished.is_set()  # control came back with the node still running
        assert result.degraded and result.uncancelled == ("second",)
    finally:
        release.set()
