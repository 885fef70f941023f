"""The clock module: the real clock, the fake one, and the ambient clock."""

from __future__ import annotations

import asyncio
import math

import pytest

from agentrt.core._clock import (
    Clock,
    Cutoff,
    FakeClock,
    MonotonicClock,
    current_clock,
    timeout_after,
    use_clock,
    wall_time_ns,
)


def test_monotonic_clock_never_goes_back() -> None:
    clock = MonotonicClock()
    readings = [clock.now() for _ in range(100)]
    assert readings == sorted(readings)
    assert isinstance(clock, Clock)


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(start=5.0)
    assert clock.now() == 5.0
    clock.advance(1.5)
    assert clock.now() == 6.5
    assert isinstance(clock, Clock)
    assert "6.5" in repr(clock)


def test_fake_clock_refuses_to_go_back() -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        FakeClock().advance(-1)


async def test_fake_clock_advance_to_never_goes_back() -> None:
    clock = FakeClock(start=10.0)
    clock.advance_to(12.5)
    clock.advance_to(11.0)
    assert clock.now() == 12.5
    await clock.sleep_until(20.0)
    await clock.sleep_until(15.0)
    assert clock.now() == 20.0


async def test_fake_clock_sleep_jumps_without_waiting() -> None:
    clock = FakeClock(start=0.0)
    await clock.sleep(3600)
    await clock.sleep(-5)
    assert clock.now() == 3600.0


async def test_fake_clock_sleep_yields_to_the_loop() -> None:
    clock = FakeClock(start=0.0)
    seen: list[str] = []

    async def other() -> None:
        seen.append("other")

    task = asyncio.create_task(other())
    await clock.sleep(1)
    assert seen == ["other"]
    await task


async def test_monotonic_sleep_of_zero_or_less_returns() -> None:
    await MonotonicClock().sleep(0)
    await MonotonicClock().sleep(-1)


def test_use_clock_is_scoped() -> None:
    default = current_clock()
    assert isinstance(default, MonotonicClock)
    fake = FakeClock()
    with use_clock(fake) as inside:
        assert inside is fake
        assert current_clock() is fake
        with use_clock(FakeClock(start=1.0)):
            assert current_clock().now() == 1.0
        assert current_clock() is fake
    assert current_clock() is default


async def test_use_clock_does_not_leak_across_tasks() -> None:
    fake = FakeClock()

    async def reader() -> Clock:
        return current_clock()

    with use_clock(fake):
        inside = await asyncio.create_task(reader())
    outside = await asyncio.create_task(reader())
    assert inside is fake
    assert outside is not fake


def test_wall_time_is_nanoseconds_since_epoch() -> None:
    assert wall_time_ns() > 1_600_000_000 * 10**9


async def test_timeout_after_infinite_and_negative() -> None:
    async with timeout_after(math.inf):
        pass
    with pytest.raises(TimeoutError):
        async with timeout_after(-1):
            await asyncio.sleep(1)


# -- Cutoff: one timer for many awaits -------------------------------------------


async def test_a_cutoff_lets_awaits_through_before_it_passes() -> None:
    cutoff = Cutoff(10.0)
    assert await cutoff.wait(asyncio.sleep(0, result=7)) == 7
    assert await cutoff.wait(asyncio.sleep(0, result=8)) == 8
    cutoff.close()


async def test_a_cutoff_interrupts_the_pending_await_with_timeout_error() -> None:
    cutoff = Cutoff(0.01)
    with pytest.raises(TimeoutError):
        await cutoff.wait(asyncio.sleep(3600))
    assert cutoff.expired
    # The task is not left cancelled: it can keep awaiting.
    await asyncio.sleep(0)


async def test_a_passed_cutoff_refuses_the_next_await_without_running_it() -> None:
    cutoff = Cutoff(0.0)
    ran = False

    async def work() -> None:
        nonlocal ran
        ran = True

    with pytest.raises(TimeoutError):
        await cutoff.wait(work())
    assert not ran


async def test_a_cutoff_passing_between_awaits_stops_the_next_one() -> None:
    cutoff = Cutoff(0.01)
    await cutoff.wait(asyncio.sleep(0))
    await asyncio.sleep(0.05)  # the timer fires while nothing waits on the cutoff
    with pytest.raises(TimeoutError):
        await cutoff.wait(asyncio.sleep(0))


async def test_an_outside_cancellation_passes_through_a_cutoff() -> None:
    cutoff = Cutoff(3600.0)
    task = asyncio.create_task(cutoff.wait(asyncio.sleep(3600)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    cutoff.close()


async def test_an_infinite_cutoff_arms_no_timer() -> None:
    cutoff = Cutoff(float("inf"))
    assert await cutoff.wait(asyncio.sleep(0, result=1)) == 1
    assert not cutoff.expired
