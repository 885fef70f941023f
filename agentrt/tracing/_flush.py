"""Flushing spans off the event loop: one daemon thread, bounded waits.

A flush hands the span processors' queues to their exporters; with an OTLP
collector that is slow or gone it takes the exporter's whole timeout. Done on
the event loop, that stall would stop every run in flight, so the end of a
run only *requests* a flush and :class:`Flusher`'s thread does it.

Requests are coalesced per provider: however many runs end together, there
is one flush in flight and at most one queued, never a thread per run. A
request is answered by a flush that started after it was made, since a flush
covers only the spans that had ended when it began. Whoever waits for one
waits a bounded time (:func:`agentrt.tracing.flush_traces` and
``flush_traces_async``), even when a processor ignores its own timeout.

At interpreter exit the flusher serves what is still queued (bounded) before
the SDK's providers shut down and export the rest themselves.
"""

from __future__ import annotations

import atexit
import threading
from concurrent.futures import Future
from typing import Protocol

from agentrt.core._log import log_dropped

__all__ = ["EXIT_FLUSH_S", "FLUSH_TIMEOUT_MS", "Flushable", "Flusher", "flusher"]

FLUSH_TIMEOUT_MS = 10_000
"""What one flush may take (passed to ``force_flush``)."""
EXIT_FLUSH_S = 5.0
"""How long interpreter exit waits for the flushes still queued."""


class Flushable(Protocol):
    """What the flusher flushes: an OpenTelemetry SDK ``TracerProvider``."""

    def force_flush(self, timeout_millis: int = ...) -> bool: ...


class Flusher:
    """A daemon thread flushing tracer providers on request (see the module)."""

    def __init__(self, timeout_ms: int = FLUSH_TIMEOUT_MS) -> None:
        self.timeout_ms = timeout_ms
        self._cond = threading.Condition()
        self._pending: dict[Flushable, list[Future[bool]]] = {}
        self._thread: threading.Thread | None = None
        self._closed = False

    def request(self, provider: Flushable) -> Future[bool]:
        """Queue a flush of ``provider``; the future says whether it succeeded.

        Returns at once. Once :meth:`close` has run (interpreter exit), the
        flush happens in the caller's thread instead."""
        future: Future[bool] = Future()
        with self._cond:
            if not self._closed:
                self._pending.setdefault(provider, []).append(future)
                if self._thread is None or not self._thread.is_alive():  # first use, or forked
                    self._thread = threading.Thread(
                        target=self._serve, name="agentrt-trace-flusher", daemon=True
                    )
                    self._thread.start()
                self._cond.notify()
                return future
        _answer([future], self._flush(provider))
        return future

    def close(self, timeout_s: float = EXIT_FLUSH_S) -> None:
        """Serve what is queued, then stop the thread (waits at most ``timeout_s``)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(timeout_s)

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending, {}
            for provider, futures in batch.items():
                _answer(futures, self._flush(provider))

    def _flush(self, provider: Flushable) -> bool:
        try:
            return bool(provider.force_flush(self.timeout_ms))
        except Exception as exc:  # a processor's failure must not end the thread
            log_dropped("flushing traces failed", exc)
            return False


def _answer(futures: list[Future[bool]], ok: bool) -> None:
    for future in futures:
        if future.set_running_or_notify_cancel():  # False: its waiter gave up
            future.set_result(ok)


_lock = threading.Lock()
_flusher: Flusher | None = None


def flusher() -> Flusher:
    """The process's flusher, started on first use and closed at exit
    (process-wide, as the tracer providers it serves are)."""
    global _flusher
    with _lock:
        if _flusher is None:
            _flusher = Flusher()
            atexit.register(_flusher.close, EXIT_FLUSH_S)
        return _flusher
