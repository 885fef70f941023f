"""The pool against real vLLM CPU servers: streaming, cancellation, speculative group,
failover when a server dies mid-stream, and the launcher's bookkeeping."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from agentrt.core._clock import MonotonicClock
from agentrt.core._deadline import Deadline
from agentrt.core._errors import EndpointUnavailable, LocalPoolError, ModelNotServed
from agentrt.pool import (
    LOCAL_MODEL_NAME,
    ChatRequest,
    EndpointPool,
    EndpointSpec,
    LocalPool,
    ServerRecord,
)
from tests.integration.conftest import local_settings

ADDITION = [{"role": "user", "content": "What is 3 plus 4?"}]
STORY = [{"role": "user", "content": "Write a very long story about a dragon and a knight."}]


async def test_branches_stream_with_consistent_counts_and_timings(
    plain_specs: list[EndpointSpec],
) -> None:
    request = ChatRequest(messages=ADDITION, n=4, max_tokens=24, temperature=0.7, seed=3)
    async with EndpointPool(plain_specs) as pool, pool.stream(request) as stream:
        await stream.collect()
    assert stream.complete and not stream.cancelled
    assert stream.usage is not None and stream.prompt_tokens == stream.usage.prompt_tokens > 10
    assert sum(b.tokens for b in stream.branches.values()) == stream.usage.completion_tokens
    for branch in stream.branches.values():
        assert branch.finish_reason in {"stop", "length"}
        assert 1 <= branch.tokens <= 24
        if branch.finish_reason == "length":
            assert branch.tokens == 24
        assert branch.first_token_at is not None and branch.finished_at is not None
        assert stream.started_at < branch.first_token_at <= branch.finished_at
        assert branch.token_times == sorted(branch.token_times)
        assert branch.text


async def test_seeded_request_replays(plain_specs: list[EndpointSpec]) -> None:
    request = ChatRequest(messages=ADDITION, n=2, max_tokens=16, temperature=0.7, seed=11)
    async with EndpointPool(plain_specs[:1]) as pool:
        first = await (await pool.open(request)).collect()
        second = await (await pool.open(request)).collect()
    assert [b.text for b in first.branches.values()] == [b.text for b in second.branches.values()]


async def test_logprobs_when_asked(plain_specs: list[EndpointSpec]) -> None:
    request = ChatRequest(messages=ADDITION, max_tokens=8, logprobs=True, top_logprobs=2)
    async with EndpointPool(plain_specs) as pool, pool.stream(request) as stream:
        await stream.collect()
    branch = stream.branches[0]
    assert len(branch.logprobs) == branch.tokens
    assert branch.mean_logprob() is not None and branch.mean_logprob() <= 0.0  # type: ignore[operator]


async def test_closing_the_stream_stops_generation_on_the_server(
    plain_specs: list[EndpointSpec],
) -> None:
    clock = MonotonicClock()
    request = ChatRequest(messages=STORY, n=8, max_tokens=1500, temperature=0.8, seed=1)
    async with EndpointPool(plain_specs[:1], health_interval_s=0) as pool:
        client = pool.client(pool.endpoints[0])
        start = (await client.metrics())["vllm:generation_tokens_total"]
        async with pool.stream(request) as stream:
            async for _ in stream:
                if sum(b.tokens for b in stream.branches.values()) >= 40:
                    break
        assert stream.cancelled
        await clock.sleep(1.0)  # let the abort reach the engine
        before = (await client.metrics())["vllm:generation_tokens_total"]
        await clock.sleep(1.5)
        after = await client.metrics()
    assert after["vllm:generation_tokens_total"] == before
    assert after["vllm:num_requests_running"] == 0
    assert before - start < 8 * 1500  # far fewer tokens than the request would have made


async def test_speculative_group_reports_acceptance(all_specs: list[EndpointSpec]) -> None:
    # Repetitive text lets ngram prompt-lookup propose (and the target accept) drafts.
    prompt = "Repeat exactly: " + "one two three four five six seven eight. " * 6
    request = ChatRequest(messages=[{"role": "user", "content": prompt}], max_tokens=64)
    async with EndpointPool(all_specs) as pool:
        spec_endpoint = pool.groups["spec"][0]
        assert spec_endpoint.spec.speculative is not None
        async with pool.stream(request, group="spec") as stream:
            await stream.collect()
        metrics = await pool.client(spec_endpoint).metrics()
    assert stream.url == spec_endpoint.url and stream.complete
    assert metrics["vllm:spec_decode_num_drafts_total"] > 0
    assert metrics["vllm:spec_decode_num_draft_tokens_total"] > 0
    assert metrics["vllm:spec_decode_num_accepted_tokens_total"] > 0


async def test_unserved_model_is_a_clear_error(plain_specs: list[EndpointSpec]) -> None:
    spec = plain_specs[0].model_copy(update={"model": "gpt-5"})
    with pytest.raises(ModelNotServed, match=f"gpt-5.*{LOCAL_MODEL_NAME}"):
        async with EndpointPool([spec]):
            pass


async def test_pool_survives_a_server_killed_mid_stream(
    plain_specs: list[EndpointSpec], tmp_path: Path
) -> None:
    victim_pool = LocalPool(local_settings(tmp_path))
    (victim,) = await victim_pool.up(plain=1, kv_cache_gib=1.0, max_model_len=2048)
    try:
        specs = [victim.endpoint(), plain_specs[0]]
        request = ChatRequest(messages=STORY, n=4, max_tokens=400, temperature=0.8, seed=2)
        async with EndpointPool(specs, health_interval_s=0) as pool:
            with pytest.raises(EndpointUnavailable):
                async with pool.stream(request) as stream:
                    assert stream.url == victim.url  # listed first, equally idle
                    async for _ in stream:
                        if sum(b.tokens for b in stream.branches.values()) >= 20:
                            os.killpg(victim.pid, signal.SIGKILL)
            assert sum(b.tokens for b in stream.branches.values()) >= 20  # partial work kept
            assert not pool.endpoints[0].healthy(0.0)
            short = ChatRequest(messages=ADDITION, n=2, max_tokens=16, temperature=0.7)
            async with pool.stream(short, deadline=Deadline.after(60)) as survivor:
                await survivor.collect()
            assert survivor.url == plain_specs[0].url and survivor.complete
            await pool.check_health()
            assert not pool.endpoints[0].healthy(0.0)  # dead servers are not re-admitted
    finally:
        await victim_pool.down()


def test_launcher_records_and_stops_exactly_its_servers(
    local_servers: list[ServerRecord], tmp_path: Path
) -> None:
    # The session pool's servers are alive and recorded with their logs.
    for record in local_servers:
        assert Path(record.log_path).is_file()
        assert Path(f"/proc/{record.pid}").exists()
    # `down` on an empty state touches nothing.
    assert asyncio.run(LocalPool(local_settings(tmp_path)).down()) == []


def test_a_failed_start_shows_the_log_tail_and_cause(tmp_path: Path) -> None:
    pool = LocalPool(local_settings(tmp_path))
    with pytest.raises(
        LocalPoolError, match=r"(?s)failed to start.*likely cause: vLLM does not know"
    ) as info:
        asyncio.run(pool.up(plain=1, extra_args=["--no-such-flag"], timeout_s=120))
    assert "no-such-flag" in str(info.value)
    assert pool.alive() == []
