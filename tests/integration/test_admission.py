"""A real vLLM server started with ``--max-num-queued-reqs`` rejects requests past
its queue limit with HTTP 503. The pool must treat that as load, not failure:
route the request to another endpoint and keep the full one in the pool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from agentrt.core._deadline import Deadline
from agentrt.core._errors import EndpointUnavailable
from agentrt.pool import EndpointPool, EndpointSpec, LocalPool, ServerRecord
from agentrt.pool._protocol import ChatRequest
from tests.integration.conftest import local_settings

QUEUE_LIMIT = 4
STORY = [{"role": "user", "content": "Write a very long story about a dragon and a knight."}]
ADDITION = [{"role": "user", "content": "What is 3 plus 4?"}]


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerRecord]:
    pool = LocalPool(local_settings(tmp_path_factory.mktemp("agentrt-limited")))
    (record,) = asyncio.run(
        pool.up(plain=1, kv_cache_gib=1, max_model_len=1024,
                extra_args=["--max-num-queued-reqs", str(QUEUE_LIMIT)])
    )  # fmt: skip
    try:
        yield record
    finally:
        asyncio.run(pool.down())


async def _fill(
    http: httpx.AsyncClient, record: ServerRecord
) -> tuple[httpx.Response, AsyncIterator[str]]:
    """Occupy every queue slot of ``record`` with one long n=QUEUE_LIMIT request."""
    long_story = ChatRequest(messages=STORY, n=QUEUE_LIMIT, max_tokens=900, temperature=0.8, seed=1)
    body = long_story.payload(record.served_model, stream=True, vllm=True)
    # Every branch must hold its slot: vLLM counts an n-request as n slots and frees
    # each as it finishes, and where a sample hits EOS depends on the CPU's numerics.
    body["ignore_eos"] = True
    key = record.api_key  # the local pool's servers want its key
    auth = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}
    request = http.build_request(
        "POST", f"{record.url}/v1/chat/completions", json=body, headers=auth
    )
    response = await http.send(request, stream=True)
    assert response.status_code == 200
    lines = response.aiter_lines()
    for _ in range(8):  # admitted and decoding
        await lines.__anext__()
    # Keep the line iterator alive: dropping it would let its finaliser close the response.
    return response, lines


async def test_a_full_server_rejects_with_503_and_the_pool_routes_around_it(
    limited_server: ServerRecord, plain_specs: list[EndpointSpec]
) -> None:
    limited = limited_server.endpoint()
    async with httpx.AsyncClient(timeout=60.0) as http:
        filler, _lines = await _fill(http, limited_server)
        try:
            # On its own, the full server answers 503 until the deadline: no hang, a clear error.
            async with EndpointPool([limited], health_interval_s=0) as alone:
                request = ChatRequest(messages=ADDITION, n=2, max_tokens=8, temperature=0.7)
                with pytest.raises(EndpointUnavailable, match="503"):
                    async with alone.stream(request, deadline=Deadline.after(1.0)):
                        pass
                assert alone.endpoints[0].healthy(0.0)  # overload is not failure
            # With a second endpoint, the same request goes there and completes.
            async with EndpointPool([limited, plain_specs[0]], health_interval_s=0) as pool:
                request = ChatRequest(messages=ADDITION, n=2, max_tokens=8, temperature=0.7)
                async with pool.stream(request, deadline=Deadline.after(30.0)) as stream:
                    await stream.collect()
                assert stream.url == plain_specs[0].url
                assert stream.error is None and not stream.cut_by_deadline
                assert sum(b.tokens for b in stream.branches.values()) > 0
                assert all(e.healthy(0.0) for e in pool.endpoints)
        finally:
            await filler.aclose()
