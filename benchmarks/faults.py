"""A fault-injecting loopback TCP proxy for tests: put it in front of a real server.

:class:`FaultProxy` listens on 127.0.0.1 only and forwards bytes both ways to
one upstream server. A test switches faults on and off while requests run:

- ``delay_s``: every chunk a client sends waits this long before it goes
  upstream (a slow or far-away server: time to first byte grows);
- ``slowdown``: stretch each response in time by this factor (a server that got
  slower: TTFT and the time per token both grow). A response byte that came
  from upstream ``t`` seconds after its request's first byte reached the
  proxy goes to the client no earlier than ``slowdown * t`` after it
  (:func:`release_at`); 1.0 changes nothing;
- ``stall()`` / ``resume()``: stop forwarding in both directions, connections
  held open (a server that stops answering but does not hang up);
- ``cut_after(n)``: close each connection after ``n`` more response bytes
  (a server that dies mid-stream); ``cut()`` closes every open one now;
- ``reject_status``: answer the next request on every connection with that
  HTTP status and close it (an overloaded server: 503s).

It counts what it saw (``connections``, ``rejected``, ``cut_connections``) so
tests can assert how the pool behaved. Not for production use.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass, field

from agentrt.core._clock import Clock, current_clock
from agentrt.core._errors import ConfigurationError

__all__ = ["FaultProxy", "release_at"]

LOOPBACK = "127.0.0.1"
_CHUNK = 65536


def release_at(start: float, arrival: float, slowdown: float) -> float:
    """When a response chunk that arrived at ``arrival`` may go on to the client,
    for a request whose first byte reached the proxy at ``start``: the time since
    ``start`` stretched ``slowdown`` times (never before it arrived)."""
    return max(arrival, start + slowdown * (arrival - start))


def _checked_slowdown(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"FaultProxy.slowdown must be a number >= 1, got {value!r}")
    if not (math.isfinite(value) and value >= 1.0):
        raise ConfigurationError(f"FaultProxy.slowdown must be finite and >= 1, got {value!r}")
    return float(value)


@dataclass(eq=False)
class _Link:
    """One proxied connection: the client side and the upstream side."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    response_bytes: int = 0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    request_started_at: float | None = None
    """When the current request's first byte reached the proxy."""
    answering: bool = False
    """Response bytes came since that request began: the client's next bytes start
    a new request (HTTP/1.1 keep-alive, no pipelining)."""

    def close(self) -> None:
        for writer in (self.client, self.upstream):
            with contextlib.suppress(Exception):
                writer.transport.abort()


class FaultProxy:
    """A loopback proxy to ``upstream_host:upstream_port``. Use as an async context manager."""

    def __init__(
        self, upstream_host: str, upstream_port: int, *, clock: Clock | None = None
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._clock = clock or current_clock()
        self.delay_s = 0.0
        self._slowdown = 1.0
        self.cut_after_bytes: int | None = None
        self.reject_status: int | None = None
        self.connections = 0
        self.rejected = 0
        self.cut_connections = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "the proxy is not started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, LOOPBACK, 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self.heal()
        if self._server is not None:
            self._server.close()
        self.cut()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5.0)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # -- faults -------------------------------------------------------------------

    @property
    def slowdown(self) -> float:
        """How many times slower responses reach the client (1.0: as upstream sent them)."""
        return self._slowdown

    @slowdown.setter
    def slowdown(self, value: float) -> None:
        self._slowdown = _checked_slowdown(value)

    def stall(self) -> None:
        """Stop forwarding bytes (connections stay open) until :meth:`resume`."""
        self._flowing.clear()

    @property
    def flowing(self) -> bool:
        """Bytes are being forwarded (not stalled)."""
        return self._flowing.is_set()

    def resume(self) -> None:
        self._flowing.set()

    def cut(self) -> None:
        """Abort every open connection now."""
        for link in list(self._links):
            self._drop(link)

    def cut_after(self, response_bytes: int) -> None:
        """Close each connection once it has sent ``response_bytes`` more to its client."""
        for link in self._links:
            link.response_bytes = 0
        self.cut_after_bytes = response_bytes

    def heal(self) -> None:
        """Switch every fault off (open connections that were cut stay closed)."""
        self.delay_s = 0.0
        self._slowdown = 1.0
        self.cut_after_bytes = None
        self.reject_status = None
        self.resume()

    # -- forwarding -----------------------------------------------------------------

    def _drop(self, link: _Link) -> None:
        if link in self._links:
            self._links.discard(link)
            self.cut_connections += 1
        link.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            await self._serve(reader, writer)
        finally:
            self._handlers.discard(handler)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        link = _Link(client=writer, upstream=up_writer)
        self._links.add(link)
        link.tasks = [
            asyncio.create_task(self._requests(reader, link)),
            asyncio.create_task(self._responses(up_reader, link)),
        ]
        try:
            await asyncio.wait(link.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in link.tasks:
                task.cancel()
            await asyncio.gather(*link.tasks, return_exceptions=True)
            self._links.discard(link)
            link.close()

    async def _requests(self, reader: asyncio.StreamReader, link: _Link) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while chunk := await reader.read(_CHUNK):
                if link.request_started_at is None or link.answering:
                    link.request_started_at = self._clock.now()
                    link.answering = False
                if self.reject_status is not None:
                    await self._reject(link, self.reject_status)
                    return
                if self.delay_s > 0:
                    await self._clock.sleep(self.delay_s)
                await self._flowing.wait()
                link.upstream.write(chunk)
                await link.upstream.drain()

    async def _responses(self, reader: asyncio.StreamReader, link: _Link) -> None:
        # Chunks are stamped as they arrive and released on their own schedule,
        # so a slowed-down chunk does not delay the stamping of the next one.
        arrived: asyncio.Queue[tuple[float, float, bytes] | None] = asyncio.Queue()
        pump = asyncio.create_task(self._receive(reader, link, arrived))
        try:
            await self._release(link, arrived)
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)

    async def _receive(
        self,
        reader: asyncio.StreamReader,
        link: _Link,
        arrived: asyncio.Queue[tuple[float, float, bytes] | None],
    ) -> None:
        try:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while chunk := await reader.read(_CHUNK):
                    now = self._clock.now()
                    link.answering = True
                    start = link.request_started_at
                    arrived.put_nowait((now if start is None else start, now, chunk))
                    await self._flowing.wait()  # stalled: read no further, as upstream sees it
        finally:
            arrived.put_nowait(None)

    async def _release(
        self, link: _Link, arrived: asyncio.Queue[tuple[float, float, bytes] | None]
    ) -> None:
        with contextlib.suppress(OSError):
            while (item := await arrived.get()) is not None:
                start, arrival, chunk = item
                if self._slowdown > 1.0:
                    wait_s = release_at(start, arrival, self._slowdown) - self._clock.now()
                    if wait_s > 0:
                        await self._clock.sleep(wait_s)
                await self._flowing.wait()
                limit = self.cut_after_bytes
                if limit is not None and link.response_bytes + len(chunk) > limit:
                    link.client.write(chunk[: max(0, limit - link.response_bytes)])
                    with contextlib.suppress(OSError):
                        await link.client.drain()
                    self._drop(link)
                    return
                link.response_bytes += len(chunk)
                link.client.write(chunk)
                await link.client.drain()

    async def _reject(self, link: _Link, status: int) -> None:
        self.rejected += 1
        body = b'{"error": {"message": "rejected by the fault proxy"}}'
        head = (
            f"HTTP/1.1 {status} Fault\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        ).encode()
        link.client.write(head + body)
        with contextlib.suppress(OSError):
            await link.client.drain()
