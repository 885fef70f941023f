"""The anytime executor's logic against the in-process vLLM double: early stopping,
cutting at the slice, re-issuing lost branches, refusals. No timing assertions."""

from __future__ import annotations

from typing import Any

import pytest

from agentrt.core._clock import FakeClock, MonotonicClock
from agentrt.core._errors import BudgetRefused
from agentrt.core._lag import LoopLag
from agentrt.pool import EndpointPool, EndpointSpec
from agentrt.tts._accuracy import AccuracyModel
from agentrt.tts._config import TTSConfig
from agentrt.tts._executor import CallModels, TTSExecutor, estimate_prompt_tokens
from agentrt.tts._latency import LatencyModel
from agentrt.tts._output import OutputFormat
from agentrt.tts._planner import SearchSpace
from tests.unit.vllm_double import FakeCluster, FakeVLLM, answers_chunks

MESSAGES = [{"role": "user", "content": "What is 3 plus 4?"}]


def pool_of(cluster: FakeCluster, *names: str) -> EndpointPool:
    specs = [EndpointSpec(url=cluster.url(n)) for n in names]
    return EndpointPool(specs, transport=cluster.transport, health_interval_s=0)


def majority(n: int) -> TTSConfig:
    return TTSConfig("majority", n, temperature=0.7, max_tokens=64)


async def test_majority_stops_early_once_the_vote_is_decided() -> None:
    server = FakeVLLM(chunks=answers_chunks(["7", "7", "7", "5", "4"]))
    async with pool_of(FakeCluster(a=server), "a") as pool:
        result = await TTSExecutor(pool).run(MESSAGES, slice_s=30, config=majority(5))
    assert result.answer is not None and result.answer.key == "7"
    assert result.branches.finished == 3 and result.branches.early_stopped == 2
    assert result.tokens_saved_by_early_stop > 0
    assert not result.degraded
    assert server.closed_streams == 1
    assert result.votes == {"7": 3.0}


async def test_without_a_decided_vote_every_branch_runs() -> None:
    server = FakeVLLM(chunks=answers_chunks(["7", "5", "7", "5"]))
    async with pool_of(FakeCluster(a=server), "a") as pool:
        result = await TTSExecutor(pool).run(MESSAGES, slice_s=30, config=majority(4))
    assert result.branches.finished == 4 and result.branches.early_stopped == 0
    assert result.answer is not None and result.answer.key in {"5", "7"}


async def test_the_slice_end_cuts_and_decides_from_what_finished() -> None:
    # Two branches finish, then the server stalls past the slice.
    chunks = answers_chunks(["9", "9", "1", "2"], finish_order=[0, 1, 2, 3])
    server = FakeVLLM(chunks=chunks, stall_after_chunks=6)
    clock = FakeClock(autojump=True)  # the stall jumps straight to the slice's end
    cluster = FakeCluster(a=server)
    specs = [EndpointSpec(url=cluster.url("a"))]
    async with EndpointPool(
        specs, transport=cluster.transport, health_interval_s=0, clock=clock
    ) as pool:
        result = await TTSExecutor(pool, clock=clock).run(MESSAGES, slice_s=0.3, config=majority(4))
    assert result.latency_s <= 0.3
    assert result.answer is not None and result.answer.key == "9"
    assert result.branches.finished == 2 and result.branches.cancelled == 2
    assert result.degraded and "slice ended" in (result.degraded_reason or "")


async def test_lost_branches_are_reissued_on_another_endpoint() -> None:
    broken = FakeVLLM(chunks=answers_chunks(["7", "7", "3"]), fail_after_chunks=4)
    healthy = FakeVLLM(chunks=answers_chunks(["7", "7"]))
    cluster = FakeCluster(a=broken, b=healthy)
    async with pool_of(cluster, "a", "b") as pool:
        result = await TTSExecutor(pool).run(MESSAGES, slice_s=30, config=majority(3))
    assert len(broken.requests) == 1 and len(healthy.requests) == 1
    assert healthy.requests[0]["n"] == 2  # only the lost branches are asked again
    assert result.answer is not None and result.answer.key == "7"
    assert result.degraded and "endpoint failures" in (result.degraded_reason or "")


async def test_seeds_derive_from_the_run_seed() -> None:
    server = FakeVLLM(chunks=answers_chunks(["7", "7"]))
    async with pool_of(FakeCluster(a=server), "a") as pool:
        for _ in range(2):
            await TTSExecutor(pool, run_seed=5).run(MESSAGES, slice_s=30, config=majority(2))
    assert server.requests[0]["seed"] == server.requests[1]["seed"]


def slow_models() -> CallModels:
    # A model on which even one greedy branch needs far more than 10 ms.
    return CallModels(latency={"plain": LatencyModel.prior("plain")}, accuracy=AccuracyModel())


async def test_a_tiny_slice_is_refused_or_degraded_before_spending() -> None:
    server = FakeVLLM(chunks=answers_chunks(["7"]))
    async with pool_of(FakeCluster(a=server), "a") as pool:
        strict = TTSExecutor(pool, models=slow_models(), on_refusal="raise")
        with pytest.raises(BudgetRefused, match="needs at least"):
            await strict.run(MESSAGES, slice_s=0.01)
        assert server.requests == []  # nothing was sent
        lenient = TTSExecutor(pool, models=slow_models())
        result = await lenient.run(MESSAGES, slice_s=0.01)
    assert result.degraded and "refused" in (result.degraded_reason or "")
    assert result.config is not None and result.config.strategy == "single"


async def test_a_refused_structured_call_keeps_its_token_cap() -> None:
    # A tool call cut to 8 tokens is JSON that parses as nothing: the fallback of a
    # call with tools keeps the space's cap (the slice may still cut it).
    tool = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}
    space = SearchSpace(groups=("plain",), max_tokens_choices=(64,))
    server = FakeVLLM(chunks=answers_chunks(["7", "7"]))
    async with pool_of(FakeCluster(a=server), "a") as pool:
        executor = TTSExecutor(pool, models=slow_models(), space=space)
        plain = await executor.run(MESSAGES, slice_s=0.05)
        structured = await executor.run(
            MESSAGES, slice_s=0.05, output=OutputFormat(tools=(tool,), tool_choice="required")
        )
    assert plain.config is not None and plain.config.max_tokens == 8
    assert structured.config is not None and structured.config.max_tokens == 64
    assert "refused" in (structured.degraded_reason or "")


def test_a_longer_slice_plans_more_compute() -> None:
    executor = TTSExecutor(
        pool_of(FakeCluster(a=FakeVLLM()), "a"),
        models=slow_models(),
        space=SearchSpace(groups=("plain",), max_tokens_choices=(64,)),
    )
    short = executor.plan(MESSAGES, 2.0)
    long = executor.plan(MESSAGES, 20.0)
    assert short.prediction is not None and long.prediction is not None
    assert long.prediction.accuracy >= short.prediction.accuracy
    assert long.config is not None and long.config.n >= 2


def test_prompt_token_estimate() -> None:
    assert estimate_prompt_tokens(MESSAGES) == len("What is 3 plus 4?") // 4 + 4


async def test_a_default_executor_keeps_greedy_only_groups_greedy() -> None:
    cluster = FakeCluster(a=FakeVLLM(), s=FakeVLLM())
    specs = [
        EndpointSpec(url=cluster.url("a")),
        EndpointSpec(url=cluster.url("s"), group="spec", greedy_only=True),
    ]
    async with EndpointPool(specs, transport=cluster.transport, health_interval_s=0) as pool:
        executor = TTSExecutor(pool, models=CallModels(latency={
            "plain": LatencyModel.prior("plain"), "spec": LatencyModel.prior("spec")}))  # fmt: skip
        assert executor.space.greedy_only_groups == ("spec",)


async def test_planning_load_counts_other_clients_the_server_reports() -> None:
    async with pool_of(FakeCluster(a=FakeVLLM()), "a") as pool:
        executor = TTSExecutor(pool)
        assert executor._live_load() == {"plain": 0}
        pool.endpoints[0].server_running, pool.endpoints[0].server_waiting = 6.0, 3.0
        assert executor._live_load() == {"plain": 9}  # another client's 9 sequences
        pool.endpoints[0].in_flight = 12
        assert executor._live_load() == {"plain": 15}  # ours, counted once, plus the queue


class _RecordingBackend:
    """The pool, recording the read deadline each request is given."""

    def __init__(self, pool: EndpointPool) -> None:
        self.pool = pool
        self.windows: list[float] = []

    def stream(self, request: Any, **options: Any) -> Any:
        deadline = options["deadline"]
        self.windows.append(deadline.hard_at - deadline.started_at)
        return self.pool.stream(request, **options)


@pytest.mark.parametrize(("lag_s", "window_s"), [(0.0, 0.99), (0.2, 0.79), (5.0, 0.49)])
async def test_reading_stops_early_by_the_loops_lag_up_to_half_the_slice(
    lag_s: float, window_s: float
) -> None:
    # A late loop hands the result over late by its lag; inside a run the hard cut
    # is armed early by the same lag, so reading must stop that much earlier.
    lag = LoopLag()
    lag.window.add(MonotonicClock().now(), lag_s)
    async with pool_of(FakeCluster(a=FakeVLLM(chunks=answers_chunks(["7"]))), "a") as pool:
        backend = _RecordingBackend(pool)
        executor = TTSExecutor(backend, lag=lag)
        await executor.run(MESSAGES, slice_s=1.0, config=TTSConfig("single", 1))
    assert backend.windows == [pytest.approx(window_s, abs=0.03)]
