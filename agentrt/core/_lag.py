"""How late the event loop runs its timers: the margin deadlines are armed with.

A timer on an asyncio loop fires late by the time the loop needs to finish the
callbacks already ready: nothing on an idle loop, hundreds of milliseconds on
one that runs hundreds of graphs at once or shares a busy CPU. A run that
waits for its deadline on such a loop returns that much past it.
:class:`LoopLag` measures the lateness with one probe per event loop (a short
sleep, and how much later than asked it woke) while any run is active;
:meth:`LoopLag.margin_s`, the largest lateness of the last two seconds, is how
much earlier the runner arms its deadline timers. An
:class:`~agentrt.Runtime` keeps one per event loop it runs on.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from agentrt.core._clock import Clock, MonotonicClock

__all__ = ["LagWindow", "LoopLag"]

PROBE_INTERVAL_S = 0.02
HORIZON_S = 2.0


@dataclass
class LagWindow:
    """Lateness samples of the last ``horizon_s`` seconds (pure: times are given)."""

    horizon_s: float = HORIZON_S
    _samples: deque[tuple[float, float]] = field(default_factory=deque)

    def add(self, at: float, lag_s: float) -> None:
        self._samples.append((at, max(0.0, lag_s)))
        self._forget(at)

    def margin_s(self, now: float) -> float:
        """The largest lateness seen in the horizon before ``now`` (0 with none)."""
        self._forget(now)
        return max((lag for _, lag in self._samples), default=0.0)

    def _forget(self, now: float) -> None:
        while self._samples and self._samples[0][0] < now - self.horizon_s:
            self._samples.popleft()


class LoopLag:
    """The lateness of one event loop, probed while someone is :meth:`measuring`.

    The probe is real time whatever clock a run uses: it measures the loop.
    """

    def __init__(self, interval_s: float = PROBE_INTERVAL_S, clock: Clock | None = None) -> None:
        self.interval_s = interval_s
        self.window = LagWindow()
        self._clock = clock or MonotonicClock()
        self._users = 0
        self._probe: asyncio.Task[None] | None = None

    @property
    def probing(self) -> bool:
        return self._probe is not None and not self._probe.done()

    def margin_s(self) -> float:
        return self.window.margin_s(self._clock.now())

    @contextmanager
    def measuring(self) -> Iterator[LoopLag]:
        """Keep the probe running inside the block (it stops with its last user)."""
        self._users += 1
        if not self.probing:
            self._probe = asyncio.get_running_loop().create_task(
                self._run(), name="agentrt-loop-lag"
            )
        try:
            yield self
        finally:
            self._users -= 1
            if self._users == 0 and self._probe is not None:
                self._probe.cancel()
                self._probe = None

    async def _run(self) -> None:
        while True:
            before = self._clock.now()
            await self._clock.sleep(self.interval_s)
            now = self._clock.now()
            self.window.add(now, now - before - self.interval_s)
