"""Streaming and error mapping against the in-process vLLM double."""

from __future__ import annotations

import pytest

from agentrt.core._clock import FakeClock
from agentrt.core._deadline import Deadline
from agentrt.core._errors import (
    DeadlineExceeded,
    EndpointUnavailable,
    ModelNotServed,
    ProtocolError,
)
from agentrt.pool import ChatRequest, EndpointPool, EndpointSpec
from tests.unit.vllm_double import FakeCluster, FakeVLLM, branch_chunks, sse, token_chunk

REQUEST = ChatRequest(messages=[{"role": "user", "content": "3+4?"}], n=2, temperature=0.7)


def pool_for(cluster: FakeCluster, *names: str, **kwargs: object) -> EndpointPool:
    specs = [EndpointSpec(url=cluster.url(n)) for n in names]
    return EndpointPool(specs, transport=cluster.transport, health_interval_s=0, **kwargs)  # type: ignore[arg-type]


async def test_branches_stream_with_counts_and_text() -> None:
    cluster = FakeCluster(a=FakeVLLM(chunks=branch_chunks(3, ["The", " answer", " is", " 7"])))
    request = ChatRequest(messages=[{"role": "user", "content": "?"}], n=3, temperature=0.7)
    async with pool_for(cluster, "a") as pool, pool.stream(request) as stream:
        events = [e async for e in stream]
    assert len(events) == 3 * 4 + 3 + 1  # tokens, finishes, usage
    assert [b.text for b in stream.branches.values()] == ["The answer is 7"] * 3
    assert all(b.finish_reason == "stop" and b.tokens == 4 for b in stream.branches.values())
    assert stream.completion_tokens == 12 and stream.usage is not None
    assert stream.complete and not stream.cancelled
    sent = cluster.servers["a"].requests[0]
    assert sent["max_tokens"] == 256 and sent["temperature"] == 0.7 and sent["top_p"] == 1.0
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["return_token_ids"] is True  # the double answers /version like vLLM


async def test_closing_early_marks_cancelled_and_closes_response() -> None:
    server = FakeVLLM(chunks=branch_chunks(2, ["a", "b", "c", "d"]))
    async with pool_for(FakeCluster(a=server), "a") as pool:
        async with pool.stream(REQUEST) as stream:
            async for _ in stream:
                break
        assert stream.cancelled and not stream.complete
        assert server.closed_streams == 1
        assert pool.endpoints[0].in_flight == 0


async def test_reset_mid_stream_keeps_partial_branches_and_ejects() -> None:
    server = FakeVLLM(chunks=branch_chunks(2, ["x", "y", "z"]), fail_after_chunks=3)
    async with pool_for(FakeCluster(a=server), "a") as pool:
        with pytest.raises(EndpointUnavailable, match="stream broke"):
            async with pool.stream(REQUEST) as stream:
                async for _ in stream:
                    pass
        assert stream.branches[0].text == "xy" and stream.branches[1].text == "x"
        assert not pool.endpoints[0].healthy(0.0)
        assert pool.endpoints[0].in_flight == 0


@pytest.mark.parametrize(
    ("chunks", "match"),
    [
        ([b"data: {not json\n\n"], "not JSON"),
        ([b"garbage line\n\n"], "not a server-sent event"),
        ([sse({"object": "x"})], "no 'choices'"),
        ([sse({"choices": [{"delta": {"content": "a"}}]})], "no valid 'index'"),
        ([sse({"choices": [], "usage": {"prompt_tokens": "x"}})], "usage.prompt_tokens"),
    ],
)
async def test_malformed_sse_is_a_protocol_error(chunks: list[bytes], match: str) -> None:
    cluster = FakeCluster(a=FakeVLLM(chunks=chunks))
    async with pool_for(cluster, "a") as pool:
        with pytest.raises(ProtocolError, match=match):
            async with pool.stream(REQUEST) as stream:
                async for _ in stream:
                    pass
        assert pool.endpoints[0].in_flight == 0


async def test_a_branch_past_max_tokens_is_a_protocol_error_with_bounded_memory() -> None:
    request = ChatRequest(messages=[{"role": "user", "content": "?"}], n=1, max_tokens=4)
    chunks = [sse(token_chunk(0, "x")) for _ in range(1000)]  # a server ignoring max_tokens
    async with pool_for(FakeCluster(a=FakeVLLM(chunks=chunks)), "a") as pool:
        with pytest.raises(ProtocolError, match="past max_tokens 4"):
            async with pool.stream(request) as stream:
                async for _ in stream:
                    pass
        assert stream.branches[0].tokens == 2 * 4 + 8 + 1  # stopped at the cap
        assert pool.endpoints[0].in_flight == 0


async def test_a_choice_index_not_asked_for_is_a_protocol_error() -> None:
    chunks = [sse(token_chunk(0, "a")), sse(token_chunk(7, "b"))]  # n = 2 asked
    async with pool_for(FakeCluster(a=FakeVLLM(chunks=chunks)), "a") as pool:
        with pytest.raises(ProtocolError, match="choice index 7"):
            async with pool.stream(REQUEST) as stream:
                async for _ in stream:
                    pass
        assert set(stream.branches) == {0, 1}


async def test_a_server_error_mid_stream_ejects_the_endpoint() -> None:
    chunks = [sse(token_chunk(0, "4")), sse({"error": {"message": "EngineCore died"}})]
    async with pool_for(FakeCluster(a=FakeVLLM(chunks=chunks)), "a") as pool:
        with pytest.raises(EndpointUnavailable, match="server error mid-stream: EngineCore died"):
            async with pool.stream(REQUEST) as stream:
                async for _ in stream:
                    pass
        assert stream.branches[0].text == "4"
        assert not pool.endpoints[0].healthy(0.0)


async def test_json_instead_of_event_stream_is_a_protocol_error() -> None:
    cluster = FakeCluster(a=FakeVLLM(content_type="application/json"))
    async with pool_for(cluster, "a") as pool:
        with pytest.raises(ProtocolError, match="text/event-stream"):
            await pool.open(REQUEST)


async def test_non_openai_models_body_is_a_protocol_error() -> None:
    cluster = FakeCluster(a=FakeVLLM(models_body=b"<html>hello</html>"))
    with pytest.raises(ProtocolError, match="did not answer JSON"):
        async with pool_for(cluster, "a"):
            pass


async def test_model_not_served_names_what_is() -> None:
    cluster = FakeCluster(a=FakeVLLM())
    spec = EndpointSpec(url=cluster.url("a"), model="llama-70b")
    with pytest.raises(ModelNotServed, match=r"llama-70b.*smollm2-135m-instruct"):
        async with EndpointPool([spec], transport=cluster.transport, health_interval_s=0):
            pass


async def test_slow_headers_stop_at_the_deadline() -> None:
    cluster = FakeCluster(a=FakeVLLM(header_delay_s=30.0))
    clock = FakeClock(autojump=True)
    async with pool_for(cluster, "a", clock=clock) as pool:
        with pytest.raises(DeadlineExceeded) as info:
            await pool.open(REQUEST, deadline=Deadline.after(0.05, clock=clock, scope="call"))
        assert info.value.scope == "call"
        assert info.value.elapsed_s == info.value.deadline_s  # exactly at the fake instant
        assert pool.endpoints[0].in_flight == 0


async def test_reading_stops_quietly_at_the_deadline_and_keeps_tokens() -> None:
    # One branch sends a token, then the server stalls past the deadline.
    chunks = [sse(token_chunk(0, "4")), sse(token_chunk(0, "2"))]
    server = FakeVLLM(chunks=chunks)
    clock = FakeClock()
    async with pool_for(FakeCluster(a=server), "a", clock=clock) as pool:
        request = ChatRequest(messages=[{"role": "user", "content": "?"}])
        deadline = Deadline.after(1.0, clock=clock)
        async with pool.stream(request, deadline=deadline) as stream:
            async for _ in stream:
                clock.advance(2.0)  # the deadline passes while we read
        assert stream.cut_by_deadline and stream.cancelled
        assert stream.branches[0].text == "4"
