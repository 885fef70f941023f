"""Streaming a run to its client, and noticing when the client goes away.

:class:`EventQueue` turns the chunks a run streams (``RunObserver.on_chunk``) into
SSE events, in the stream modes the client asked for. :class:`EventStream` is the
response that sends them: it listens for the client's disconnect while it
streams, whatever the ASGI server's spec version, and calls ``on_abort`` when
the stream ends before its last event (the client left, or sending failed), so
the run can be cancelled. :func:`wait_disconnect` is the same listening for a
request that waits (``/runs/wait``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from agentrt.core._clock import Clock, Cutoff
from agentrt.serve._encoding import jsonable, sse_event

__all__ = ["EventQueue", "EventStream", "event_data", "wait_disconnect"]

_END = b""


def event_data(mode: str, chunk: Any) -> Any:
    """A chunk of ``mode`` as its event's JSON data: a ``messages`` chunk is the
    ``[message, metadata]`` pair LangGraph yields (what ``RemoteGraph`` reads)."""
    if mode == "messages" and isinstance(chunk, tuple) and len(chunk) == 2:
        return [jsonable(chunk[0]), jsonable(chunk[1])]
    return jsonable(chunk)


class EventQueue:
    """The SSE events of one streamed run, in order; :meth:`close` ends them."""

    def __init__(self, modes: tuple[str, ...]) -> None:
        self.modes = frozenset(modes)
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._closed = False

    def chunk(self, mode: str, chunk: Any) -> None:
        """One streamed chunk: queued as event ``mode`` if the client asked for it."""
        if mode in self.modes and not self._closed:
            self._queue.put_nowait(sse_event(mode, event_data(mode, chunk)))

    def put(self, event: str, data: Any) -> None:
        if not self._closed:
            self._queue.put_nowait(sse_event(event, data))

    def close(self) -> None:
        """No more chunks: the run ended."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(_END)

    async def events(self, until: float, clock: Clock) -> AsyncIterator[bytes]:
        """The queued events until :meth:`close`; ``TimeoutError`` if ``clock``
        reaches ``until`` first (only the wait for the next event is cut, never a
        send of the one before)."""
        cutoff = Cutoff.at(until, clock=clock)
        try:
            while (event := await cutoff.wait(self._queue.get())) != _END:
                yield event
        finally:
            cutoff.close()


async def wait_disconnect(receive: Receive) -> None:
    """Return once the client has disconnected (the request body already read)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class EventStream(StreamingResponse):
    """An SSE response that listens for the client's disconnect while it streams
    and calls ``on_abort`` when it ends before its last event."""

    def __init__(
        self,
        events: AsyncIterator[bytes],
        *,
        on_abort: Callable[[], None],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(events, media_type="text/event-stream", headers=headers)
        self._events = events
        self._on_abort = on_abort

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.ensure_future(self.stream_response(send))
        listening = asyncio.ensure_future(wait_disconnect(receive))
        finished = False
        try:
            await asyncio.wait({streaming, listening}, return_when=asyncio.FIRST_COMPLETED)
            finished = streaming.done() and not streaming.cancelled() and not streaming.exception()
        finally:
            for task in (streaming, listening):
                task.cancel()
            for task in (streaming, listening):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if not finished:
                self._on_abort()
            aclose = getattr(self._events, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
