"""Routing, ejection, re-admission and deadline-bounded retries (in-process double)."""

from __future__ import annotations

import pytest

from agentrt.core._clock import FakeClock
from agentrt.core._deadline import Deadline
from agentrt.core._errors import EndpointConfigError, EndpointUnavailable, NoHealthyEndpoint
from agentrt.pool import ChatRequest, EndpointPool, EndpointSpec, RetrySettings
from tests.unit.vllm_double import FakeCluster, FakeVLLM

REQUEST = ChatRequest(messages=[{"role": "user", "content": "3+4?"}], n=2, temperature=0.7)


def make_pool(
    cluster: FakeCluster, *, clock: FakeClock | None = None, **groups: str
) -> EndpointPool:
    specs = [EndpointSpec(url=cluster.url(name), group=group) for name, group in groups.items()]
    return EndpointPool(
        specs,
        transport=cluster.transport,
        health_interval_s=0,
        clock=clock,
        retry=RetrySettings(max_attempts=4, initial_wait_s=0.1, max_wait_s=1.0, jitter=0.0),
    )


async def test_routes_to_the_least_loaded_endpoint_of_the_group() -> None:
    cluster = FakeCluster(a=FakeVLLM(), b=FakeVLLM(), s=FakeVLLM())
    async with make_pool(cluster, a="plain", b="plain", s="spec") as pool:
        first = await pool.open(REQUEST)
        second = await pool.open(REQUEST)
        third = await pool.open(REQUEST, group="spec")
        assert {first.url, second.url} == {cluster.url("a"), cluster.url("b")}
        assert third.url == cluster.url("s")
        for stream in (first, second, third):
            await stream.aclose()
        assert [s.in_flight for s in pool.endpoints] == [0, 0, 0]


async def test_server_reported_load_steers_routing() -> None:
    busy = FakeVLLM(metrics_text="vllm:num_requests_running 12\nvllm:num_requests_waiting 3\n")
    cluster = FakeCluster(a=busy, b=FakeVLLM())
    async with make_pool(cluster, a="plain", b="plain") as pool:
        await pool.refresh_load()
        assert pool.endpoints[0].load == 15.0
        assert pool.choose("plain").url == cluster.url("b")


async def test_unknown_group_is_a_configuration_error() -> None:
    async with make_pool(FakeCluster(a=FakeVLLM()), a="plain") as pool:
        with pytest.raises(EndpointConfigError, match=r"unknown endpoint group 'gpu'.*'plain'"):
            await pool.open(REQUEST, group="gpu")


async def test_503_burst_is_retried_on_another_endpoint() -> None:
    cluster = FakeCluster(a=FakeVLLM(chat_statuses=[503, 503]), b=FakeVLLM())
    clock = FakeClock(autojump=True)
    async with make_pool(cluster, clock=clock, a="plain", b="plain") as pool:
        stream = await pool.open(REQUEST, deadline=Deadline.after(10, clock=clock))
        await stream.collect()
        assert stream.url == cluster.url("b")
        assert len(cluster.servers["a"].requests) == 1  # 503 is load, not death: a stays in
        assert pool.endpoints[0].healthy(clock.now())


async def test_503_on_the_only_endpoint_is_retried_with_backoff() -> None:
    cluster = FakeCluster(a=FakeVLLM(chat_statuses=[503, 503]))
    clock = FakeClock(autojump=True)
    async with make_pool(cluster, clock=clock, a="plain") as pool:
        start = clock.now()
        stream = await pool.open(REQUEST, deadline=Deadline.after(10, clock=clock))
        await stream.collect()
        assert len(cluster.servers["a"].requests) == 3
        assert clock.now() - start == pytest.approx(0.1 + 0.2)  # exponential waits, jitter off


async def test_retries_never_wait_past_the_deadline() -> None:
    cluster = FakeCluster(a=FakeVLLM(chat_statuses=[503] * 10))
    clock = FakeClock(autojump=True)
    async with make_pool(cluster, clock=clock, a="plain") as pool:
        deadline = Deadline.after(0.25, clock=clock)
        with pytest.raises(EndpointUnavailable, match="HTTP 503"):
            await pool.open(REQUEST, deadline=deadline)
        # waits 0.1 then 0.2 would end at 0.3 > 0.25: only two attempts are made.
        assert len(cluster.servers["a"].requests) == 2
        assert not deadline.expired


async def test_connection_failure_ejects_and_routes_around() -> None:
    dead = FakeVLLM()
    cluster = FakeCluster(a=dead, b=FakeVLLM())
    clock = FakeClock(autojump=True)
    async with make_pool(cluster, clock=clock, a="plain", b="plain") as pool:
        dead.refuse_connections = True
        stream = await pool.open(REQUEST, deadline=Deadline.after(10, clock=clock))
        await stream.collect()
        assert stream.url == cluster.url("b")
        assert not pool.endpoints[0].healthy(clock.now())
        assert "connection" in (pool.endpoints[0].last_error or "")


async def test_ejected_endpoint_is_readmitted_when_health_recovers() -> None:
    flaky = FakeVLLM()
    cluster = FakeCluster(a=flaky)
    clock = FakeClock(autojump=True)
    async with make_pool(cluster, clock=clock, a="plain") as pool:
        flaky.refuse_connections = True
        with pytest.raises(NoHealthyEndpoint):
            await pool.open(REQUEST, deadline=Deadline.after(0.5, clock=clock))
        await pool.check_health()
        assert not pool.endpoints[0].healthy(clock.now())  # still down: stays out
        flaky.refuse_connections = False
        await pool.check_health()
        assert pool.endpoints[0].healthy(clock.now())
        stream = await pool.open(REQUEST)
        await stream.collect()
        assert stream.complete


async def test_endpoint_down_at_start_is_ejected_not_fatal() -> None:
    down = FakeVLLM(refuse_connections=True)
    cluster = FakeCluster(a=down, b=FakeVLLM())
    async with make_pool(cluster, a="plain", b="plain") as pool:
        rows = {row["url"]: row for row in pool.snapshot()}
        assert rows[cluster.url("a")]["healthy"] is False
        assert rows[cluster.url("b")]["healthy"] is True


async def test_api_key_goes_only_to_its_endpoint() -> None:
    cluster = FakeCluster(a=FakeVLLM(), b=FakeVLLM())
    specs = [
        EndpointSpec(url=cluster.url("a"), api_key="sk-secret-a"),  # type: ignore[arg-type]
        EndpointSpec(url=cluster.url("b")),
    ]
    async with EndpointPool(specs, transport=cluster.transport, health_interval_s=0) as pool:
        streams = [await pool.open(REQUEST) for _ in range(2)]  # one on each endpoint
        for stream in streams:
            await stream.collect()
    assert cluster.servers["a"].request_headers[0]["authorization"] == "Bearer sk-secret-a"
    assert "authorization" not in cluster.servers["b"].request_headers[0]
    assert "sk-secret-a" not in repr(specs[0])


def test_a_pool_needs_distinct_endpoints() -> None:
    with pytest.raises(EndpointConfigError, match="at least one"):
        EndpointPool([])
    spec = EndpointSpec(url="http://h:1")
    with pytest.raises(EndpointConfigError, match="listed twice"):
        EndpointPool([spec, spec])


async def test_an_endpoint_holding_its_connections_does_not_starve_another() -> None:
    """Each endpoint has its own connection limit: requests stuck on a silent
    endpoint (loopback sockets that accept and never answer) leave the other
    endpoint's connections free."""
    import asyncio

    held: list[asyncio.StreamWriter] = []
    both_held = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        held.append(writer)
        if len(held) == 2:
            both_held.set()
        await asyncio.Event().wait()  # holds the connection, never answers

    async def healthy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    servers = [await asyncio.start_server(h, "127.0.0.1", 0) for h in (silent, healthy)]
    ports = [int(s.sockets[0].getsockname()[1]) for s in servers]
    specs = [EndpointSpec(url=f"http://127.0.0.1:{p}") for p in ports]
    pool = EndpointPool(specs, health_interval_s=0, connections_per_endpoint=2)
    stuck = [
        asyncio.create_task(pool.client(pool.endpoints[0]).health(timeout_s=60)) for _ in range(2)
    ]
    try:
        await both_held.wait()  # both requests hold the silent endpoint's two connections
        # With one limit of 2 for the whole pool this request would wait for a
        # connection until its pool timeout and answer False.
        assert await pool.client(pool.endpoints[1]).health(timeout_s=5)
    finally:
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
        await pool.aclose()
        for server in servers:
            server.close()
