"""The pool's I/O layer against hostile servers (in-process doubles): bounded bytes,
JSON that cannot hurt, total time for every probe, a monitor that survives junk,
seeded and budgeted retries, TLS per endpoint, and no secret in any message."""

from __future__ import annotations

import asyncio
import itertools
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentrt.core._clock import FakeClock
from agentrt.core._deadline import Deadline
from agentrt.core._errors import (
    AgentrtError,
    EndpointConfigError,
    EndpointRejected,
    EndpointUnavailable,
    ModelNotServed,
    ProtocolError,
)
from agentrt.core._token_bucket import TokenBucket
from agentrt.pool import (
    DEFAULT_RETRY_BURST,
    DEFAULT_RETRY_RATIO,
    ChatRequest,
    EndpointPool,
    EndpointSpec,
    RetrySettings,
)
from agentrt.pool._client import ERROR_BODY_BYTES, PROBE_TIMEOUT_S
from agentrt.pool._config import endpoints_from_toml, parse_endpoint_list
from agentrt.pool._metrics import MAX_SAMPLE_LINES, parse_prometheus_text
from agentrt.pool._protocol import (
    MAX_LINE_BYTES,
    SSEDecoder,
    decode_chunk,
    json_too_deep,
    stream_byte_limit,
)
from tests.unit.vllm_double import (
    MODEL,
    FakeCluster,
    FakeVLLM,
    branch_chunks,
    sse,
    token_chunk,
)

URL = "http://a.test:8000"
KEY = "Zq9KeyW7f3a9c1e5b2d8"  # no sk- prefix: only its registration can blank it
REQUEST = ChatRequest(messages=[{"role": "user", "content": "3+4?"}], max_tokens=4)
MIB = 1 << 20

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def _pool(handler: Handler, *, clock: FakeClock | None = None, **kwargs: Any) -> EndpointPool:
    spec = EndpointSpec(url=URL, api_key=KEY)  # type: ignore[arg-type]
    return EndpointPool(
        [spec], transport=httpx.MockTransport(handler), health_interval_s=0, clock=clock, **kwargs
    )


def _with(path: str, response: Callable[[], httpx.Response]) -> Handler:
    """The vLLM double, except that ``path`` answers ``response()``."""
    server = FakeVLLM()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == path:
            return response()
        return await server.handle(request)

    return handler


class Lazy:
    """A body of ``total`` bytes made on demand, counting what was pulled."""

    def __init__(self, total: int, piece: bytes = b"x" * 65536, head: bytes = b"") -> None:
        self.total, self.piece, self.head = total, piece, head
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.head:
            yield self.head
        sent = 0
        while sent < self.total:
            self.pulled += 1
            sent += len(self.piece)
            yield self.piece


def _no_secret(error: BaseException) -> None:
    text = f"{error!s} {error!r}"
    assert KEY not in text and KEY[:4] not in text, text


async def _read(pool: EndpointPool, request: ChatRequest = REQUEST) -> None:
    async with pool.stream(request, deadline=Deadline.after(30)) as stream:
        await stream.collect()


# -- 1. bounded bytes -----------------------------------------------------------------


def test_an_unterminated_line_stops_at_the_line_cap() -> None:
    decoder = SSEDecoder(URL)
    with pytest.raises(ProtocolError, match="longer than 1 MiB") as info:
        for _ in range(64):  # 4 MiB in 64 KiB pieces, no line end
            decoder.feed(b"x" * 65536)
            assert len(decoder._tail) <= MAX_LINE_BYTES
    assert info.value.url == URL


def test_many_data_lines_of_one_event_stop_at_the_cap() -> None:
    decoder = SSEDecoder(URL)
    with pytest.raises(ProtocolError, match="event longer than 1 MiB"):
        for _ in range(40):
            decoder.feed(b"data: " + b"y" * 60000 + b"\n")


async def test_a_huge_content_field_is_a_protocol_error() -> None:
    line = b'data: {"choices": [{"index": 0, "delta": {"content": "'
    body = Lazy(64 * MIB, head=line)
    server = FakeVLLM()
    server.chunks = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/chat/completions":
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
        return await server.handle(request)

    async with _pool(handler) as pool:
        with pytest.raises(ProtocolError, match="line limit"):
            await _read(pool)
        assert pool.endpoints[0].in_flight == 0
    assert body.pulled <= MAX_LINE_BYTES // 65536 + 1  # stopped at the cap, not at 64 MB


async def test_a_stream_past_its_byte_limit_is_a_protocol_error() -> None:
    # Comment lines (keep-alives) carry no tokens: only the byte limit stops them.
    limit = stream_byte_limit(REQUEST)
    assert limit == 4 * MIB  # max(4 MiB, 64 KiB x 1 x 4)
    chunks = [b": " + b"k" * 65534 + b"\n"] * (limit // 65536 + 2)
    async with _pool(_chat_chunks(chunks)) as pool:
        with pytest.raises(ProtocolError, match="stream limit"):
            await _read(pool)


def _chat_chunks(chunks: list[bytes]) -> Handler:
    server = FakeVLLM(chunks=chunks)
    return server.handle


async def test_an_endless_error_body_is_read_up_to_its_cap() -> None:
    body = Lazy(256 * MIB)
    handler = _with("/v1/chat/completions", lambda: httpx.Response(400, content=body))
    async with _pool(handler) as pool:
        with pytest.raises(EndpointRejected, match="HTTP 400") as info:
            await pool.open(REQUEST, deadline=Deadline.after(30))
    assert body.pulled <= ERROR_BODY_BYTES // 65536 + 1
    assert len(str(info.value)) < 1000


async def test_a_huge_model_list_is_a_protocol_error_read_up_to_its_cap() -> None:
    body = Lazy(256 * MIB, head=b'{"data": [{"id": "')
    handler = _with("/v1/models", lambda: httpx.Response(200, content=body))
    with pytest.raises(ProtocolError, match=r"/v1/models answered more than 1 MiB"):
        async with _pool(handler):
            pass
    assert body.pulled <= MIB // 65536 + 1


async def test_huge_metrics_and_version_bodies_are_capped() -> None:
    metrics = Lazy(256 * MIB, piece=b"junk{ 1\n" * 8192)
    version = Lazy(256 * MIB)
    server = FakeVLLM()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/metrics":
            return httpx.Response(200, content=metrics)
        if request.url.path == "/version":
            return httpx.Response(200, content=version)
        return await server.handle(request)

    async with _pool(handler) as pool:
        assert pool.endpoints[0].version is None  # too big: not a vLLM version
        with pytest.raises(ProtocolError, match="/metrics answered more than"):
            await pool.client(pool.endpoints[0]).metrics()
    assert metrics.pulled <= (8 * MIB) // len(metrics.piece) + 1
    assert version.pulled <= MIB // 65536 + 1


def test_metrics_with_too_many_lines_are_refused_not_parsed_for_seconds() -> None:
    text = "vllm:num_requests_running 1\n" * (MAX_SAMPLE_LINES + 1)
    with pytest.raises(ValueError, match="sample lines"):
        parse_prometheus_text(text)
    with pytest.raises(ValueError, match="sample lines"):
        parse_prometheus_text(text, ("vllm:num_requests_running",))


# -- 2. JSON that cannot hurt -------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 64"),
        ('{"a":' * 100_000 + "1" + "}" * 100_000, "nested deeper than 64"),
        ("{not json", "not JSON"),
        ("1" * 5000, "not JSON"),  # past Python's int digit limit: a ValueError inside
        ("[1, 2]", "not a JSON object"),
        ('{"choices": [{"index": 0, "finish_reason": {"a": 1}}]}', "finish_reason"),
        ('{"choices": [{"index": 0, "logprobs": {"content": [{"logprob": 1' + "0" * 400 + "}]}}]}",
         "logprob"),
    ],
)  # fmt: skip
def test_junk_json_is_a_protocol_error(data: str, match: str) -> None:
    with pytest.raises(ProtocolError, match=match) as info:
        decode_chunk(data, 0.0, URL)
    assert info.value.url == URL


def test_the_depth_check_skips_strings_and_is_exact() -> None:
    assert not json_too_deep('{"content": "' + "[" * 1000 + '"}')
    assert not json_too_deep("[" * 64 + "]" * 64)
    assert json_too_deep("[" * 65 + "]" * 65)
    assert not json_too_deep('"\\"' * 10_000 + "[" * 10)  # escapes, unterminated string
    decode_chunk(json.dumps({"choices": [{"index": 0, "delta": {"content": "[" * 500}}]}), 0, URL)


async def test_a_deep_error_body_or_model_list_is_named_not_a_recursion_error() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(ProtocolError, match="nested deeper"):
        async with _pool(_with("/v1/models", lambda: httpx.Response(200, content=deep))):
            pass
    handler = _with("/v1/chat/completions", lambda: httpx.Response(400, content=deep))
    async with _pool(handler) as pool:
        with pytest.raises(EndpointRejected, match="HTTP 400"):
            await pool.open(REQUEST)


# -- 3. total time for every probe ------------------------------------------------------


def _trickle(clock: FakeClock) -> Callable[[], httpx.Response]:
    async def one_byte_a_second() -> AsyncIterator[bytes]:
        while True:
            yield b" "
            await clock.sleep(1.0)

    return lambda: httpx.Response(200, content=one_byte_a_second())


async def test_a_trickling_model_list_does_not_hang_start_up() -> None:
    clock = FakeClock(autojump=True)
    pool = _pool(_with("/v1/models", _trickle(clock)), clock=clock)
    start = clock.now()
    async with asyncio.timeout(10):  # real seconds: before the fix this never returned
        async with pool:
            assert not pool.endpoints[0].healthy(clock.now())
            assert "no complete answer within 5 s" in (pool.endpoints[0].last_error or "")
    assert clock.now() - start == pytest.approx(PROBE_TIMEOUT_S)


@pytest.mark.parametrize("path", ["/health", "/metrics", "/version"])
async def test_every_probe_has_a_total_time_limit(path: str) -> None:
    clock = FakeClock(autojump=True)
    handler = _with(path, _trickle(clock))
    async with asyncio.timeout(10):
        pool = _pool(handler, clock=clock)
        client = pool.client(pool.endpoints[0])
        start = clock.now()
        try:
            if path == "/health":
                assert await client.health(timeout_s=2.0) is False
            elif path == "/metrics":
                with pytest.raises(EndpointUnavailable, match="no complete answer"):
                    await client.metrics(timeout_s=2.0)
            else:
                with pytest.raises(EndpointUnavailable, match="no complete answer"):
                    await client.version(timeout_s=2.0)
        finally:
            await pool.aclose()
    assert clock.now() - start == pytest.approx(2.0)


# -- 3b. the health monitor survives any endpoint's junk ---------------------------------


async def test_one_endpoints_junk_metrics_do_not_stop_the_others() -> None:
    cluster = FakeCluster(a=FakeVLLM(), b=FakeVLLM(metrics_text="vllm:num_requests_running 7\n"))
    specs = [EndpointSpec(url=cluster.url(n)) for n in ("a", "b")]
    async with EndpointPool(specs, transport=cluster.transport, health_interval_s=0) as pool:
        junk_client = pool.client(pool.endpoints[0])

        async def junk(**_: object) -> dict[str, float]:
            raise ValueError("something no one expected")

        junk_client.metrics = junk  # type: ignore[method-assign]
        await pool.refresh_load()  # must not raise
        assert pool.endpoints[1].server_running == 7.0


async def test_one_endpoints_junk_probe_does_not_stop_the_others_readmission() -> None:
    junk = FakeVLLM()
    flaky = FakeVLLM()
    cluster = FakeCluster(a=junk, b=flaky)
    specs = [EndpointSpec(url=cluster.url(n)) for n in ("a", "b")]
    clock = FakeClock(autojump=True)
    async with EndpointPool(
        specs, transport=cluster.transport, health_interval_s=0, clock=clock
    ) as pool:
        for state in pool.endpoints:
            pool._eject(state, EndpointUnavailable(state.url, "down"))
        junk.models_body = b"<html>not a model list</html>"  # health 200, probe junk
        await pool.check_health()  # must not raise
        assert pool.endpoints[1].healthy(clock.now())
        assert not pool.endpoints[0].healthy(clock.now())
        assert "did not answer JSON" in (pool.endpoints[0].last_error or "")


async def test_the_monitor_keeps_going_whatever_a_check_raises() -> None:
    clock = FakeClock(autojump=True)
    cluster = FakeCluster(a=FakeVLLM())
    pool = EndpointPool(
        [EndpointSpec(url=cluster.url("a"))], transport=cluster.transport,
        health_interval_s=1.0, clock=clock,
    )  # fmt: skip
    calls = {"health": 0, "load": 0}

    async def broken_health() -> None:
        calls["health"] += 1
        raise RuntimeError("a bug")

    async def counted_load() -> None:
        calls["load"] += 1
        if calls["load"] == 2:
            raise ProtocolError(cluster.url("a"), "junk")

    pool.check_health = broken_health  # type: ignore[method-assign]
    pool.refresh_load = counted_load  # type: ignore[method-assign]
    async with pool:
        await clock.sleep(5.5)
        assert pool._monitor is not None and not pool._monitor.done()
    assert calls == {"health": 5, "load": 5}


# -- 4. retries: seeded jitter, a shared budget ------------------------------------------


async def _retry_times(seed: int, jitter: float = 0.5) -> list[float]:
    clock = FakeClock(autojump=True)
    server = FakeVLLM(chat_statuses=[503] * 3, clock=clock)
    retry = RetrySettings(max_attempts=4, initial_wait_s=0.1, max_wait_s=1.0, jitter=jitter)
    cluster = FakeCluster(a=server)
    async with EndpointPool(
        [EndpointSpec(url=cluster.url("a"))], transport=cluster.transport,
        health_interval_s=0, clock=clock, retry=retry, retry_seed=seed,
    ) as pool:  # fmt: skip
        stream = await pool.open(REQUEST, deadline=Deadline.after(10, clock=clock))
        await stream.aclose()
    times = server.request_times
    return [b - a for a, b in itertools.pairwise(times)]


async def test_jitter_is_seeded_and_never_lengthens_a_wait() -> None:
    first, again, other = await _retry_times(1), await _retry_times(1), await _retry_times(2)
    assert first == again
    assert first != other
    for waits in (first, other):
        assert len(waits) == 3
        for wait, plain in zip(waits, [0.1, 0.2, 0.4], strict=True):
            assert plain * 0.5 <= wait <= plain
    assert await _retry_times(1, jitter=0.0) == pytest.approx([0.1, 0.2, 0.4])


def test_retry_settings_are_checked() -> None:
    assert RetrySettings().jitter == 0.2 and RetrySettings().max_attempts == 4
    with pytest.raises(ValueError, match="jitter"):
        RetrySettings(jitter=1.5)


async def test_a_retry_budget_is_deposited_per_open_and_spent_per_retry() -> None:
    clock = FakeClock(autojump=True)
    server = FakeVLLM(chat_statuses=[503] * 100)
    cluster = FakeCluster(a=server)
    budget = TokenBucket(ratio=0.5, capacity=2, tokens=0.0)
    async with EndpointPool(
        [EndpointSpec(url=cluster.url("a"))], transport=cluster.transport,
        health_interval_s=0, clock=clock, retry_budget=budget,
    ) as pool:  # fmt: skip
        assert pool.retry_budget is budget
        counts = []
        for _ in range(4):
            before = len(server.requests)
            with pytest.raises(EndpointUnavailable, match="HTTP 503"):
                await pool.open(REQUEST, deadline=Deadline.after(10, clock=clock))
            counts.append(len(server.requests) - before)
        # 0.5 tokens: no retry; 1.0: one retry (spent); 0.5: none; 1.0: one.
        assert counts == [1, 2, 1, 2]
        assert budget.tokens == 0.0
        server.chat_statuses = []
        stream = await pool.open(REQUEST, deadline=Deadline.after(10, clock=clock))
        await stream.aclose()
        assert budget.tokens == 0.5  # a request that needed no retry still deposits


def test_the_default_retry_budget_is_exported() -> None:
    assert (DEFAULT_RETRY_RATIO, DEFAULT_RETRY_BURST) == (0.2, 10)
    TokenBucket(ratio=DEFAULT_RETRY_RATIO, capacity=DEFAULT_RETRY_BURST)


# -- 5. redaction before truncation -----------------------------------------------------


async def test_a_key_across_the_300_character_cut_does_not_leak_its_first_half() -> None:
    message = "x" * 296 + KEY  # the cut falls inside the key
    handler = _with(
        "/v1/chat/completions",
        lambda: httpx.Response(401, json={"error": {"message": message}}),
    )
    async with _pool(handler) as pool:
        with pytest.raises(EndpointRejected, match="HTTP 401") as info:
            await pool.open(REQUEST)
    _no_secret(info.value)


async def test_a_chunk_excerpt_is_redacted_before_it_is_cut() -> None:
    chunk = json.dumps({"object": "x", "pad": "p" * 77, "k": KEY})
    assert 100 < chunk.index(KEY) < 120 < chunk.index(KEY) + len(KEY)
    async with _pool(_chat_chunks([sse(chunk)])) as pool:
        with pytest.raises(ProtocolError, match="no 'choices'") as info:
            await _read(pool)
    _no_secret(info.value)


async def test_a_mid_stream_error_is_redacted_and_bounded() -> None:
    chunks = [sse(token_chunk(0, "4")), sse({"error": {"message": "e" * 100_000 + KEY}})]
    async with _pool(_chat_chunks(chunks)) as pool:
        with pytest.raises(EndpointUnavailable, match="server error mid-stream") as info:
            await _read(pool)
    assert len(str(info.value)) < 500
    _no_secret(info.value)


async def test_served_models_are_listed_redacted_and_bounded() -> None:
    served = [KEY] + [f"m{i}-{'q' * 1000}" for i in range(100)]
    body = json.dumps({"data": [{"id": m} for m in served]}).encode()
    spec = EndpointSpec(url=URL, model="wanted", api_key=KEY)  # type: ignore[arg-type]
    handler = _with("/v1/models", lambda: httpx.Response(200, content=body))
    with pytest.raises(ModelNotServed, match="wanted") as info:
        async with EndpointPool([spec], transport=httpx.MockTransport(handler)):
            pass
    assert len(str(info.value)) < 5000 and "81 more" in str(info.value)
    _no_secret(info.value)


# -- 6. credentials in URLs and unknown fields ----------------------------------------------


@pytest.mark.parametrize("url", [f"https://user:{KEY}@gpu1:8000", f"https://{KEY}@gpu1:8000"])
def test_a_url_with_credentials_is_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ValueError, match="put the key in api_key") as direct:
        EndpointSpec(url=url)
    assert KEY not in str(direct.value) and KEY not in repr(direct.value)
    with pytest.raises(EndpointConfigError, match="credentials") as listed:
        parse_endpoint_list(f"plain={url}")
    _no_secret(listed.value)
    assert "https://***@gpu1:8000" in str(listed.value)


def test_an_unknown_field_is_named_without_its_value(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.toml"
    path.write_text(f'[[endpoints]]\nurl = "http://a:1"\napikey = "{KEY}"\n', encoding="utf-8")
    with pytest.raises(EndpointConfigError, match=r"endpoints\[0\]: apikey: is not a known"):
        endpoints_from_toml(path, env={})
    with pytest.raises(EndpointConfigError) as info:
        endpoints_from_toml(path, env={})
    _no_secret(info.value)
    assert info.value.__cause__ is None  # pydantic's text (holding the input) is not chained


def test_a_key_pasted_as_the_variable_name_is_not_echoed(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.toml"
    path.write_text(
        f'[[endpoints]]\nurl = "http://a:1"\napi_key_env = "{KEY}-x"\n', encoding="utf-8"
    )
    with pytest.raises(EndpointConfigError, match="must name an environment variable") as info:
        endpoints_from_toml(path, env={})
    _no_secret(info.value)


# -- 7. TLS verification per endpoint -----------------------------------------------------


def _ssl_context(pool: EndpointPool, index: int) -> ssl.SSLContext:
    state = pool.endpoints[index]
    http: Any = pool.client(state)._http
    transport: Any = http._transport_for_url(httpx.URL(f"{state.url}/v1/models"))
    context: ssl.SSLContext = transport._pool._ssl_context
    return context


async def test_opting_out_of_tls_checks_at_one_path_leaves_the_other_verified() -> None:
    strict = EndpointSpec(url="https://gpu.example:8443/a")
    lax = EndpointSpec(url="https://gpu.example:8443/b", verify_tls=False)
    pool = EndpointPool([strict, lax], health_interval_s=0)
    try:
        assert _ssl_context(pool, 0).verify_mode == ssl.CERT_REQUIRED
        assert _ssl_context(pool, 0).check_hostname
        assert _ssl_context(pool, 1).verify_mode == ssl.CERT_NONE
    finally:
        await pool.aclose()


# -- 8. nothing but agentrt errors escapes --------------------------------------------------


class _Breaks(httpx.AsyncByteStream):
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield sse(token_chunk(0, "4"))
        raise self.error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (httpx.DecodingError("bad gzip"), ProtocolError),
        (httpx.RemoteProtocolError("peer closed"), EndpointUnavailable),
        (httpx.ReadTimeout("slow"), EndpointUnavailable),
    ],
)
async def test_httpx_errors_mid_stream_become_agentrt_errors(
    error: Exception, expected: type[AgentrtError]
) -> None:
    stream = _Breaks(error)
    handler = _with(
        "/v1/chat/completions",
        lambda: httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream),
    )
    async with _pool(handler) as pool:
        with pytest.raises(expected):
            await _read(pool)
        assert pool.endpoints[0].in_flight == 0


async def test_a_compressed_body_is_refused_and_identity_is_asked_for() -> None:
    seen: list[str] = []
    server = FakeVLLM()

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("accept-encoding", ""))
        if request.url.path == "/v1/models":
            return httpx.Response(200, headers={"content-encoding": "gzip"}, content=b"\x1f\x8b")
        return await server.handle(request)

    with pytest.raises(ProtocolError, match="compressed bodies are refused"):
        async with _pool(handler):
            pass
    assert seen and set(seen) == {"identity"}


async def test_a_pool_that_fails_to_open_closes_its_connections() -> None:
    pool = _pool(_with("/v1/models", lambda: httpx.Response(200, content=b"<html>")))
    with pytest.raises(ProtocolError):
        async with pool:
            pass
    assert all(http.is_closed for http in pool._http.values())


async def test_junk_load_figures_are_clamped() -> None:
    text = "vllm:num_requests_running -5\nvllm:num_requests_waiting 1e300\n"
    cluster = FakeCluster(a=FakeVLLM(metrics_text=text))
    async with EndpointPool(
        [EndpointSpec(url=cluster.url("a"))], transport=cluster.transport, health_interval_s=0
    ) as pool:
        await pool.refresh_load()
        state = pool.endpoints[0]
        assert state.server_running == 0.0 and state.server_waiting == 1e6


async def test_the_double_still_reads_normally() -> None:
    async with _pool(FakeVLLM(chunks=branch_chunks(1, ["4", "2"])).handle) as pool:
        async with pool.stream(REQUEST) as stream:
            await stream.collect()
        assert pool.endpoints[0].served_model == MODEL and stream.complete
