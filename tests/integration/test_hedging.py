"""Hedged requests on a real vLLM CPU server: two fault proxies in front of it make
two endpoints, one of them a straggler (added latency) or stalled (no headers).
The hedge goes to the other endpoint at the calibrated model's p95 and wins.
Figures with hedging on and off are in docs/reliability.md and docs/BENCHMARKS.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentrt.core._clock import MonotonicClock
from agentrt.pool import EndpointPool, EndpointSpec
from agentrt.tracing import ChatSpans
from agentrt.tts import LatencyModel
from agentrt.tts._config import TTSConfig
from agentrt.tts._executor import CallModels, TTSExecutor
from benchmarks.faults import FaultProxy

ADDITION = [{"role": "user", "content": "What is 3 plus 4?"}]
CONFIG = TTSConfig("single", 1, max_tokens=16)
STRAGGLE_S = 2.5
UVICORN_KEEP_ALIVE_S = 5.0
"""How long vLLM's server (uvicorn's default ``timeout_keep_alive``) keeps an idle
keep-alive connection open."""
CLOCK = MonotonicClock()


@pytest.fixture
async def proxies(plain_specs: list[EndpointSpec]) -> AsyncIterator[tuple[FaultProxy, FaultProxy]]:
    host, port = plain_specs[0].address
    async with FaultProxy(host, port) as first, FaultProxy(host, port) as second:
        yield first, second


@pytest.fixture
def models(pool_latency: dict[str, LatencyModel]) -> CallModels:
    return CallModels(latency={"plain": pool_latency["plain"]})


def _pool(proxies: tuple[FaultProxy, ...], spec: EndpointSpec) -> EndpointPool:
    # Listed first and equally idle, the faulty proxy gets every primary request.
    specs = [spec.model_copy(update={"url": p.url}) for p in proxies]
    return EndpointPool(specs, health_interval_s=0)


async def test_a_straggling_endpoint_is_hedged_and_the_call_ends_far_sooner(
    plain_specs: list[EndpointSpec], proxies: tuple[FaultProxy, FaultProxy], models: CallModels
) -> None:
    straggler, _ = proxies
    async with _pool(proxies, plain_specs[0]) as pool:
        # The straggle is sized from this machine's speed, so hedging has the same room
        # on a slow CPU: three times an unhindered call, and long enough that a hedge
        # sent at the model's trigger (its p95 for the call) and taking twice an
        # unhindered call still ends first (at least STRAGGLE_S).
        started = CLOCK.now()
        first = await TTSExecutor(pool, models=models, hedge=None).run(
            ADDITION, slice_s=30, config=CONFIG
        )
        unhindered_s = CLOCK.now() - started
        trigger_s = first.predicted_latency_s or unhindered_s
        straggle_s = max(STRAGGLE_S, 3 * unhindered_s, 2 * (trigger_s + unhindered_s))
        straggler.delay_s = straggle_s
        started = CLOCK.now()
        plain = await TTSExecutor(pool, models=models, hedge=None, observer=ChatSpans()).run(
            ADDITION, slice_s=4 * straggle_s, config=CONFIG
        )
        without_s = CLOCK.now() - started
        assert not plain.hedged
        started = CLOCK.now()
        hedged = await TTSExecutor(pool, models=models, run_seed=1, observer=ChatSpans()).run(
            ADDITION, slice_s=4 * straggle_s, config=CONFIG
        )
        with_s = CLOCK.now() - started
    assert without_s >= straggle_s
    assert hedged.hedged and hedged.hedge_won and not hedged.degraded
    # It hedged at the latency model's trigger, well before the straggle would end.
    assert hedged.hedge_after_s is not None and hedged.hedge_after_s < straggle_s / 2
    assert with_s < without_s - 0.5  # generous: a shared 2-core machine
    assert [e.in_flight for e in pool.endpoints] == [0, 0]


async def test_an_endpoint_stalled_before_its_headers_is_hedged(
    plain_specs: list[EndpointSpec], proxies: tuple[FaultProxy, FaultProxy], models: CallModels
) -> None:
    stalled, healthy = proxies
    async with _pool(proxies, plain_specs[0]) as pool:
        stalled.stall()  # the request goes nowhere: no headers, no error, ever
        started = CLOCK.now()
        result = await TTSExecutor(pool, models=models, observer=ChatSpans()).run(
            ADDITION, slice_s=12, config=CONFIG
        )
        elapsed = CLOCK.now() - started
        stalled.resume()
    assert result.hedged and result.hedge_won and not result.degraded
    assert result.branches.finished == 1 and result.text
    assert healthy.connections >= 1
    assert elapsed < 12 - 2.0  # without the hedge it would wait out the whole slice
    # A stall alone never ejects. But vLLM (uvicorn) closes a keep-alive connection idle
    # for UVICORN_KEEP_ALIVE_S, and the primary went out on the probe's pooled connection:
    # on a CPU slow enough that the call outlasts that, the server disconnects under it,
    # which is a real disconnect and does eject.
    for endpoint in pool.endpoints:
        disconnected = "disconnected" in (endpoint.last_error or "")
        assert endpoint.healthy(CLOCK.now()) or (
            elapsed >= UVICORN_KEEP_ALIVE_S and disconnected
        ), (endpoint.url, endpoint.last_error, elapsed)
