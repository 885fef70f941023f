"""The one place that reads time or sleeps.

Every timeout in agentrt is an absolute instant on a monotonic :class:`Clock`
(as in trio). Production code uses :class:`MonotonicClock`; tests use
:class:`FakeClock`, which never sleeps: ``advance()`` moves time by hand and
``sleep()`` jumps the clock forward at once, so time-based logic runs instantly
and exactly.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar, runtime_checkable

__all__ = [
    "Clock",
    "Cutoff",
    "FakeClock",
    "MonotonicClock",
    "current_clock",
    "timeout_after",
    "use_clock",
    "wall_time_ns",
]

T = TypeVar("T")


@runtime_checkable
class Clock(Protocol):
    """A monotonic clock in seconds, and a way to wait on it."""

    def now(self) -> float:
        """Seconds on a monotonic scale; only differences mean anything."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this clock (returns at once for ``seconds <= 0``)."""
        ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "MonotonicClock()"


class FakeClock:
    """A clock for tests: time moves only when told to, and sleeping never blocks.

    ``sleep(s)`` advances the clock by ``s`` and yields once to the event loop, so
    code that waits on this clock runs instantly and sees exact times.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"FakeClock.advance: seconds must be >= 0, got {seconds!r}")
        self._now += seconds

    def advance_to(self, instant: float) -> None:
        """Move the clock to ``instant`` if that is later (never back): how
        parallel work that started together ends at its own finishing time."""
        self._now = max(self._now, instant)

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    async def sleep_until(self, instant: float) -> None:
        """Jump to ``instant`` (if later) and yield once to the event loop."""
        self.advance_to(instant)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r})"


_SYSTEM_CLOCK = MonotonicClock()
_current: contextvars.ContextVar[Clock] = contextvars.ContextVar(
    "agentrt_clock", default=_SYSTEM_CLOCK
)


def current_clock() -> Clock:
    """The clock in force for this context (the monotonic clock unless replaced)."""
    return _current.get()


@contextmanager
def use_clock(clock: Clock) -> Iterator[Clock]:
    """Make ``clock`` the current clock inside the ``with`` block."""
    token = _current.set(clock)
    try:
        yield clock
    finally:
        _current.reset(token)


def wall_time_ns() -> int:
    """Wall-clock time in ns since the epoch, only for timestamps in records.

    Never use it for deadline arithmetic: wall time can jump.
    """
    return time.time_ns()


def timeout_after(seconds: float) -> asyncio.Timeout:
    """An ``async with`` block that is cancelled after ``seconds`` of real time
    (``math.inf`` or ``None``-like infinite values mean no limit)."""
    if seconds == float("inf"):
        return asyncio.timeout(None)
    return asyncio.timeout(max(0.0, seconds))


class Cutoff:
    """One timer for many awaits: :meth:`wait` raises ``TimeoutError`` once
    ``seconds`` of real time have passed since the cutoff was made, whichever
    await is pending then (or at the next one).

    A stream reads hundreds of chunks before one deadline; a timeout scope per
    chunk arms and cancels a timer each time, this arms one. Only the task
    waiting inside :meth:`wait` is ever cancelled, and a cancellation that is
    not the cutoff's passes through untouched.
    """

    def __init__(self, seconds: float) -> None:
        self._expired = seconds <= 0
        self._waiting: asyncio.Task[object] | None = None
        self._handle: asyncio.TimerHandle | None = None
        if not self._expired and seconds != float("inf"):
            self._handle = asyncio.get_running_loop().call_later(seconds, self._fire)

    @property
    def expired(self) -> bool:
        return self._expired

    def _fire(self) -> None:
        self._expired = True
        if self._waiting is not None:
            self._waiting.cancel()

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """``await awaitable``, or raise ``TimeoutError`` if the cutoff passes first."""
        if self._expired:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            raise TimeoutError
        task = asyncio.current_task()
        self._waiting = task
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self._expired and task is not None and task.uncancel() == 0:
                raise TimeoutError from None
            raise
        finally:
            self._waiting = None

    def close(self) -> None:
        """Disarm the timer (call when done reading)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
