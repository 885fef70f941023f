"""Hedged requests: the pure policy (trigger, token bucket) and the executor racing a
duplicate against a straggler, on the in-process vLLM double. Time is a fake clock:
no test here waits on, or asserts about, real time."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentrt.core._clock import FakeClock
from agentrt.core._errors import ConfigurationError, ProtocolError
from agentrt.pool import EndpointPool, EndpointSpec
from agentrt.tracing import AGENTRT, ChatSpans
from agentrt.tts._accuracy import AccuracyModel
from agentrt.tts._answers import LastNumber
from agentrt.tts._config import TTSConfig
from agentrt.tts._curve import Curve
from agentrt.tts._executor import CallModels, TTSExecutor, estimate_prompt_tokens
from agentrt.tts._hedging import HedgePolicy, TokenBucket, hedge_at, hedge_delay_s
from agentrt.tts._latency import LatencyModel, TTFTModel
from agentrt.tts._length import LengthModel
from agentrt.tts._planner import PlanInputs, SearchSpace, predict
from agentrt.tts._result import BranchCounts
from tests.unit.vllm_double import FakeCluster, FakeVLLM, answers_chunks, sse, token_chunk

MESSAGES = [{"role": "user", "content": "What is 3 plus 4?"}]
FAST = LatencyModel("plain", TTFTModel(base_s=0.05), Curve.of([(1, 0.001), (32, 0.001)]))
MODELS = CallModels(latency={"plain": FAST})
KEEPALIVE = b": keepalive\n\n"


def majority(n: int) -> TTSConfig:
    return TTSConfig("majority", n, temperature=0.7, max_tokens=64)


def pool_of(cluster: FakeCluster, *names: str, clock: object = None) -> EndpointPool:
    specs = [EndpointSpec(url=cluster.url(n)) for n in names]
    return EndpointPool(
        specs,
        transport=cluster.transport,
        health_interval_s=0,
        clock=clock,  # type: ignore[arg-type]
    )


def trigger_s(config: TTSConfig, q: float = 0.95) -> float:
    """The fast model's q-quantile for ``config`` at no load: when the hedge should fire."""
    inputs = PlanInputs(
        slice_s=30,
        prompt_tokens=estimate_prompt_tokens(MESSAGES),
        latency_models={"plain": FAST},
        length_model=LengthModel(),
        accuracy_model=AccuracyModel(),
        sla_quantile=q,
        space=SearchSpace(groups=("plain",)),
    )
    return predict(config, inputs).latency_quantile_s


async def spin(condition: Callable[[], bool], turns: int = 2000) -> None:
    """Let the event loop run until ``condition`` holds (a bounded number of turns)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def slow(chunks: list[bytes], turns: int = 300) -> list[bytes]:
    """A straggler's body: many keep-alive comments (event-loop turns) before the answer."""
    return [KEEPALIVE] * turns + chunks


# -- the policy -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("trigger_quantile", 1.0, "in (0, 1)"),
        ("trigger_quantile", math.nan, "in (0, 1)"),
        ("budget_ratio", -0.1, "in [0, 1]"),
        ("burst", 0.5, "finite and >= 1"),
        ("burst", math.inf, "finite and >= 1"),
        ("min_delay_s", -1.0, "finite and >= 0"),
    ],
)
def test_a_bad_policy_names_its_field_and_value(field: str, value: float, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"HedgePolicy\.{field} must be .*got {value}"):
        HedgePolicy(**{field: value})
    assert expected


def test_coerce_turns_flags_into_policies() -> None:
    assert HedgePolicy.coerce(True) == HedgePolicy()
    assert HedgePolicy.coerce(False) is None and HedgePolicy.coerce(None) is None
    custom = HedgePolicy(budget_ratio=0.1)
    assert HedgePolicy.coerce(custom) is custom
    with pytest.raises(ConfigurationError, match=r"hedge must be a HedgePolicy.*got 'yes'"):
        HedgePolicy.coerce("yes")  # type: ignore[arg-type]


def test_the_bucket_starts_full_and_refills_by_calls() -> None:
    bucket = TokenBucket(ratio=0.25, capacity=2.0)
    assert bucket.try_spend() and bucket.try_spend()
    assert not bucket.try_spend() and bucket.tokens == 0.0
    for _ in range(3):
        bucket.deposit()
    assert not bucket.available
    bucket.deposit()
    assert bucket.try_spend()
    for _ in range(100):
        bucket.deposit()
    assert bucket.tokens == 2.0  # capped at the burst


def test_twenty_deposits_of_five_percent_make_one_hedge() -> None:
    bucket = TokenBucket(ratio=0.05, capacity=1.0, tokens=0.0)
    for _ in range(19):
        bucket.deposit()
    assert not bucket.available
    bucket.deposit()
    assert bucket.try_spend()


@pytest.mark.parametrize(("ratio", "burst"), [(0.05, 2.0), (0.02, 1.0), (0.1, 3.0)])
def test_the_bucket_bounds_hedges_to_its_ratio_over_many_calls(ratio: float, burst: float) -> None:
    bucket = TokenBucket(ratio=ratio, capacity=burst)
    calls = 2000
    hedges = 0
    for _ in range(calls):  # every call wants a hedge: the worst case
        bucket.deposit()
        hedges += bucket.try_spend()
    assert ratio * calls - 1 <= hedges <= burst + ratio * calls


def test_a_bad_bucket_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"TokenBucket\.ratio must be in \[0, 1\], got 2"):
        TokenBucket(ratio=2, capacity=1)
    with pytest.raises(ConfigurationError, match=r"TokenBucket\.tokens must be in .*got 5"):
        TokenBucket(ratio=0.1, capacity=1, tokens=5)


def test_the_trigger_is_the_models_quantile_at_the_plans_load() -> None:
    config = majority(4)
    inputs = PlanInputs(
        slice_s=30,
        prompt_tokens=20,
        latency_models={"plain": LatencyModel.prior("plain")},
        length_model=LengthModel(),
        accuracy_model=AccuracyModel(),
        space=SearchSpace(groups=("plain",)),
    )
    policy = HedgePolicy()
    p95 = predict(config, inputs).latency_quantile_s
    assert hedge_delay_s(config, inputs, policy) == p95
    loaded = PlanInputs(**{**inputs.__dict__, "load": {"plain": 24}})
    assert hedge_delay_s(config, loaded, policy) > p95  # busier servers: a later hedge
    assert hedge_delay_s(config, inputs, HedgePolicy(min_delay_s=100.0)) == 100.0
    later = hedge_delay_s(config, inputs, HedgePolicy(trigger_quantile=0.5))
    assert later <= p95


def test_no_hedge_fires_when_it_could_not_finish_before_reading_stops() -> None:
    assert hedge_at(10.0, 1.0, 0.5, read_until_at=12.0) == 11.0
    assert hedge_at(10.0, 1.0, 0.5, read_until_at=11.4) is None
    assert hedge_at(10.0, 1.0, 0.0, read_until_at=math.inf) == 11.0
    with pytest.raises(ConfigurationError, match="delay_s must be >= 0, got -1"):
        hedge_at(0.0, -1.0, 0.0, 1.0)


def test_branch_counts_check_hedge_figures() -> None:
    BranchCounts(requested=4, finished=4, hedged=2, hedge_finished=2)
    with pytest.raises(ConfigurationError, match="hedge_finished 3"):
        BranchCounts(requested=4, finished=4, hedged=2, hedge_finished=3)
    with pytest.raises(ConfigurationError, match=r"BranchCounts\.hedged must be >= 0, got -1"):
        BranchCounts(requested=4, hedged=-1)


# -- the executor -------------------------------------------------------------------------


async def test_the_hedge_fires_at_p95_for_an_endpoint_stalled_before_its_headers() -> None:
    clock = FakeClock()
    stalled = FakeVLLM(header_delay_s=3600, clock=clock)
    healthy = FakeVLLM(chunks=answers_chunks(["7", "7"]), clock=clock)
    async with pool_of(FakeCluster(a=stalled, b=healthy), "a", "b", clock=clock) as pool:
        executor = TTSExecutor(pool, models=MODELS, clock=clock, observer=ChatSpans())
        start = clock.now()
        call = asyncio.create_task(executor.run(MESSAGES, slice_s=30, config=majority(2)))
        await spin(lambda: len(stalled.requests) == 1)
        clock.advance(trigger_s(majority(2)) - 0.001)
        for _ in range(50):
            await asyncio.sleep(0)
        assert healthy.requests == []  # not yet: the call is still inside its p95
        clock.advance(0.001)
        result = await call
    assert healthy.request_times == [pytest.approx(start + trigger_s(majority(2)))]
    assert healthy.requests[0]["n"] == 2
    assert result.hedge_after_s == pytest.approx(trigger_s(majority(2)))
    assert result.hedged and result.hedge_won and not result.degraded
    assert result.answer is not None and result.answer.key == "7"
    assert result.branches == BranchCounts(requested=2, finished=2, hedged=2, hedge_finished=2)
    assert [e.in_flight for e in pool.endpoints] == [0, 0]  # the stalled open was cancelled
    assert all(e.healthy(clock.now()) for e in pool.endpoints)  # slow is not dead


async def test_the_straggler_loses_and_its_request_is_cancelled() -> None:
    clock = FakeClock(autojump=True)
    straggler = FakeVLLM(chunks=answers_chunks(["7"]), stall_after_chunks=1)  # stops sending
    healthy = FakeVLLM(chunks=answers_chunks(["7"]))
    async with pool_of(FakeCluster(a=straggler, b=healthy), "a", "b", clock=clock) as pool:
        executor = TTSExecutor(pool, models=MODELS, clock=clock, observer=ChatSpans())
        config = TTSConfig("single", 1, max_tokens=64)
        result = await executor.run(MESSAGES, slice_s=30, config=config)
    assert result.hedged and result.hedge_won
    assert straggler.aborted_streams == 1 and healthy.aborted_streams == 0
    assert result.text == "The answer is 7"
    assert healthy.requests[0]["seed"] != straggler.requests[0]["seed"]  # a fresh sample


async def test_branches_finished_on_either_request_count_toward_n() -> None:
    clock = FakeClock()
    # The primary finishes branch 0 ("7") and stalls; the hedge asks only for the two
    # missing branches and supplies them ("5", then "7").
    primary = FakeVLLM(chunks=answers_chunks(["7", "1", "1"]), stall_after_chunks=4)
    hedge = FakeVLLM(chunks=answers_chunks(["5", "7"]))
    async with pool_of(FakeCluster(a=primary, b=hedge), "a", "b", clock=clock) as pool:
        executor = TTSExecutor(pool, models=MODELS, clock=clock, observer=ChatSpans())
        call = asyncio.create_task(executor.run(MESSAGES, slice_s=30, config=majority(3)))
        await spin(lambda: primary.chunks_sent == 4)
        for _ in range(50):  # the client reads branch 0's finish; the server stalls
            await asyncio.sleep(0)
        clock.advance(trigger_s(majority(3)))
        result = await call
    assert hedge.requests[0]["n"] == 2
    assert result.branches == BranchCounts(requested=3, finished=3, hedged=2, hedge_finished=2)
    assert result.votes == {"7": 2.0, "5": 1.0}
    assert primary.aborted_streams == 1  # the primary's last two branches were cancelled


async def test_no_hedge_with_one_endpoint() -> None:
    clock = FakeClock()
    straggler = FakeVLLM(chunks=slow(answers_chunks(["7", "7"])))
    async with pool_of(FakeCluster(a=straggler), "a", clock=clock) as pool:
        executor = TTSExecutor(pool, models=MODELS, clock=clock, observer=ChatSpans())
        before = clock.now()
        result = await executor.run(MESSAGES, slice_s=30, config=majority(2))
    assert not result.hedged and len(straggler.requests) == 1
    assert clock.now() == before  # no hedge timer was even started
    assert result.hedge_after_s is not None  # it would have hedged, had there been another


async def test_hedging_can_be_turned_off() -> None:
    clock = FakeClock()
    straggler = FakeVLLM(chunks=slow(answers_chunks(["7", "7"])))
    healthy = FakeVLLM(chunks=answers_chunks(["7", "7"]))
    async with pool_of(FakeCluster(a=straggler, b=healthy), "a", "b", clock=clock) as pool:
        result = await TTSExecutor(
            pool, models=MODELS, clock=clock, hedge=None, observer=ChatSpans()
        ).run(MESSAGES, slice_s=30, config=majority(2))
    assert not result.hedged and result.hedge_after_s is None and healthy.requests == []


async def test_the_bucket_limits_hedges_over_many_calls() -> None:
    clock = FakeClock(autojump=True)
    straggler = FakeVLLM(chunks=answers_chunks(["7"]), stall_after_chunks=1)  # stops sending
    healthy = FakeVLLM(chunks=answers_chunks(["7"]))
    policy = HedgePolicy(budget_ratio=0.125, burst=1.0)
    async with pool_of(FakeCluster(a=straggler, b=healthy), "a", "b", clock=clock) as pool:
        executor = TTSExecutor(pool, models=MODELS, clock=clock, hedge=policy, observer=ChatSpans())
        config = TTSConfig("single", 1, max_tokens=64)
        hedged = [
            (await executor.run(MESSAGES, slice_s=30, config=config)).hedged for _ in range(40)
        ]
    # Full at the start (1 token), then 1/8 of a token a call: calls 1, 9, 17, 25, 33.
    assert [i + 1 for i, h in enumerate(hedged) if h] == [1, 9, 17, 25, 33]
    assert len(straggler.requests) == 40 and len(healthy.requests) == 5


async def test_no_hedge_that_could_not_finish_inside_the_slice() -> None:
    clock = FakeClock()
    straggler = FakeVLLM(chunks=slow(answers_chunks(["7"])))
    healthy = FakeVLLM(chunks=answers_chunks(["7"]))
    async with pool_of(FakeCluster(a=straggler, b=healthy), "a", "b", clock=clock) as pool:
        executor = TTSExecutor(pool, models=MODELS, clock=clock, observer=ChatSpans())
        config = TTSConfig("single", 1, max_tokens=64)
        # p95 and the mean are both ~0.114 s: a hedge at 0.114 s would end past 0.2 s.
        result = await executor.run(MESSAGES, slice_s=0.2, config=config)
    assert result.hedge_after_s is None and not result.hedged and healthy.requests == []


async def test_a_hedged_call_still_ends_at_its_slice() -> None:
    clock = FakeClock(autojump=True)
    stalled = FakeVLLM(header_delay_s=3600)
    partial = [sse(token_chunk(0, "The answer is 4")), sse(token_chunk(0, "2", "stop"))]
    stalling = FakeVLLM(chunks=partial, stall_after_chunks=1)
    async with pool_of(FakeCluster(a=stalled, b=stalling), "a", "b", clock=clock) as pool:
        executor = TTSExecutor(pool, models=MODELS, clock=clock, observer=ChatSpans())
        config = TTSConfig("single", 1, max_tokens=64)
        result = await executor.run(
            MESSAGES, slice_s=0.3, config=config, answer_spec=LastNumber(from_partial=True)
        )
        assert [e.in_flight for e in pool.endpoints] == [0, 0]
    assert result.hedged and result.degraded and "slice ended" in (result.degraded_reason or "")
    assert result.branches.cancelled == 1 and result.latency_s <= 0.3
    assert result.answer is not None and result.answer.key == "4"  # the hedge's partial text


# -- malformed bodies -----------------------------------------------------------------------


async def test_a_malformed_chunk_mid_stream_is_reissued_elsewhere() -> None:
    chunks = answers_chunks(["7", "7", "7"], finish_order=[0, 1, 2])
    malformed = FakeVLLM(chunks=[*chunks[:4], b"data: {\n\n"])  # branch 0 done, then junk
    healthy = FakeVLLM(chunks=answers_chunks(["7", "7"]))
    async with pool_of(FakeCluster(a=malformed, b=healthy), "a", "b") as pool:
        result = await TTSExecutor(pool, models=MODELS, hedge=None, observer=ChatSpans()).run(
            MESSAGES, slice_s=30, config=majority(3)
        )
        assert pool.endpoints[0].ejected_until == math.inf  # ejected until /health answers
    assert healthy.requests[0]["n"] == 2  # branch 0 was kept
    assert result.branches.finished + result.branches.early_stopped == 3
    assert result.degraded and "chunk is not JSON" in (result.degraded_reason or "")


async def test_a_malformed_chunk_on_the_only_endpoint_keeps_what_finished() -> None:
    chunks = answers_chunks(["7", "7"], finish_order=[0, 1])
    malformed = FakeVLLM(chunks=[*chunks[:3], b"data: {\n\n"])
    async with pool_of(FakeCluster(a=malformed), "a") as pool:
        result = await TTSExecutor(pool, models=MODELS, observer=ChatSpans()).run(
            MESSAGES, slice_s=30, config=majority(2)
        )
    assert result.branches.finished == 1 and result.branches.cancelled == 1
    assert result.answer is not None and result.answer.key == "7" and result.degraded
    assert len(malformed.requests) == 1  # the same server would answer the same


async def test_a_server_that_is_not_openai_fails_the_call_when_no_other_works() -> None:
    html = FakeVLLM(content_type="text/html")
    async with pool_of(FakeCluster(a=html), "a") as pool:
        failed = await TTSExecutor(pool, models=MODELS, observer=ChatSpans()).run(
            MESSAGES, slice_s=30, config=majority(2)
        )
    # The call returns, degraded, with the endpoint's error as its failure
    # (the chat model raises it).
    assert failed.degraded and failed.answer is None
    assert isinstance(failed.failure, ProtocolError)
    assert re.search(r"http://a\.test:8000.*text/event-stream", str(failed.failure))
    html = FakeVLLM(content_type="text/html")
    healthy = FakeVLLM(chunks=answers_chunks(["7", "7"]))
    async with pool_of(FakeCluster(a=html, b=healthy), "a", "b") as pool:
        result = await TTSExecutor(pool, models=MODELS, observer=ChatSpans()).run(
            MESSAGES, slice_s=30, config=majority(2)
        )
    assert result.answer is not None and result.answer.key == "7"
    assert len(html.requests) == 1 and len(healthy.requests) == 1


# -- the trace --------------------------------------------------------------------------------


async def test_the_chat_span_says_the_call_was_hedged_and_who_won(
    spans: InMemorySpanExporter,
) -> None:
    clock = FakeClock(autojump=True)
    straggler = FakeVLLM(chunks=answers_chunks(["7"]), stall_after_chunks=1)  # stops sending
    healthy = FakeVLLM(chunks=answers_chunks(["7"]))
    async with pool_of(FakeCluster(a=straggler, b=healthy), "a", "b", clock=clock) as pool:
        executor = TTSExecutor(pool, models=MODELS, clock=clock, observer=ChatSpans())
        await executor.run(MESSAGES, slice_s=30, config=TTSConfig("single", 1, max_tokens=64))
    finished = spans.get_finished_spans()
    chat = next(s for s in finished if s.name.startswith("chat"))
    attrs = chat.attributes or {}
    assert attrs[AGENTRT.HEDGED] is True and attrs[AGENTRT.HEDGE_WON] is True
    assert attrs[AGENTRT.HEDGE_BRANCHES] == 1 and attrs[AGENTRT.REQUESTS] == 2
    assert attrs[AGENTRT.HEDGE_AFTER_S] == pytest.approx(
        trigger_s(TTSConfig("single", 1, max_tokens=64))
    )
    branches = {
        (b.attributes or {})[AGENTRT.BRANCH_HEDGE]: (b.attributes or {})[AGENTRT.BRANCH_OUTCOME]
        for b in finished
        if b.name.startswith("branch")
    }
    assert branches == {True: "finished", False: "superseded"}


async def test_executors_of_one_runtime_on_one_pool_share_one_hedge_budget() -> None:
    from agentrt.langgraph import Runtime
    from agentrt.pool import EndpointPool, EndpointSpec

    one = EndpointPool([EndpointSpec(url="http://127.0.0.1:9")], health_interval_s=0)
    other = EndpointPool([EndpointSpec(url="http://127.0.0.1:10")], health_interval_s=0)
    try:
        runtime = Runtime(pool=one)
        first, second = runtime.executor(), runtime.executor()
        assert first.hedge_bucket is second.hedge_bucket
        assert first.hedge_bucket is not None
        first.hedge_bucket.tokens = 0.0
        assert second.hedge_bucket is not None and not second.hedge_bucket.available
        # Another pool, or another runtime, has its own budget; so has a bare executor.
        assert runtime.executor(pool=other).hedge_bucket is not first.hedge_bucket
        assert Runtime(pool=one).executor().hedge_bucket is not first.hedge_bucket
        assert TTSExecutor(one).hedge_bucket is not first.hedge_bucket
    finally:
        await one.aclose()
        await other.aclose()
