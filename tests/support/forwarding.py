"""A TCP forwarder for the tests: listens on an address of this machine and relays
every connection, both ways, to a service on loopback.

A process in a network namespace (:mod:`tests.support.netns`) reaches this machine
only at its gateway address, while the local vLLM servers and the test PostgreSQL
listen on 127.0.0.1: a forwarder on the gateway gives it a way in, without making
those services listen anywhere else. The relaying runs on an asyncio loop in a
thread of its own, so it keeps going while the test's thread waits on something else.

    with TcpForwarder() as forwarder:
        port = forwarder.forward("10.231.4.1", ("127.0.0.1", 5432))  # a free port
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["TcpForwarder"]

CHUNK_BYTES = 65536
CALL_TIMEOUT_S = 10.0
"""How long opening or closing a listener may take before the test fails."""


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: Callable[[int], None]
) -> None:
    """Copy ``reader`` to ``writer`` until end of stream, then pass the end on (a
    half-close); a reset on either side closes ``writer``, which ends the other way.
    ``count`` hears the size of every chunk as it is copied."""
    try:
        while data := await reader.read(CHUNK_BYTES):
            count(len(data))
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()


class TcpForwarder:
    """Forwards connections to loopback services and counts the bytes each listener
    relayed to its service (:meth:`sent_bytes`); closing it stops every listener and
    drops the connections still open."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tcp-forwarder", daemon=True
        )
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()
        self._sent: dict[int, int] = {}

    def __enter__(self) -> TcpForwarder:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def forward(self, listen_host: str, target: tuple[str, int]) -> int:
        """Listen on a free port of ``listen_host`` and relay to ``target``; the port."""
        future = asyncio.run_coroutine_threadsafe(self._listen(listen_host, target), self._loop)
        return future.result(CALL_TIMEOUT_S)

    def sent_bytes(self, port: int) -> int:
        """Bytes relayed so far from the clients of the listener on ``port`` to its service."""
        return self._sent[port]

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(CALL_TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CALL_TIMEOUT_S)
        self._loop.close()

    async def _listen(self, listen_host: str, target: tuple[str, int]) -> int:
        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._connections.add(task)
            try:
                listener_port: int = writer.get_extra_info("sockname")[1]
                await self._relay(reader, writer, target, listener_port)
            finally:
                self._connections.discard(task)

        server = await asyncio.start_server(relay, listen_host, 0)
        self._servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        self._sent[port] = 0
        return port

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        target: tuple[str, int],
        port: int,
    ) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()  # the service is down: the client sees its connection closed
            return
        try:
            await asyncio.gather(
                _pipe(reader, upstream_writer, lambda n: self._count(port, n)),
                _pipe(upstream_reader, writer, lambda n: None),
            )
        finally:
            upstream_writer.close()
            writer.close()

    def _count(self, port: int, sent: int) -> None:
        self._sent[port] += sent

    async def _stop(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
