"""The clock module: the real clock, the fake one (by hand and autojumping), the
ambient clock, and the cutoffs built on a clock's timers.

Every cutoff test runs on a :class:`FakeClock`: the instants are exact and no
real time passes (each test checks the real time it took stays far below the
virtual time it covered).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator

import pytest

from agentrt.core._clock import (
    Clock,
    Cutoff,
    FakeClock,
    MonotonicClock,
    current_clock,
    timeout_after,
    timeout_at,
    use_clock,
    wall_time_ns,
)

REAL_LIMIT_S = 1.0
"""A test that covers minutes or hours of virtual time takes less real time than this."""


@pytest.fixture
def real_time() -> Iterator[None]:
    """Fail the test if it waited for real time."""
    started = time.perf_counter()
    yield
    assert time.perf_counter() - started < REAL_LIMIT_S


async def turns(n: int = 20) -> None:
    """Let the event loop run ``n`` turns."""
    for _ in range(n):
        await asyncio.sleep(0)


# -- the clocks ---------------------------------------------------------------------


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
    assert "autojump" in repr(FakeClock(autojump=True))


@pytest.mark.parametrize("bad", [-1.0, math.nan])
def test_fake_clock_refuses_to_go_back(bad: float) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        FakeClock().advance(bad)


async def test_fake_clock_advance_to_never_goes_back(real_time: None) -> None:
    clock = FakeClock(start=10.0, autojump=True)
    clock.advance_to(12.5)
    clock.advance_to(11.0)
    assert clock.now() == 12.5
    await clock.sleep_until(20.0)
    await clock.sleep_until(15.0)  # already past: returns after one turn
    assert clock.now() == 20.0


async def test_a_fake_sleeper_waits_until_the_clock_is_advanced() -> None:
    clock = FakeClock(start=0.0)
    sleeper = asyncio.create_task(clock.sleep(1.0))
    await turns()
    assert not sleeper.done(), "without autojump only advance() moves the time"
    clock.advance(0.5)
    await turns()
    assert not sleeper.done()
    clock.advance(0.5)
    await turns()
    assert sleeper.done() and clock.now() == 1.0


async def test_a_fake_sleep_of_zero_or_less_only_yields() -> None:
    clock = FakeClock(start=0.0)
    seen: list[str] = []

    async def other() -> None:
        seen.append("other")

    task = asyncio.create_task(other())
    await clock.sleep(-5)
    assert seen == ["other"] and clock.now() == 0.0
    await task


async def test_a_thread_advancing_the_clock_wakes_the_loop(real_time: None) -> None:
    clock = FakeClock(start=0.0)  # sync graph nodes advance it from worker threads
    sleeper = asyncio.create_task(clock.sleep(5.0))
    await turns()
    await asyncio.to_thread(clock.advance, 5.0)
    await asyncio.wait_for(sleeper, timeout=REAL_LIMIT_S)
    assert clock.now() == 5.0


async def test_fake_timers_fire_in_instant_order_and_once() -> None:
    clock = FakeClock(start=0.0)
    fired: list[str] = []
    clock.call_at(2.0, lambda: fired.append("b"))
    clock.call_at(1.0, lambda: fired.append("a"))
    clock.call_at(2.0, lambda: fired.append("c"))  # same instant: in arming order
    clock.call_at(1.5, lambda: fired.append("never")).cancel()
    clock.call_at(math.inf, lambda: fired.append("never"))
    assert clock.next_timer_at() == 1.0
    clock.advance(10.0)
    await turns()
    clock.advance(10.0)
    await turns()
    assert fired == ["a", "b", "c"]
    assert clock.next_timer_at() is None


async def test_a_fake_timer_already_due_fires_soon_not_at_once() -> None:
    clock = FakeClock(start=5.0)
    fired: list[float] = []
    clock.call_at(1.0, lambda: fired.append(clock.now()))
    assert fired == []  # as the loop's call_soon: after the caller yields
    await turns(1)
    assert fired == [5.0]


async def test_monotonic_sleep_of_zero_or_less_returns() -> None:
    await MonotonicClock().sleep(0)
    await MonotonicClock().sleep(-1)
    await MonotonicClock().sleep_until(0.0)


async def test_monotonic_timers_are_the_loops() -> None:
    clock = MonotonicClock()
    fired: list[str] = []
    clock.call_at(clock.now() - 1.0, lambda: fired.append("due"))
    clock.call_at(clock.now() + 3600, lambda: fired.append("later")).cancel()
    clock.call_at(math.inf, lambda: fired.append("never")).cancel()
    await turns(2)
    assert fired == ["due"]


# -- autojump -----------------------------------------------------------------------


async def test_autojump_sleeps_hours_in_no_time(real_time: None) -> None:
    clock = FakeClock(start=0.0, autojump=True)
    await clock.sleep(3600)
    assert clock.now() == 3600.0


async def test_autojump_ends_parallel_sleeps_each_at_its_own_instant(real_time: None) -> None:
    clock = FakeClock(start=0.0, autojump=True)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    await asyncio.gather(sleeper("c", 3.0), sleeper("a", 1.0), sleeper("b", 2.0))
    assert woke == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    assert clock.now() == 3.0  # parallel, not 6 s in a row


async def test_autojump_waits_until_every_task_is_blocked(real_time: None) -> None:
    clock = FakeClock(start=0.0, autojump=True)
    seen_by_busy: list[float] = []

    async def busy() -> None:
        for _ in range(200):  # runnable on every turn: the clock must not move
            seen_by_busy.append(clock.now())
            await asyncio.sleep(0)

    async def waiter() -> float:
        await clock.sleep(1.0)
        return clock.now()

    woke_at, _ = await asyncio.gather(waiter(), busy())
    assert seen_by_busy == [0.0] * 200
    assert woke_at == 1.0


async def test_autojump_jumps_only_as_far_as_the_next_timer(real_time: None) -> None:
    clock = FakeClock(start=0.0, autojump=True)
    readings: list[float] = []

    async def ticker() -> None:
        for _ in range(5):
            await clock.sleep(0.25)
            readings.append(clock.now())

    waiter = asyncio.create_task(clock.sleep(100.0))
    await ticker()
    assert readings == [0.25, 0.5, 0.75, 1.0, 1.25]
    assert not waiter.done()
    await waiter
    assert clock.now() == 100.0


async def test_autojump_treats_a_wait_outside_the_loop_as_blocked() -> None:
    clock = FakeClock(start=0.0, autojump=True)
    fake = asyncio.create_task(clock.sleep(60.0))
    await asyncio.sleep(0.01)  # real time: the fake clock jumps meanwhile (trio's threshold 0)
    assert fake.done() and clock.now() == 60.0


# -- the ambient clock --------------------------------------------------------------


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


# -- timeout scopes -----------------------------------------------------------------


async def test_a_timeout_fires_exactly_at_its_virtual_instant(real_time: None) -> None:
    clock = FakeClock(start=0.0, autojump=True)
    with pytest.raises(TimeoutError):
        async with timeout_after(5.0, clock=clock) as scope:
            await clock.sleep(3600)
    assert scope.expired() and scope.when() == 5.0
    assert clock.now() == 5.0
    await asyncio.sleep(0)  # the task is not left cancelled


async def test_a_timeout_driven_by_hand() -> None:
    clock = FakeClock(start=1000.0)
    event = asyncio.Event()

    async def guarded() -> None:
        async with timeout_at(1005.0, clock=clock):
            await event.wait()

    task = asyncio.create_task(guarded())
    await turns()
    clock.advance(4.999)
    await turns()
    assert not task.done()
    clock.advance(0.001)
    with pytest.raises(TimeoutError):
        await task


async def test_a_body_done_in_time_disarms_its_timeout() -> None:
    clock = FakeClock(start=0.0, autojump=True)
    async with timeout_after(10.0, clock=clock) as scope:
        await clock.sleep(4.0)
    assert not scope.expired() and clock.now() == 4.0
    assert clock.next_timer_at() is None
    assert "finished" in repr(scope)


async def test_nested_timeouts_the_inner_one_first(real_time: None) -> None:
    clock = FakeClock(start=0.0, autojump=True)
    marks: list[tuple[str, float]] = []
    with pytest.raises(TimeoutError):
        async with timeout_after(10.0, clock=clock) as outer:
            try:
                async with timeout_after(3.0, clock=clock) as inner:
                    await clock.sleep(3600)
            except TimeoutError:
                marks.append(("inner", clock.now()))
            await clock.sleep(3600)
    marks.append(("outer", clock.now()))
    assert marks == [("inner", 3.0), ("outer", 10.0)]
    assert inner.expired() and outer.expired()


async def test_nested_timeouts_the_outer_one_first(real_time: None) -> None:
    clock = FakeClock(start=0.0, autojump=True)
    inner_caught = False
    with pytest.raises(TimeoutError):
        async with timeout_after(3.0, clock=clock) as outer:
            try:
                async with timeout_after(10.0, clock=clock) as inner:
                    await clock.sleep(3600)
            except TimeoutError:  # the outer scope's cancellation is not the inner's
                inner_caught = True
    assert not inner_caught
    assert outer.expired() and not inner.expired()
    assert clock.now() == 3.0


async def test_an_outside_cancellation_passes_through_a_timeout(real_time: None) -> None:
    clock = FakeClock(start=0.0, autojump=True)

    async def guarded() -> None:
        async with timeout_after(100.0, clock=clock):
            await asyncio.Event().wait()

    task = asyncio.create_task(guarded())
    await clock.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.now() == 1.0


async def test_a_timeout_can_be_moved_while_active(real_time: None) -> None:
    clock = FakeClock(start=0.0, autojump=True)
    with pytest.raises(TimeoutError):
        async with timeout_after(10.0, clock=clock) as scope:
            scope.reschedule(2.0)
            await clock.sleep(3600)
    assert clock.now() == 2.0
    with pytest.raises(RuntimeError, match="only an active one"):
        scope.reschedule(5.0)


async def test_timeout_after_infinite_and_negative() -> None:
    clock = FakeClock(start=0.0, autojump=True)
    async with timeout_after(math.inf, clock=clock) as scope:
        assert scope.when() == math.inf
        assert clock.next_timer_at() is None  # no timer armed
    with pytest.raises(TimeoutError):
        async with timeout_after(-1, clock=clock):
            await asyncio.Event().wait()
    assert clock.now() == 0.0  # fired at once, no time passed
    with pytest.raises(TimeoutError):  # the real clock: at once too
        async with timeout_after(-1):
            await asyncio.sleep(1)


async def test_timeouts_follow_the_current_clock(real_time: None) -> None:
    clock = FakeClock(start=0.0, autojump=True)
    with use_clock(clock), pytest.raises(TimeoutError):
        async with timeout_after(30.0):
            await asyncio.Event().wait()
    assert clock.now() == 30.0


async def test_a_real_timeout_still_works() -> None:
    with pytest.raises(TimeoutError):
        async with timeout_after(0.001) as scope:
            await asyncio.sleep(10)
    assert scope.expired()


# -- Cutoff: one timer for many awaits -------------------------------------------


async def test_a_cutoff_lets_awaits_through_before_it_passes() -> None:
    clock = FakeClock(start=0.0, autojump=True)
    cutoff = Cutoff(10.0, clock=clock)
    assert await cutoff.wait(asyncio.sleep(0, result=7)) == 7
    assert await cutoff.wait(asyncio.sleep(0, result=8)) == 8
    cutoff.close()
    assert clock.next_timer_at() is None


async def test_a_cutoff_interrupts_the_pending_await_with_timeout_error(real_time: None) -> None:
    clock = FakeClock(start=0.0, autojump=True)
    cutoff = Cutoff.at(0.01, clock=clock)
    with pytest.raises(TimeoutError):
        await cutoff.wait(clock.sleep(3600))
    assert cutoff.expired and clock.now() == 0.01
    # The task is not left cancelled: it can keep awaiting.
    await asyncio.sleep(0)


async def test_a_passed_cutoff_refuses_the_next_await_without_running_it() -> None:
    cutoff = Cutoff(0.0, clock=FakeClock())
    ran = False

    async def work() -> None:
        nonlocal ran
        ran = True

    with pytest.raises(TimeoutError):
        await cutoff.wait(work())
    assert not ran


async def test_a_cutoff_passing_between_awaits_stops_the_next_one() -> None:
    clock = FakeClock(start=0.0)
    cutoff = Cutoff(0.01, clock=clock)
    await cutoff.wait(asyncio.sleep(0))
    clock.advance(0.05)  # the timer fires while nothing waits on the cutoff
    await turns(2)
    assert cutoff.expired
    with pytest.raises(TimeoutError):
        await cutoff.wait(asyncio.sleep(0))


async def test_an_outside_cancellation_passes_through_a_cutoff() -> None:
    clock = FakeClock(start=0.0)
    cutoff = Cutoff(3600.0, clock=clock)
    task = asyncio.create_task(cutoff.wait(asyncio.sleep(3600)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    cutoff.close()


async def test_an_infinite_cutoff_arms_no_timer() -> None:
    clock = FakeClock()
    cutoff = Cutoff(float("inf"), clock=clock)
    assert await cutoff.wait(asyncio.sleep(0, result=1)) == 1
    assert not cutoff.expired
    assert clock.next_timer_at() is None


async def test_a_cutoff_on_the_real_clock() -> None:
    cutoff = Cutoff(0.001)
    with pytest.raises(TimeoutError):
        await cutoff.wait(asyncio.sleep(10))
    assert cutoff.expired
