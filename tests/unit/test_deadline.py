"""Deadlines: absolute instants, children, soft/hard, scope, header, errors, and
cutoffs at their instants on an autojumping fake clock (no real waiting)."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentrt.core._clock import FakeClock, timeout_at, use_clock
from agentrt.core._deadline import DEADLINE_HEADER, Deadline, current_deadline, deadline_scope
from agentrt.core._errors import (
    AgentrtError,
    ConfigurationError,
    DeadlineExceeded,
    RunError,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=100.0)


def test_after_is_absolute_and_remaining_is_arithmetic(clock: FakeClock) -> None:
    deadline = Deadline.after(10, clock=clock)
    assert deadline.hard_at == 110.0
    assert deadline.remaining() == 10.0
    clock.advance(4)
    assert deadline.remaining() == 6.0
    assert deadline.elapsed() == 4.0
    assert deadline.budget_s == 10.0
    assert not deadline.expired
    clock.advance(6)
    assert deadline.expired
    assert deadline.remaining() == 0.0
    clock.advance(2)
    assert deadline.remaining() == 0.0
    assert deadline.overrun() == 2.0


def test_uses_the_ambient_clock_when_none_given(clock: FakeClock) -> None:
    with use_clock(clock):
        deadline = Deadline.after(5)
    assert deadline.clock is clock
    assert deadline.hard_at == 105.0


@pytest.mark.parametrize("bad", [0, -1, math.nan, "5", True, None])
def test_after_rejects_bad_seconds(bad: object, clock: FakeClock) -> None:
    with pytest.raises(ConfigurationError):
        Deadline.after(bad, clock=clock)  # type: ignore[arg-type]


def test_after_rejects_bad_soft_margin(clock: FakeClock) -> None:
    with pytest.raises(ConfigurationError, match="soft_margin_s"):
        Deadline.after(5, clock=clock, soft_margin_s=-1)


def test_nan_hard_instant_is_rejected(clock: FakeClock) -> None:
    with pytest.raises(ConfigurationError):
        Deadline(hard_at=math.nan, clock=clock)


def test_soft_instant_comes_first(clock: FakeClock) -> None:
    deadline = Deadline.after(10, clock=clock, soft_margin_s=3)
    assert deadline.soft_at == 107.0
    assert deadline.soft_remaining() == 7.0
    clock.advance(7)
    assert deadline.soft_expired and not deadline.expired
    assert deadline.soft_remaining() == 0.0
    assert Deadline.after(2, clock=clock, soft_margin_s=5).soft_at == clock.now()


def test_soft_after_hard_is_clamped(clock: FakeClock) -> None:
    deadline = Deadline(hard_at=110.0, clock=clock, soft_at=120.0)
    assert deadline.soft_at == 110.0


def test_never_expires(clock: FakeClock) -> None:
    deadline = Deadline.never(clock=clock)
    clock.advance(1e9)
    assert deadline.remaining() == math.inf
    assert not deadline.expired
    deadline.check()


def test_child_at_most_and_fraction(clock: FakeClock) -> None:
    parent = Deadline.after(10, clock=clock)
    assert parent.child(at_most_s=3).remaining() == 3.0
    assert parent.child(at_most_s=30).remaining() == 10.0
    assert parent.child(fraction=0.25).remaining() == 2.5
    assert parent.child(at_most_s=1, fraction=0.5).remaining() == 1.0
    assert parent.child(fraction=0.0).remaining() == 0.0
    assert parent.child().hard_at == parent.hard_at
    assert parent.child(scope="call").scope == "call"
    assert parent.child().scope == "run"


def test_child_of_never(clock: FakeClock) -> None:
    never = Deadline.never(clock=clock)
    assert never.child(fraction=0.5).remaining() == math.inf
    assert never.child(fraction=0.0).remaining() == 0.0
    assert never.child(at_most_s=2).remaining() == 2.0
    assert never.child(at_most_s=math.inf).remaining() == math.inf


def test_child_soft_margin_and_inherited_soft(clock: FakeClock) -> None:
    parent = Deadline.after(10, clock=clock, soft_margin_s=4)
    child = parent.child(at_most_s=8, soft_margin_s=1)
    assert child.hard_at == 108.0
    assert child.soft_at == 106.0  # the parent's soft instant is earlier
    tight = parent.child(at_most_s=2, soft_margin_s=5)
    assert tight.soft_at == clock.now()  # never before now


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"at_most_s": -1}, "at_most_s"),
        ({"at_most_s": math.nan}, "at_most_s"),
        ({"fraction": 1.5}, "fraction"),
        ({"fraction": -0.1}, "fraction"),
    ],
)
def test_child_rejects_bad_arguments(
    kwargs: dict[str, float], field: str, clock: FakeClock
) -> None:
    with pytest.raises(ConfigurationError, match=field):
        Deadline.after(10, clock=clock).child(**kwargs)  # type: ignore[arg-type]


@given(
    budget=st.floats(min_value=1e-3, max_value=1e6),
    at_most=st.floats(min_value=0, max_value=1e7),
    fraction=st.floats(min_value=0, max_value=1),
    elapsed=st.floats(min_value=0, max_value=2e6),
)
def test_children_never_outlive_their_parent(
    budget: float, at_most: float, fraction: float, elapsed: float
) -> None:
    clock = FakeClock(start=0.0)
    parent = Deadline.after(budget, clock=clock)
    clock.advance(elapsed)
    child = parent.child(at_most_s=at_most, fraction=fraction)
    assert child.hard_at <= parent.hard_at
    assert child.remaining() <= parent.remaining()
    assert child.remaining() <= at_most + 1e-9
    assert child.soft_at <= child.hard_at


def test_check_raises_deadline_exceeded_with_scope_budget_elapsed(clock: FakeClock) -> None:
    deadline = Deadline.after(2, clock=clock, scope="call:plan")
    deadline.check()
    clock.advance(2.5)
    with pytest.raises(DeadlineExceeded) as info:
        deadline.check()
    error = info.value
    assert (error.scope, error.deadline_s, error.elapsed_s) == ("call:plan", 2.0, 2.5)
    assert "call:plan" in str(error)
    assert isinstance(error, RunError) and isinstance(error, AgentrtError)
    assert not isinstance(error, ConfigurationError)
    assert not isinstance(error, TimeoutError)


@pytest.mark.parametrize(
    ("seconds", "header"),
    [
        (0.0123, "12300000n"),
        (1.5, "1500000u"),
        (0.0, "0n"),
        (250.0, "250000m"),
        (3 * 86400.0, "259200S"),
        (400 * 86400.0, "34560000S"),
        (10_000 * 86400.0, "14400000M"),
    ],
)
def test_header_carries_remaining_time(seconds: float, header: str) -> None:
    clock = FakeClock(start=0.0)
    deadline = Deadline(hard_at=seconds, clock=clock)
    assert deadline.to_header() == header


def test_header_round_trip_is_relative_not_absolute() -> None:
    sender = FakeClock(start=1_000.0)
    receiver = FakeClock(start=5.0)  # a different process: another origin
    deadline = Deadline.after(2.5, clock=sender)
    sender.advance(0.5)
    remote = Deadline.from_header(deadline.to_header(), clock=receiver)
    assert remote.remaining() == pytest.approx(2.0)
    assert remote.hard_at == pytest.approx(7.0)
    assert remote.scope == "remote"
    assert DEADLINE_HEADER == "agentrt-timeout"


def test_header_of_never_parses_back_as_very_long() -> None:
    clock = FakeClock(start=0.0)
    header = Deadline.never(clock=clock).to_header()
    assert header == "99999999H"
    assert Deadline.from_header(header, clock=clock).remaining() > 1e11


@given(st.floats(min_value=0, max_value=1e9))
def test_header_rounds_up_by_at_most_one_unit(seconds: float) -> None:
    clock = FakeClock(start=0.0)
    header = Deadline(hard_at=seconds, clock=clock).to_header()
    assert len(header) <= 9  # at most 8 digits and a unit, as grpc-timeout
    back = Deadline.from_header(header, clock=clock).remaining()
    tolerance = 1e-12 * max(1.0, seconds)  # float arithmetic only
    assert back >= seconds - tolerance
    # the finest unit with under 1e8 of them is at most 1e-5 of the value
    assert back <= seconds + max(1e-9, seconds * 1e-5) + tolerance


@pytest.mark.parametrize("bad", ["", "15", "1.5S", "-1S", "123456789S", "5 s", "5X"])
def test_bad_header_is_a_configuration_error(bad: str) -> None:
    with pytest.raises(ConfigurationError, match=DEADLINE_HEADER):
        Deadline.from_header(bad, clock=FakeClock())


def test_scope_is_ambient_and_only_tightens(clock: FakeClock) -> None:
    assert current_deadline() is None
    outer = Deadline.after(10, clock=clock)
    with deadline_scope(outer) as active:
        assert active is outer
        assert current_deadline() is outer
        with deadline_scope(Deadline.after(60, clock=clock, scope="node")) as inner:
            assert inner.hard_at == outer.hard_at
            assert inner.scope == "node"
        with deadline_scope(Deadline.after(3, clock=clock)) as tighter:
            assert tighter.remaining() == 3.0
        assert current_deadline() is outer
    assert current_deadline() is None


async def test_scope_reaches_tasks_started_inside(clock: FakeClock) -> None:
    async def read() -> float | None:
        await asyncio.sleep(0)
        found = current_deadline()
        return None if found is None else found.remaining()

    with deadline_scope(Deadline.after(4, clock=clock)):
        inside = await asyncio.create_task(read())
    assert inside == 4.0
    assert await asyncio.create_task(read()) is None


# -- cutoffs at a deadline's instants, on the fake clock -------------------------------


async def test_a_timeout_at_the_hard_instant_fires_exactly_then() -> None:
    clock = FakeClock(start=100.0, autojump=True)
    deadline = Deadline.after(10, clock=clock, scope="run")
    with pytest.raises(TimeoutError):
        async with timeout_at(deadline.hard_at, clock=deadline.clock):
            await asyncio.Event().wait()
    assert clock.now() == deadline.hard_at == 110.0
    assert deadline.expired and deadline.overrun() == 0.0
    assert deadline.exceeded().elapsed_s == 10.0


async def test_a_slice_is_cut_at_its_own_instant_inside_the_run() -> None:
    clock = FakeClock(start=0.0, autojump=True)
    run = Deadline.after(30, clock=clock)
    marks: list[tuple[str, float]] = []
    with pytest.raises(TimeoutError):
        async with timeout_at(run.hard_at, clock=clock):
            for at_most_s in (4.0, 6.0):
                call = run.child(at_most_s=at_most_s, scope="call")
                try:
                    async with timeout_at(call.hard_at, clock=clock):
                        await asyncio.Event().wait()
                except TimeoutError:
                    marks.append((call.scope, clock.now()))
            await asyncio.Event().wait()
    assert marks == [("call", 4.0), ("call", 10.0)]
    assert clock.now() == 30.0 and run.expired


async def test_waiting_for_the_soft_instant_then_the_hard_one() -> None:
    clock = FakeClock(start=0.0, autojump=True)
    deadline = Deadline.after(10, clock=clock, soft_margin_s=2)
    drained_at: list[float] = []

    async def drain() -> None:
        await clock.sleep_until(deadline.soft_at)
        drained_at.append(clock.now())

    task = asyncio.create_task(drain())
    with pytest.raises(TimeoutError):
        async with timeout_at(deadline.hard_at, clock=clock):
            await asyncio.Event().wait()
    await task
    assert drained_at == [8.0] and clock.now() == 10.0


async def test_cancelling_work_under_a_deadline_is_not_a_timeout() -> None:
    clock = FakeClock(start=0.0, autojump=True)
    deadline = Deadline.after(10, clock=clock)

    async def work() -> None:
        async with timeout_at(deadline.hard_at, clock=clock):
            await asyncio.Event().wait()

    task = asyncio.create_task(work())
    await clock.sleep(3.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.now() == 3.0 and not deadline.expired
    await clock.sleep(60.0)  # its timer was disarmed: nothing fires at 10
    assert clock.next_timer_at() is None


async def test_a_never_deadline_arms_no_timer() -> None:
    clock = FakeClock(start=0.0, autojump=True)
    deadline = Deadline.never(clock=clock)
    async with timeout_at(deadline.hard_at, clock=clock) as scope:
        await clock.sleep(1e6)
    assert not scope.expired() and clock.now() == 1e6
