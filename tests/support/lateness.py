"""How late this test process's event loop ran, measured while a test runs.

Tests that check "returned by the deadline plus a margin" on a shared 2-core
machine meet lateness the runtime cannot prevent: the CPU vLLM servers' OpenMP
threads take both cores and the test process waits for a turn (CI saw one run
return 0.67 s past its hard cut, another call 1.4 s past its slice). Such a
test asserts at the speed it measures: :class:`LatenessProbe` sleeps 20 ms at a
time on the loop under test and records how much later than asked it woke;
:meth:`LatenessProbe.worst` is the largest lateness of the wakes that overlap
an interval, which a deadline check adds to its margin. A runtime that waited
for something on its own (an unwinding graph, a slow flush, a retry) is late
on an on-time loop and still fails.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

INTERVAL_S = 0.02


@dataclass
class LatenessProbe:
    """Wakes of a sleep loop: (asked to wake at, woke at), in ``time.monotonic``."""

    interval_s: float = INTERVAL_S
    wakes: list[tuple[float, float]] = field(default_factory=list)

    def worst(self, start: float, end: float) -> float:
        """The largest lateness of a wake whose wait overlaps ``[start, end]``."""
        return max(
            (woke - due for due, woke in self.wakes if woke >= start and due <= end),
            default=0.0,
        )

    async def _run(self) -> None:
        while True:
            due = time.monotonic() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.wakes.append((due, time.monotonic()))


@asynccontextmanager
async def measuring_lateness(interval_s: float = INTERVAL_S) -> AsyncIterator[LatenessProbe]:
    """Probe the running loop's lateness for the block."""
    probe = LatenessProbe(interval_s)
    task = asyncio.create_task(probe._run(), name="test-lateness-probe")
    try:
        yield probe
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
