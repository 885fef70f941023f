"""The anytime TTS executor on real vLLM CPU servers: slices are kept, majority
beats a single sample, early stopping saves tokens, cut calls free the server."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import AsyncIterator

import pytest

from agentrt.core._clock import MonotonicClock
from agentrt.pool import EndpointPool, EndpointSpec
from agentrt.tasks import answer_key, answer_spec_for, suite
from agentrt.tts import LatencyModel
from agentrt.tts._config import TTSConfig
from agentrt.tts._executor import CallModels, TTSExecutor
from agentrt.tts._result import Result

MARGIN_S = 0.3  # generous for a shared 2-core machine; measured figures in docs/tts.md
LATENCY: dict[str, LatencyModel] = {}
"""This machine's measured latency models (conftest's ``pool_latency``)."""


@pytest.fixture(autouse=True)
def _measured_latency(pool_latency: dict[str, LatencyModel]) -> None:
    LATENCY.update(pool_latency)


@pytest.fixture
async def pool(plain_specs: list[EndpointSpec]) -> AsyncIterator[EndpointPool]:
    async with EndpointPool(plain_specs) as opened:
        yield opened


def executor(pool: EndpointPool, run_seed: int = 0) -> TTSExecutor:
    return TTSExecutor(
        pool, models=CallModels(latency={"plain": LATENCY["plain"]}), run_seed=run_seed
    )


@pytest.mark.parametrize(
    "config",
    [
        TTSConfig("single", 1, max_tokens=256),
        TTSConfig("majority", 8, max_tokens=256, temperature=0.7),
        TTSConfig("weighted", 8, max_tokens=256, temperature=0.7),
        TTSConfig("best_of_n", 8, max_tokens=256, temperature=0.7),
    ],
    ids=lambda c: f"{c.strategy}-{c.n}",
)
async def test_a_one_second_slice_is_kept(pool: EndpointPool, config: TTSConfig) -> None:
    messages = [{"role": "user", "content": "Write a long story about a dragon."}]
    result = await executor(pool).run(messages, slice_s=1.0, config=config)
    assert result.latency_s <= 1.0 + MARGIN_S
    assert result.branches.requested == config.n


async def _accuracy(pool: EndpointPool, config: TTSConfig, count: int) -> tuple[float, int]:
    tasks = suite("addition", 7, count)
    limit = asyncio.Semaphore(8)

    async def one(i: int) -> Result:
        task = tasks[i]
        async with limit:
            return await executor(pool, run_seed=i).run(
                [{"role": "user", "content": task.prompt}], slice_s=60.0, config=config,
                answer_spec=answer_spec_for(task),
            )  # fmt: skip

    results = await asyncio.gather(*(one(i) for i in range(count)))
    right = [
        r.answer is not None and r.answer.key == answer_key(t)
        for r, t in zip(results, tasks, strict=True)
    ]
    return statistics.mean(right), sum(r.completion_tokens for r in results)


async def test_majority_of_8_beats_a_single_sample(pool: EndpointPool) -> None:
    single, _ = await _accuracy(pool, TTSConfig("single", 1, max_tokens=64), 40)
    majority, _ = await _accuracy(
        pool, TTSConfig("majority", 8, max_tokens=64, temperature=0.7), 40
    )
    print(f"addition suite, 40 tasks: single {single:.3f}, majority@8 {majority:.3f}")
    assert majority > single


async def test_early_stopping_saves_tokens_and_cancelling_frees_the_server(
    pool: EndpointPool,
) -> None:
    # A question the branches agree on: the vote is decided before all finish.
    messages = [{"role": "user", "content": "What is 2 plus 2? Answer with just the number."}]
    config = TTSConfig("majority", 16, max_tokens=200, temperature=0.7)
    result = await executor(pool, run_seed=3).run(messages, slice_s=60.0, config=config)
    assert result.branches.early_stopped > 0
    assert result.tokens_saved_by_early_stop > 0
    assert result.completion_tokens < 16 * 200
    # Closing the cancelled branches' stream aborts them in vLLM. How soon the server
    # shows it depends on its speed, so poll instead of waiting a fixed second, up to
    # half the time the 16 branches would need to generate their 200 tokens unaborted
    # at this machine's measured speed: a stream left open would not be freed by then.
    freed_within_s = max(1.0, 0.5 * 200 * LATENCY["plain"].per_token_s(16))
    clock = MonotonicClock()
    give_up_at = clock.now() + freed_within_s
    running = {}
    while clock.now() < give_up_at:
        running = {
            e.url: (await pool.client(e).metrics())["vllm:num_requests_running"]
            for e in pool.endpoints
        }
        if not any(running.values()):
            break
        await clock.sleep(0.25)
    assert not any(running.values()), f"still running {freed_within_s:.1f}s after: {running}"
