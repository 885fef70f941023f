"""Hostile server responses through the vLLM double: malformed JSON, wrong types,
non-UTF-8 bytes, empty and enormous streams, junk model lists. Each is read to an
agentrt error naming the endpoint, or handled; never a hang or another exception."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrt.core._deadline import Deadline
from agentrt.core._errors import EndpointError, ProtocolError
from agentrt.pool import ChatRequest, EndpointPool, EndpointSpec
from agentrt.tts._config import TTSConfig
from agentrt.tts._executor import TTSExecutor
from tests.unit.vllm_double import FakeCluster, FakeVLLM, sse, token_chunk, usage_chunk

REQUEST = ChatRequest(messages=[{"role": "user", "content": "3+4?"}], n=2, temperature=0.7)
URL = "http://a.test:8000"
FAST = settings(max_examples=60, deadline=None)

json_values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
choice_like = st.fixed_dictionaries(
    {},
    optional={
        "index": json_values,
        "delta": st.one_of(json_values, st.fixed_dictionaries({"content": json_values})),
        "finish_reason": json_values,
        "token_ids": json_values,
        "logprobs": json_values,
    },
)
chunk_like = st.fixed_dictionaries(
    {},
    optional={
        "choices": st.one_of(json_values, st.lists(choice_like, max_size=3)),
        "usage": json_values,
        "error": json_values,
        "object": json_values,
    },
)
payloads = st.one_of(
    chunk_like.map(sse),
    json_values.map(lambda v: sse(json.dumps(v))),
    st.binary(max_size=60).map(lambda b: b"data: " + b + b"\n\n"),
    st.binary(max_size=60),
    st.sampled_from([sse("[DONE]"), b"data: {\n\n", b": comment\n\n", b"\n\n", b"event: x\n"]),
)


def _pool(server: FakeVLLM) -> EndpointPool:
    cluster = FakeCluster(a=server)
    return EndpointPool([EndpointSpec(url=URL)], transport=cluster.transport, health_interval_s=0)


@FAST
@given(chunks=st.lists(payloads, max_size=8))
async def test_any_stream_is_read_or_named(chunks: list[bytes]) -> None:
    async with _pool(FakeVLLM(chunks=chunks)) as pool:
        try:
            async with pool.stream(REQUEST, deadline=Deadline.after(5)) as stream:
                await stream.collect()
        except EndpointError as exc:
            assert exc.url == URL and URL in str(exc)
        else:
            assert all(isinstance(b.text, str) for b in stream.branches.values())
        assert pool.endpoints[0].in_flight == 0


@FAST
@given(body=st.one_of(st.binary(max_size=80), json_values.map(lambda v: json.dumps(v).encode())))
async def test_any_model_list_is_used_or_named(body: bytes) -> None:
    server = FakeVLLM(models_body=body)
    try:
        async with _pool(server):
            pass
    except ProtocolError as exc:
        assert URL in str(exc)
    except EndpointError as exc:  # a body naming models we do not ask for
        assert URL in str(exc)


async def test_an_empty_stream_is_read_as_nothing() -> None:
    async with _pool(FakeVLLM(chunks=[])) as pool, pool.stream(REQUEST) as stream:
        await stream.collect()
    assert not stream.complete
    assert all(b.tokens == 0 and not b.finished for b in stream.branches.values())


@pytest.mark.timeout(60)
async def test_an_enormous_stream_is_read_in_linear_time() -> None:
    # 40,000 token chunks (~4 MB of SSE) of two branches: read once, counted exactly.
    chunks = [sse(token_chunk(i % 2, "x" * 20)) for i in range(40_000)]
    chunks += [sse(token_chunk(0, ".", "length")), sse(token_chunk(1, ".", "length"))]
    chunks += [sse(usage_chunk(10, 40_002)), sse("[DONE]")]
    long = dataclasses.replace(REQUEST, max_tokens=20_001)  # more would be a ProtocolError
    async with _pool(FakeVLLM(chunks=chunks)) as pool, pool.stream(long) as stream:
        await stream.collect()
    assert stream.complete and stream.completion_tokens == 40_002
    assert len(stream.branches[0].text) == 20_000 * 20 + 1


async def test_non_utf8_bytes_in_a_stream_are_a_protocol_error_or_replaced() -> None:
    chunks = [b"data: " + b'{"choices": [{"index": 0, "delta": {"content": "\xff\xfe"}}]}\n\n']
    async with _pool(FakeVLLM(chunks=chunks)) as pool:
        try:
            async with pool.stream(REQUEST) as stream:
                await stream.collect()
        except EndpointError as exc:
            assert URL in str(exc)
        else:
            assert all(isinstance(b.text, str) for b in stream.branches.values())


@settings(max_examples=15, deadline=None)
@given(chunks=st.lists(payloads, max_size=6))
async def test_the_executor_degrades_or_names_the_endpoint_on_any_stream(
    chunks: list[bytes],
) -> None:
    """A stream that breaks is re-issued while the slice lasts, then the call degrades;
    one that is not the OpenAI protocol fails the call with the endpoint named."""
    cluster = FakeCluster(a=FakeVLLM(chunks=chunks))
    async with EndpointPool(
        [EndpointSpec(url=URL)], transport=cluster.transport, health_interval_s=0
    ) as pool:
        executor = TTSExecutor(pool)
        config = TTSConfig("majority", 2, max_tokens=16, temperature=0.7)
        try:
            result = await executor.run(REQUEST.messages, slice_s=0.5, config=config)
        except EndpointError as exc:
            assert URL in str(exc)
            return
    assert result.branches.requested == 2
    assert result.degraded or result.branches.finished + result.branches.early_stopped == 2
