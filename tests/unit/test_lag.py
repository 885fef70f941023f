"""The event loop's lateness, as the runner arms its deadline timers with it."""

from __future__ import annotations

import asyncio

import pytest

from agentrt.core._lag import LagWindow, LoopLag


def test_the_margin_is_the_largest_lateness_within_the_horizon() -> None:
    window = LagWindow(horizon_s=2.0)
    assert window.margin_s(now=0.0) == 0.0
    window.add(10.0, 0.05)
    window.add(10.5, 0.30)
    window.add(11.0, -0.01)  # woke early: counts as no lateness
    assert window.margin_s(now=11.0) == 0.30
    assert window.margin_s(now=12.4) == 0.30
    assert window.margin_s(now=12.6) == 0.0  # both older samples have left the horizon


class _SlowLoopClock:
    """A clock whose sleeps overrun by ``late_s``, as on a congested loop."""

    def __init__(self, late_s: float) -> None:
        self.late_s = late_s
        self.t = 100.0
        self.woke = asyncio.Event()

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds + self.late_s
        self.woke.set()
        await asyncio.sleep(0)


async def test_the_probe_measures_lateness_while_someone_measures() -> None:
    clock = _SlowLoopClock(late_s=0.25)
    lag = LoopLag(interval_s=0.02, clock=clock)
    assert not lag.probing
    with lag.measuring():
        with lag.measuring():  # a second run on the same loop shares the probe
            await clock.woke.wait()
            await asyncio.sleep(0)
            assert lag.probing
        assert lag.probing
        assert lag.margin_s() == pytest.approx(0.25)
    assert not lag.probing  # stopped with its last user


async def test_a_runtime_has_one_probe_per_event_loop() -> None:
    from agentrt.langgraph import Runtime

    runtime = Runtime()
    assert runtime.loop_lag() is runtime.loop_lag()
    assert Runtime().loop_lag() is not runtime.loop_lag(), "no lag state shared across runtimes"
