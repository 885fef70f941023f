"""The one place that reads time or sleeps.

Every timeout in agentrt is an absolute instant on a monotonic :class:`Clock`
(as in trio). A clock tells the time, sleeps, and runs a callback at an
instant (:meth:`Clock.call_at`); every cutoff is built on that one seam:
:func:`timeout_at` / :func:`timeout_after` (a cancel scope, as
``asyncio.timeout``) and :class:`Cutoff` (one timer for many awaits).

Production code uses :class:`MonotonicClock`, whose timers are the event
loop's. Tests use :class:`FakeClock`, whose time moves only by
:meth:`FakeClock.advance`, or, with ``autojump=True``, by jumping to the next
timer whenever every task is blocked (trio's ``MockClock`` with autojump): a
deadline test then runs instantly and sees exact instants.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import heapq
import inspect
import itertools
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Protocol, TypeVar, runtime_checkable

__all__ = [
    "Clock",
    "Cutoff",
    "FakeClock",
    "MonotonicClock",
    "Timeout",
    "Timer",
    "current_clock",
    "timeout_after",
    "timeout_at",
    "use_clock",
    "wall_time_ns",
]

T = TypeVar("T")


class Timer(Protocol):
    """A callback armed on a clock; :meth:`cancel` disarms it (idempotent)."""

    def cancel(self) -> None: ...


@runtime_checkable
class Clock(Protocol):
    """A monotonic clock in seconds, a way to wait on it, and timers on it."""

    def now(self) -> float:
        """Seconds on a monotonic scale; only differences mean anything."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this clock (returns at once for ``seconds <= 0``)."""
        ...

    def call_at(self, instant: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback`` on the running event loop once the clock reaches
        ``instant`` (soon, if it already has; never, for ``math.inf``)."""
        ...


class _NoTimer:
    """The timer of an instant that never comes."""

    def cancel(self) -> None:
        return None


class MonotonicClock:
    """The real clock: ``time.monotonic``, ``asyncio.sleep`` and the loop's timers."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def sleep_until(self, instant: float) -> None:
        await asyncio.sleep(max(0.0, instant - self.now()))

    def call_at(self, instant: float, callback: Callable[[], object]) -> Timer:
        if instant == math.inf:
            return _NoTimer()
        loop = asyncio.get_running_loop()
        delay = instant - self.now()
        if delay <= 0:  # as asyncio.timeout does for a deadline already passed
            return loop.call_soon(callback)
        return loop.call_later(delay, callback)

    def __repr__(self) -> str:
        return "MonotonicClock()"


class _FakeTimer:
    __slots__ = ("callback", "cancelled", "instant", "loop")

    def __init__(
        self,
        instant: float,
        callback: Callable[[], object],
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.instant = instant
        self.callback = callback
        self.loop = loop
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def run(self) -> None:
        if not self.cancelled:
            self.cancelled = True  # a timer fires once
            self.callback()


class FakeClock:
    """A clock for tests: time moves only when told to, and nothing waits for real.

    :meth:`advance` (or :meth:`advance_to`) moves the time and fires the timers
    that came due; a sleeper wakes once the time reaches its instant. With
    ``autojump=True`` the clock also jumps to the next timer by itself whenever
    every task on the event loop is blocked, so a test of deadlines, slices and
    drains runs instantly and exactly. A task waiting on anything outside the
    loop (a thread, a real socket, a real ``asyncio.sleep``) counts as blocked,
    as in trio's ``MockClock(autojump_threshold=0)``.
    """

    def __init__(self, start: float = 1000.0, *, autojump: bool = False) -> None:
        self._now = start
        self.autojump = autojump
        self._timers: list[tuple[float, int, _FakeTimer]] = []
        self._order = itertools.count()
        self._lock = threading.RLock()  # sync graph nodes advance it from worker threads
        self._watched: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward and fire the timers due by then."""
        if not seconds >= 0:
            raise ValueError(f"FakeClock.advance: seconds must be >= 0, got {seconds!r}")
        with self._lock:
            instant = self._now + seconds
        self.advance_to(instant)

    def advance_to(self, instant: float) -> None:
        """Move the clock to ``instant`` if that is later (never back), and fire
        the timers due by then: how parallel work that started together ends at
        its own finishing time."""
        with self._lock:
            self._now = max(self._now, instant)
            due: list[_FakeTimer] = []
            while self._timers and self._timers[0][0] <= self._now:
                due.append(heapq.heappop(self._timers)[2])
        for timer in due:
            self._dispatch(timer)

    def next_timer_at(self) -> float | None:
        """The instant of the earliest armed timer (``None`` with none)."""
        with self._lock:
            while self._timers and self._timers[0][2].cancelled:
                heapq.heappop(self._timers)
            return self._timers[0][0] if self._timers else None

    def call_at(self, instant: float, callback: Callable[[], object]) -> Timer:
        if instant == math.inf:
            return _NoTimer()
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        timer = _FakeTimer(instant, callback, loop)
        with self._lock:
            due = instant <= self._now
            if not due:
                heapq.heappush(self._timers, (instant, next(self._order), timer))
        if due:
            self._dispatch(timer)
        elif self.autojump and loop is not None:
            self._watch(loop)
        return timer

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._now + max(0.0, seconds))

    async def sleep_until(self, instant: float) -> None:
        """Wait until the clock reaches ``instant`` (yield once if it has)."""
        if instant <= self._now:
            await asyncio.sleep(0)
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        timer = self.call_at(instant, lambda: _wake(woken))
        try:
            await woken
        finally:
            timer.cancel()

    def _dispatch(self, timer: _FakeTimer) -> None:
        if timer.loop is None:
            timer.run()
        elif not timer.loop.is_closed():
            timer.loop.call_soon_threadsafe(timer.run)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop in self._watched:
            return
        if not isinstance(getattr(loop, "_ready", None), deque):
            raise RuntimeError(
                f"FakeClock(autojump=True) needs an asyncio event loop that shows its ready"
                f" queue (the standard library's); got {type(loop).__name__}"
            )
        self._watched.add(loop)
        loop.call_soon(self._autojump, loop)

    def _autojump(self, loop: asyncio.AbstractEventLoop) -> None:
        """Once per loop turn while timers are armed: jump to the next one when
        nothing else is ready to run (every task waits on the clock or outside)."""
        next_at = self.next_timer_at()
        if next_at is None:
            self._watched.discard(loop)
            return
        ready: deque[object] = loop._ready  # type: ignore[attr-defined]
        if not ready:
            self.advance_to(next_at)
        loop.call_soon(self._autojump, loop)

    def __repr__(self) -> str:
        jump = ", autojump=True" if self.autojump else ""
        return f"FakeClock(now={self._now!r}{jump})"


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


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
    """Wall-clock time in ns since the epoch, only for timestamps in records and
    for ranking deadlines across machines (:meth:`Deadline.priority`).

    Never use it for deadline arithmetic: wall time can jump.
    """
    return time.time_ns()


# -- cutoffs ------------------------------------------------------------------------


class _State(enum.Enum):
    CREATED = "created"
    ENTERED = "active"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    EXITED = "finished"


class Timeout:
    """A cancel scope ending at an instant on a clock: ``asyncio.timeout`` driven
    by :meth:`Clock.call_at` rather than the loop's own time.

    At the instant the task inside is cancelled, and leaving the block turns
    that cancellation into ``TimeoutError``; a cancellation from outside passes
    through untouched (the task's cancel count tells them apart, as in asyncio).
    """

    def __init__(self, when: float, clock: Clock) -> None:
        self._when = when
        self._clock = clock
        self._state = _State.CREATED
        self._task: asyncio.Task[object] | None = None
        self._timer: Timer | None = None
        self._cancelling = 0

    def when(self) -> float:
        """The instant on the clock (``math.inf``: never)."""
        return self._when

    def expired(self) -> bool:
        """Whether this scope's instant came and cancelled the task."""
        return self._state in (_State.EXPIRING, _State.EXPIRED)

    def reschedule(self, when: float) -> None:
        """Move the instant (only while inside the block)."""
        if self._state is not _State.ENTERED:
            raise RuntimeError(f"Timeout is {self._state.value}; only an active one moves")
        self._when = when
        self._arm()

    def __repr__(self) -> str:
        return f"<Timeout [{self._state.value}] when={self._when!r}>"

    async def __aenter__(self) -> Timeout:
        if self._state is not _State.CREATED:
            raise RuntimeError("a Timeout is entered once")
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Timeout should be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._state = _State.ENTERED
        self._arm()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._state is _State.EXPIRING:
            self._state = _State.EXPIRED
            assert self._task is not None
            if (
                self._task.uncancel() <= self._cancelling
                and exc_type is not None
                and issubclass(exc_type, asyncio.CancelledError)
            ):
                raise TimeoutError from exc_val
        elif self._state is _State.ENTERED:
            self._state = _State.EXITED

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._clock.call_at(self._when, self._on_timeout)

    def _on_timeout(self) -> None:
        if self._state is not _State.ENTERED:
            return
        assert self._task is not None
        self._task.cancel()
        self._state = _State.EXPIRING
        self._timer = None


def timeout_at(instant: float, *, clock: Clock | None = None) -> Timeout:
    """An ``async with`` block cancelled when ``clock`` (the current clock by
    default) reaches ``instant``; ``math.inf`` means no limit."""
    return Timeout(instant, clock or current_clock())


def timeout_after(seconds: float, *, clock: Clock | None = None) -> Timeout:
    """An ``async with`` block cancelled ``seconds`` from now on ``clock`` (the
    current clock by default); ``math.inf`` means no limit, ``<= 0`` at once."""
    clock = clock or current_clock()
    if seconds == math.inf:
        return Timeout(math.inf, clock)
    return Timeout(clock.now() + max(0.0, seconds), clock)


class Cutoff:
    """One timer for many awaits: :meth:`wait` raises ``TimeoutError`` once
    ``seconds`` have passed on ``clock`` (the current clock by default) since
    the cutoff was made, whichever await is pending then (or at the next one).

    A stream reads hundreds of chunks before one deadline; a timeout scope per
    chunk arms and cancels a timer each time, this arms one. Only the task
    waiting inside :meth:`wait` is ever cancelled, and a cancellation that is
    not the cutoff's passes through untouched.
    """

    def __init__(self, seconds: float, *, clock: Clock | None = None) -> None:
        clock = clock or current_clock()
        self._expired = seconds <= 0
        self._waiting: asyncio.Task[object] | None = None
        self._timer: Timer | None = None
        if not self._expired and seconds != math.inf:
            self._timer = clock.call_at(clock.now() + seconds, self._fire)

    @classmethod
    def at(cls, instant: float, *, clock: Clock | None = None) -> Cutoff:
        """A cutoff at ``instant`` on ``clock``."""
        clock = clock or current_clock()
        return cls(instant - clock.now(), clock=clock)

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
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
