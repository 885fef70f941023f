"""The drift benchmark's pure parts (order, phases, APE, the tables) and the fault
proxy's slow-down: the release instant, its validation, a proxied byte held
until its stretched instant on a fake clock, and stall / cut on the same path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentrt.core._clock import FakeClock
from agentrt.core._errors import ConfigurationError
from benchmarks.catalog import CATALOG
from benchmarks.drift import (
    CANDIDATES,
    DriftPlan,
    absolute_percentage_error,
    call_orders,
    drift_summary,
    phase_of,
    phase_rows,
    summarise_calls,
    window_rows,
)
from benchmarks.faults import FaultProxy, release_at

# -- the proxy's slow-down --------------------------------------------------------


def test_release_stretches_the_time_since_the_request_began() -> None:
    assert release_at(10.0, 10.5, 3.0) == 11.5
    assert release_at(10.0, 12.0, 3.0) == 16.0
    assert release_at(10.0, 12.0, 1.0) == 12.0  # 1.0: as upstream sent it
    assert release_at(10.0, 10.0, 5.0) == 10.0
    assert release_at(10.0, 9.0, 3.0) == 9.0  # never before it arrived


@pytest.mark.parametrize("bad", [0.5, 0.0, -2.0, float("nan"), float("inf")])
def test_a_slowdown_under_one_is_refused_naming_the_field(bad: float) -> None:
    proxy = FaultProxy("127.0.0.1", 9)
    with pytest.raises(ConfigurationError, match=r"FaultProxy\.slowdown must be finite and >= 1"):
        proxy.slowdown = bad
    assert proxy.slowdown == 1.0


def test_a_slowdown_is_settable_and_heal_resets_it() -> None:
    proxy = FaultProxy("127.0.0.1", 9)
    proxy.slowdown = 3
    assert proxy.slowdown == 3.0
    proxy.heal()
    assert proxy.slowdown == 1.0


class _Upstream:
    """A loopback server that answers each request when the test says so."""

    def __init__(self) -> None:
        self.got_request = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        await reader.read(100)
        self.got_request.set()
        await reader.read(100)  # hold the connection open until the client closes it

    async def send(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)
        await self.writer.drain()


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[_Upstream, int]]:
    handler = _Upstream()
    server = await asyncio.start_server(handler.serve, "127.0.0.1", 0)
    async with server:
        yield handler, int(server.sockets[0].getsockname()[1])


async def _timer_armed(clock: FakeClock, at: float) -> None:
    """Wait (really, briefly) until the proxy has armed a release timer at ``at``."""
    for _ in range(500):
        if clock.next_timer_at() == at:
            return
        await asyncio.sleep(0.002)
    raise AssertionError(f"no timer at {at}; next is {clock.next_timer_at()}")


async def test_a_response_byte_is_held_until_its_stretched_instant(
    upstream: tuple[_Upstream, int],
) -> None:
    server, port = upstream
    clock = FakeClock(start=100.0)
    async with FaultProxy("127.0.0.1", port, clock=clock) as proxy:
        proxy.slowdown = 3.0
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"GET")  # reaches the proxy at 100.0
        await writer.drain()
        await asyncio.wait_for(server.got_request.wait(), 5)
        clock.advance(1.0)
        await server.send(b"A")  # reaches the proxy at 101.0: released at 103.0
        await _timer_armed(clock, 103.0)
        clock.advance(1.9)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), 0.05)
        clock.advance(0.1)
        assert await asyncio.wait_for(reader.read(1), 5) == b"A"
        writer.close()


async def test_without_a_slowdown_bytes_pass_at_once(upstream: tuple[_Upstream, int]) -> None:
    server, port = upstream
    clock = FakeClock(start=100.0)
    async with FaultProxy("127.0.0.1", port, clock=clock) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"GET")
        await writer.drain()
        await asyncio.wait_for(server.got_request.wait(), 5)
        clock.advance(1.0)
        await server.send(b"A")
        assert await asyncio.wait_for(reader.read(1), 5) == b"A"
        assert clock.next_timer_at() is None
        writer.close()


async def test_stall_and_cut_still_work_on_the_release_path(
    upstream: tuple[_Upstream, int],
) -> None:
    server, port = upstream
    async with FaultProxy("127.0.0.1", port) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"GET")
        await writer.drain()
        await asyncio.wait_for(server.got_request.wait(), 5)
        proxy.stall()
        await server.send(b"A")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), 0.05)
        proxy.resume()
        assert await asyncio.wait_for(reader.read(1), 5) == b"A"
        proxy.cut_after(2)
        await server.send(b"BCDE")
        assert await asyncio.wait_for(reader.read(), 5) == b"BC"  # then the connection closes
        assert proxy.cut_connections == 1
        writer.close()


# -- the benchmark's pure parts ------------------------------------------------------


def test_the_order_is_seeded_and_holds_both_candidates() -> None:
    orders = call_orders(0, 200)
    assert orders == call_orders(0, 200) and orders != call_orders(1, 200)
    assert all(sorted(o) == sorted(CANDIDATES) for o in orders)
    firsts = sum(o[0] == "online" for o in orders)
    assert 60 < firsts < 140  # both go first about as often


def test_the_slow_down_starts_at_the_halfway_task() -> None:
    plan = DriftPlan.quick()
    assert plan.switch_at == plan.tasks // 2
    assert phase_of(plan.switch_at - 1, plan.switch_at) == "before"
    assert phase_of(plan.switch_at, plan.switch_at) == "after"
    with pytest.raises(ConfigurationError, match=r"DriftPlan\.tasks must be >= 2"):
        DriftPlan(tasks=1)


def test_ape_is_relative_to_the_actual_latency() -> None:
    assert absolute_percentage_error(1.5, 1.0) == 0.5
    assert absolute_percentage_error(1.0, 2.0) == 0.5
    assert absolute_percentage_error(None, 1.0) is None
    assert absolute_percentage_error(1.0, 0.0) is None


def _call(
    candidate: str, task: int, latency: float, predicted: float | None, *,
    correct: bool = True, cut: bool = False, refused: bool = False, n: int = 4,
    factors: tuple[float, float] | None = None,
) -> dict[str, Any]:  # fmt: skip
    return {
        "candidate": candidate, "task": task, "phase": "before" if task < 4 else "after",
        "slice_s": 2.0, "latency_s": latency, "predicted_latency_s": predicted, "n": n,
        "correct": correct, "degraded": cut or refused, "cut": cut, "refused": refused,
        "ttft_factor": factors[0] if factors else None,
        "per_token_factor": factors[1] if factors else None,
    }  # fmt: skip


def _synthetic() -> list[dict[str, Any]]:
    """8 tasks, slow-down at task 4: online shrinks its plan after one slow call,
    frozen keeps planning n=4 and overruns."""
    calls = []
    for t in range(4):
        calls += [_call("online", t, 1.0, 1.1, factors=(1.0, 1.0)), _call("frozen", t, 1.0, 1.1)]
    calls.append(_call("online", 4, 2.05, 1.1, cut=True, correct=False, factors=(1.0, 1.0)))
    calls += [_call("online", t, 1.8, 1.9, n=1, factors=(3.0, 2.9)) for t in (5, 6, 7)]
    calls += [_call("frozen", t, 2.05, 1.1, cut=True, correct=False) for t in (4, 5, 6, 7)]
    return calls


def test_summarise_counts_shares_and_ape_quantiles() -> None:
    s = summarise_calls([_call("online", 0, 1.0, 1.5), _call("online", 1, 2.5, 2.0, cut=True),
                         _call("online", 2, 1.0, 1.1, correct=False),
                         _call("online", 3, 1.0, None, refused=True)])  # fmt: skip
    assert s["calls"] == 4 and s["inside"] == 0.75 and s["accuracy"] == 0.75
    assert s["ape_median"] == pytest.approx(0.2) and s["ape_p90"] == pytest.approx(0.44)
    assert s["ape_median_uncut"] == pytest.approx(0.3) and s["uncut"] == 2  # the cut call's out
    assert s["cut"] == 0.25 and s["refused"] == 0.25 and s["degraded"] == 0.5
    assert s["mean_n"] == 4.0 and s["latency_p50_s"] == 1.0
    empty = summarise_calls([])
    assert empty["calls"] == 0 and empty["inside"] is None and empty["ape_median"] is None


def test_phase_rows_split_each_candidate_at_the_slow_down() -> None:
    rows = {(r["candidate"], r["phase"]): r for r in phase_rows(_synthetic())}
    assert list(rows) == [("online", "before"), ("online", "after"),
                          ("frozen", "before"), ("frozen", "after")]  # fmt: skip
    assert rows["online", "before"]["inside"] == rows["frozen", "before"]["inside"] == 1.0
    assert rows["online", "after"]["inside"] == 0.75 and rows["frozen", "after"]["inside"] == 0.0
    assert rows["online", "after"]["mean_n"] == 1.75 and rows["frozen", "after"]["mean_n"] == 4.0
    assert rows["frozen", "after"]["accuracy"] == 0.0
    assert rows["online", "after"]["ape_median"] < rows["frozen", "after"]["ape_median"]
    # Every frozen call after the slow-down was cut: no uncensored APE is left.
    assert rows["frozen", "after"]["ape_median_uncut"] is None
    assert rows["online", "after"]["factors"] == "3.00/2.90"
    assert rows["online", "before"]["factors"] == "1.00/1.00"
    assert rows["frozen", "after"]["factors"] is None


def test_window_rows_show_how_fast_each_adapts() -> None:
    rows = window_rows(_synthetic(), 2)
    online = [r for r in rows if r["candidate"] == "online"]
    assert [r["tasks"] for r in online] == ["0-1", "2-3", "4-5", "6-7"]
    assert [r["inside"] for r in online] == [1.0, 1.0, 0.5, 1.0]
    assert [r["phases"] for r in online] == ["before", "before", "after", "after"]
    frozen = [r for r in rows if r["candidate"] == "frozen"]
    assert [r["inside"] for r in frozen] == [1.0, 1.0, 0.0, 0.0]
    with pytest.raises(ConfigurationError, match="window must be >= 1"):
        window_rows(_synthetic(), 0)


def test_the_summary_compares_online_with_frozen_after_the_slow_down() -> None:
    summary = drift_summary(phase_rows(_synthetic()))
    assert summary["after_inside_online_minus_frozen"] == 0.75
    assert summary["after_cut_online_minus_frozen"] == -0.75
    assert summary["after_ape_median_online_minus_frozen"] < 0
    assert summary["after_accuracy_online_minus_frozen"] == 0.75
    assert summary["after_ape_median_uncut_online_minus_frozen"] is None
    assert summary["online_inside_not_worse_after"] and summary["online_ape_lower_after"]
    assert drift_summary([]) == {}


def test_the_benchmark_is_registered_with_a_quick_form() -> None:
    assert CATALOG["drift"].pool == (1, 0)
    assert DriftPlan.quick().tasks < DriftPlan().tasks
    assert DriftPlan().slowdown == 3.0 and DriftPlan().slice_s == 2.0
