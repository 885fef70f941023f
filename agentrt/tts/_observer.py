"""The executor's observer seam: typed records of one call, for whoever records them.

The executor knows nothing of tracing. It opens :meth:`CallObserver.call` with
a :class:`CallStarted` record around each call, tells the returned
:class:`CallRecorder` each attempt the pool makes (:class:`RequestSent`) and
each stream it reads, and hands it the :class:`Result`. The recorder may add
headers to every request of the call (W3C ``traceparent``, so a vLLM server
joins the trace). :mod:`agentrt.tracing` implements it as OpenTelemetry spans
(``ChatSpans``); with no observer nothing is recorded.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from agentrt.core._clock import Clock
from agentrt.core._deadline import Deadline
from agentrt.pool._events import RequestSent
from agentrt.pool._stream import ChatStream
from agentrt.tts._result import Result

__all__ = ["CallObserver", "CallRecorder", "CallStarted", "NoObserver"]


@dataclass(frozen=True)
class CallStarted:
    """One executor call is starting: what it was given."""

    messages: Sequence[Mapping[str, Any]]
    clock: Clock
    slice_s: float | None
    deadline: Deadline | None
    prompt_tokens_estimate: int


class CallRecorder(Protocol):
    """Records one call while it runs."""

    def outgoing_headers(self) -> Mapping[str, str]:
        """Headers to send with every request of this call."""
        ...

    def request_sent(self, sent: RequestSent) -> None:
        """An attempt of this call goes to an endpoint."""
        ...

    def stream_read(self, stream: ChatStream, *, hedge: bool) -> None:
        """The executor reads ``stream`` for this call (``hedge``: its hedge request)."""
        ...

    def finished(self, result: Result) -> None:
        """The call's result, with its plan, predictions and branches."""
        ...


class CallObserver(Protocol):
    """Opens a recorder around each executor call; an exception raised inside
    the block propagates through it."""

    def call(self, started: CallStarted) -> AbstractContextManager[CallRecorder]: ...


class _Silent:
    def outgoing_headers(self) -> Mapping[str, str]:
        return {}

    def request_sent(self, sent: RequestSent) -> None:
        pass

    def stream_read(self, stream: ChatStream, *, hedge: bool) -> None:
        pass

    def finished(self, result: Result) -> None:
        pass


class NoObserver:
    """Records nothing (the executor's default)."""

    @contextmanager
    def _call(self) -> Iterator[CallRecorder]:
        yield _Silent()

    def call(self, started: CallStarted) -> AbstractContextManager[CallRecorder]:
        return self._call()
