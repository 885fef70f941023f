"""The test-support lateness probe: which wakes count for an interval."""

from __future__ import annotations

import asyncio
import time

from tests.support.lateness import LatenessProbe, measuring_lateness


def test_worst_counts_only_wakes_that_overlap_the_interval() -> None:
    probe = LatenessProbe(wakes=[(1.0, 1.01), (2.0, 2.7), (5.0, 5.3)])
    assert abs(probe.worst(2.5, 3.0) - 0.7) < 1e-9
    assert abs(probe.worst(4.0, 4.9)) < 1e-9  # no wake overlaps
    assert abs(probe.worst(0.0, 10.0) - 0.7) < 1e-9
    assert abs(probe.worst(5.1, 5.2) - 0.3) < 1e-9  # a wait that spans the interval


async def test_a_blocked_loop_is_measured() -> None:
    async with measuring_lateness() as probe:
        await asyncio.sleep(0.05)
        time.sleep(0.2)  # noqa: ASYNC251 -- block the loop on purpose
        await asyncio.sleep(0.05)
    assert probe.worst(0.0, float("inf")) >= 0.15
