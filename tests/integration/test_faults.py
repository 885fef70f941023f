"""Faults on real vLLM CPU servers: a loopback proxy that delays, stalls, cuts or
rejects, and a server process frozen with SIGSTOP. Each test states what the pool
and the executor do under the fault (figures in docs/reliability.md).

Two proxies in front of the same server make two endpoints, so these tests need
only one session server (the SIGSTOP test needs two and freezes one of them).
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator

import pytest

from agentrt.core._clock import MonotonicClock
from agentrt.core._deadline import Deadline
from agentrt.core._errors import DeadlineExceeded, EndpointUnavailable
from agentrt.pool import ChatRequest, EndpointPool, EndpointSpec, ServerRecord
from agentrt.tracing import ChatSpans
from agentrt.tts._config import TTSConfig
from agentrt.tts._executor import TTSExecutor
from benchmarks.faults import FaultProxy

ADDITION = [{"role": "user", "content": "What is 3 plus 4?"}]
STORY = [{"role": "user", "content": "Write a very long story about a dragon and a knight."}]
MARGIN_S = 0.5  # a shared 2-core machine; measured lateness is in docs/reliability.md
CLOCK = MonotonicClock()


def _via(proxy: FaultProxy, spec: EndpointSpec) -> EndpointSpec:
    return spec.model_copy(update={"url": proxy.url})


@pytest.fixture
async def proxies(plain_specs: list[EndpointSpec]) -> AsyncIterator[tuple[FaultProxy, FaultProxy]]:
    host, port = plain_specs[0].address
    async with FaultProxy(host, port) as first, FaultProxy(host, port) as second:
        yield first, second


def _pool(specs: list[EndpointSpec]) -> EndpointPool:
    return EndpointPool(specs, health_interval_s=0)


async def test_503s_are_routed_around_without_ejecting(
    plain_specs: list[EndpointSpec], proxies: tuple[FaultProxy, FaultProxy]
) -> None:
    rejecting, healthy = proxies
    specs = [_via(rejecting, plain_specs[0]), _via(healthy, plain_specs[0])]
    async with _pool(specs) as pool:
        rejecting.reject_status = 503
        request = ChatRequest(messages=ADDITION, max_tokens=8)
        async with pool.stream(request, deadline=Deadline.after(30)) as stream:
            await stream.collect()
        assert stream.url == specs[1].url and stream.complete
        assert rejecting.rejected == 1  # tried once (listed first, equally idle), then the other
        assert pool.endpoints[0].healthy(CLOCK.now())  # overload is not a reason to eject


async def test_503s_everywhere_stop_retrying_at_the_deadline(
    plain_specs: list[EndpointSpec], proxies: tuple[FaultProxy, FaultProxy]
) -> None:
    rejecting, _ = proxies
    async with _pool([_via(rejecting, plain_specs[0])]) as pool:
        rejecting.reject_status = 503
        started = CLOCK.now()
        with pytest.raises((EndpointUnavailable, DeadlineExceeded)):
            await pool.open(
                ChatRequest(messages=ADDITION, max_tokens=8), deadline=Deadline.after(0.2)
            )
        elapsed = CLOCK.now() - started
    assert elapsed < 0.2 + MARGIN_S
    assert 1 <= rejecting.rejected <= 4  # RetrySettings.max_attempts, fewer when the deadline bites


async def test_added_latency_counts_against_the_deadline(
    plain_specs: list[EndpointSpec], proxies: tuple[FaultProxy, FaultProxy]
) -> None:
    slow, _ = proxies
    request = ChatRequest(messages=ADDITION, max_tokens=8)
    async with _pool([_via(slow, plain_specs[0])]) as pool:
        slow.delay_s = 0.6
        started = CLOCK.now()
        with pytest.raises(DeadlineExceeded):
            await pool.open(request, deadline=Deadline.after(0.3))
        assert CLOCK.now() - started < 0.3 + MARGIN_S
        started = CLOCK.now()
        async with pool.stream(request, deadline=Deadline.after(30)) as stream:
            await stream.collect()
        assert stream.complete and CLOCK.now() - started >= 0.6


async def test_a_cut_stream_is_reissued_elsewhere_keeping_finished_branches(
    plain_specs: list[EndpointSpec], proxies: tuple[FaultProxy, FaultProxy]
) -> None:
    cutting, healthy = proxies
    specs = [_via(cutting, plain_specs[0]), _via(healthy, plain_specs[0])]
    async with _pool(specs) as pool:
        cutting.cut_after(2500)  # past the headers, a few tokens into the branches
        executor = TTSExecutor(pool, run_seed=1, observer=ChatSpans())
        config = TTSConfig("majority", 4, max_tokens=48, temperature=0.7)
        result = await executor.run(ADDITION, slice_s=30, config=config)
        assert cutting.cut_connections >= 1 and healthy.connections >= 1
        assert result.branches.finished + result.branches.early_stopped == 4
        assert result.branches.cancelled == 0
        assert result.degraded_reason is not None and "endpoint failures" in result.degraded_reason
        assert not pool.endpoints[0].healthy(CLOCK.now())  # ejected after the cut
        cutting.heal()
        await pool.check_health()
        assert pool.endpoints[0].healthy(CLOCK.now())  # re-admitted once /health answers


async def test_a_stalled_stream_ends_at_the_slice_with_partial_work(
    plain_specs: list[EndpointSpec], proxies: tuple[FaultProxy, FaultProxy]
) -> None:
    stalling, _ = proxies
    async with _pool([_via(stalling, plain_specs[0])]) as pool:
        request = ChatRequest(messages=STORY, n=2, max_tokens=400, temperature=0.8, seed=4)
        started = CLOCK.now()
        async with pool.stream(request, deadline=Deadline.after(5.0)) as stream:
            async for _ in stream:
                if sum(b.tokens for b in stream.branches.values()) >= 3:
                    stalling.stall()
        elapsed = CLOCK.now() - started
        assert stream.cut_by_deadline and stream.error is None
        assert not stalling.flowing  # it stalled mid-stream, not before the first tokens
        assert sum(b.tokens for b in stream.branches.values()) >= 3  # partial text kept
        assert 5.0 - 0.05 <= elapsed < 5.0 + MARGIN_S
        # The executor under a stall: returns by its slice, degraded.
        executor = TTSExecutor(pool, run_seed=2, observer=ChatSpans())
        config = TTSConfig("majority", 4, max_tokens=400, temperature=0.8)
        started = CLOCK.now()
        stalling.stall()  # no response headers come: the open waits out the slice
        result = await executor.run(STORY, slice_s=1.5, config=config)
        assert CLOCK.now() - started < 1.5 + MARGIN_S
        assert result.degraded and result.branches.cancelled == 4
        stalling.resume()


async def test_a_frozen_server_is_ejected_and_readmitted_after_sigcont(
    local_servers: list[ServerRecord], plain_specs: list[EndpointSpec]
) -> None:
    if os.environ.get("AGENTRT_TEST_POOL") == "reuse" or len(plain_specs) < 2:
        pytest.skip("freezes a session server: needs the test session's own two plain servers")
    victim = next(s for s in local_servers if s.group == "plain")
    os.killpg(victim.pid, signal.SIGSTOP)
    try:
        # Frozen before the pool opens: the probe times out (5 s) and ejects it.
        async with _pool(
            [victim.endpoint(), *[s for s in plain_specs if s.url != victim.url]]
        ) as pool:
            assert not pool.endpoints[0].healthy(CLOCK.now())
            request = ChatRequest(messages=ADDITION, max_tokens=8)
            async with pool.stream(request, deadline=Deadline.after(30)) as stream:
                await stream.collect()
            assert stream.url != victim.url and stream.complete
            os.killpg(victim.pid, signal.SIGCONT)
            await pool.check_health()
            assert pool.endpoints[0].healthy(CLOCK.now())
            # Frozen mid-stream: no error arrives, so the read ends at the deadline.
            story = ChatRequest(messages=STORY, n=2, max_tokens=400, temperature=0.8, seed=5)
            started = CLOCK.now()
            froze = False
            async with pool.stream(story, deadline=Deadline.after(6.0)) as frozen:
                assert frozen.url == victim.url
                async for _ in frozen:
                    if not froze and sum(b.tokens for b in frozen.branches.values()) >= 3:
                        os.killpg(victim.pid, signal.SIGSTOP)
                        froze = True
            assert froze and frozen.cut_by_deadline and frozen.error is None
            assert CLOCK.now() - started < 6.0 + MARGIN_S
            assert sum(b.tokens for b in frozen.branches.values()) >= 3
    finally:
        os.killpg(victim.pid, signal.SIGCONT)
