"""What the runner does for many concurrent runs on one event loop.

At the hard deadline a run returns its result at once; the cut graph unwinds
after (on a congested event loop each turn of that unwinding would add to the
overshoot). A run on its own pool waits for the unwinding before closing it.
A runtime draws a graph's topology and parses a profile file once, not once per run.

No server: the graph's node never calls an LLM, it only waits to be cut, then
takes a few turns of the event loop to clean up, as a closing stream does.
Deadlines run on an autojumping fake clock: exact instants, no real waiting.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from agentrt.core._clock import FakeClock, MonotonicClock
from agentrt.core._deadline import Deadline
from agentrt.core._lag import LoopLag
from agentrt.langgraph._runner import _finish_or_cut
from agentrt.langgraph._runtime import Runtime
from agentrt.pool import EndpointPool, EndpointSpec

UNREACHABLE = EndpointSpec(url="http://127.0.0.1:9")
CLEANUP_TURNS = 5


class S(TypedDict, total=False):
    started: bool
    done: bool


def _slow_graph(log: list[str]) -> Any:
    async def slow(state: S) -> S:
        log.append("started")
        try:
            await asyncio.Event().wait()  # never set: only the deadline ends this node
        except asyncio.CancelledError:
            for _ in range(CLEANUP_TURNS):  # a cleanup that takes a few loop turns
                await asyncio.sleep(0)
            log.append("unwound")
            raise
        return {"done": True}

    builder = StateGraph(S)
    builder.add_node("slow", slow)
    builder.add_edge(START, "slow")
    builder.add_edge("slow", END)
    return builder.compile(name="slow")


async def test_the_result_returns_before_the_cut_graph_unwinds() -> None:
    log: list[str] = []
    pool = EndpointPool([UNREACHABLE], health_interval_s=0)
    try:
        runtime = Runtime(pool=pool, clock=FakeClock(autojump=True))
        result = await runtime.run(_slow_graph(log), {"started": True}, deadline=0.2)
        assert result.degraded and result.reason is not None
        assert "hard deadline" in result.reason
        assert result.elapsed_s == pytest.approx(0.2, abs=0.01)  # less any lag margin
        assert result.cut == ("slow",)
        assert result.state == {"started": True}  # the last consistent state
        assert log == ["started"], "returned without waiting for the node to unwind"
        assert runtime.unwinding == 1
        await runtime.settle()
        assert runtime.unwinding == 0
        assert log == ["started", "unwound"], "the cut node was cancelled and cleaned up"
    finally:
        await pool.aclose()


async def test_on_a_lagging_loop_the_cut_comes_early_by_the_lag() -> None:
    pool = EndpointPool([UNREACHABLE], health_interval_s=0)
    runtime = Runtime(pool=pool, clock=FakeClock(autojump=True))
    runtime.loop_lag().window.add(MonotonicClock().now(), 0.15)  # its timers ran 150 ms late
    try:
        result = await runtime.run(_slow_graph([]), {"started": True}, deadline=0.4)
    finally:
        await pool.aclose()
        await runtime.settle()
    assert result.reason is not None
    assert "hard deadline" in result.reason and "early for the event loop's lag" in result.reason
    assert result.elapsed_s <= 0.4 - 0.15 + 1e-9  # armed 150 ms early on the run's clock


async def test_a_run_on_its_own_pool_lets_the_cut_graph_unwind_first() -> None:
    log: list[str] = []
    runtime = Runtime(endpoints=[UNREACHABLE], clock=FakeClock(autojump=True))
    result = await runtime.run(_slow_graph(log), {"started": True}, deadline=0.2)
    assert result.reason is not None and "hard deadline" in result.reason
    assert log == ["started", "unwound"]


async def test_settling_with_nothing_cut_returns_at_once() -> None:
    await Runtime().settle(timeout_s=0.0)


def test_a_graph_is_drawn_once_per_runtime() -> None:
    graph = _slow_graph([])
    runtime = Runtime()
    assert runtime._topology(graph) is runtime._topology(graph)
    assert runtime._topology(graph).nodes == ("slow",)
    assert runtime._topology(_slow_graph([])) is not runtime._topology(graph)
    assert Runtime()._topology(graph) is not runtime._topology(graph), "no state across runtimes"


def test_a_profile_file_is_parsed_once_per_version(tmp_path: Path) -> None:
    path = tmp_path / "math.toml"
    shutil.copy("budgets/math.toml", path)
    runtime = Runtime()
    first = runtime._profile(path)
    assert runtime._profile(path) is first
    text = path.read_text(encoding="utf-8").replace("reserve_s = 0.25", "reserve_s = 0.5")
    path.write_text(text, encoding="utf-8")  # a tuned profile written between runs
    again = runtime._profile(path)
    assert again is not first and again.spec.reserve_s == 0.5


async def test_waiting_for_the_graph_tells_finished_from_cut() -> None:
    async def done() -> None:
        return None

    async def times_out() -> None:
        raise TimeoutError  # a node's own timeout

    async def never() -> None:
        await asyncio.Event().wait()

    finished = asyncio.create_task(done())
    await finished
    lag = LoopLag()
    # Finished before (or just as) the timer fired: not a cut, even past the deadline.
    clock = FakeClock()
    past = Deadline.after(1.0, clock=clock)
    clock.advance(2.0)
    assert past.expired and await _finish_or_cut(finished, past, lag) is None
    jumping = FakeClock(autojump=True)
    with pytest.raises(TimeoutError):  # the graph's own TimeoutError is not the deadline's
        await _finish_or_cut(
            asyncio.create_task(times_out()), Deadline.after(30.0, clock=jumping), lag
        )
    hanging = asyncio.create_task(never())
    try:
        cut_at = Deadline.after(0.05, clock=jumping)
        early = await _finish_or_cut(hanging, cut_at, lag)
        assert early is not None and early >= 0.0 and not hanging.done()
        assert jumping.now() == pytest.approx(cut_at.hard_at - early)
    finally:
        hanging.cancel()


def _work_then_finish(overrun_s: float, clock: FakeClock) -> Any:
    """``work`` ends ``overrun_s`` past the soft instant (a call that used its whole
    slice, plus the graph's own turn-around); ``finish`` turns it into an answer."""
    from agentrt.langgraph import get_budget

    async def work(state: S) -> S:
        budget = get_budget()
        assert budget is not None
        await clock.sleep(max(0.0, budget.soft_remaining_s) + overrun_s)
        return {"started": True}

    async def finish(state: S) -> S:
        return {"done": True}

    builder = StateGraph(S)
    builder.add_node("work", work)
    builder.add_node("finish", finish)
    builder.add_edge(START, "work")
    builder.add_edge("work", "finish")
    builder.add_edge("finish", END)
    return builder.compile(name="wrapup")


async def test_a_wrap_up_step_starting_just_after_the_soft_instant_still_runs() -> None:
    from agentrt.budget._profile import BudgetProfile

    profile = BudgetProfile.default().with_spec(reserve_s=0.3)
    clock = FakeClock(autojump=True)
    pool = EndpointPool([UNREACHABLE], health_interval_s=0)
    runtime = Runtime(pool=pool, clock=clock)
    try:
        result = await runtime.run(_work_then_finish(0.03, clock), {}, deadline=1.2,
                                   profile=profile)  # fmt: skip
    finally:
        await pool.aclose()
        await runtime.settle()
    assert result.state.get("done") is True, result.reason
    assert not result.cut


async def test_a_run_still_working_late_in_the_reserve_is_drained() -> None:
    from agentrt.budget._profile import BudgetProfile

    profile = BudgetProfile.default().with_spec(reserve_s=0.3)
    clock = FakeClock(autojump=True)
    pool = EndpointPool([UNREACHABLE], health_interval_s=0)
    runtime = Runtime(pool=pool, clock=clock)
    try:
        # work ends 0.2 s past the soft instant: past the drain (0.15 s in), before the cut.
        result = await runtime.run(_work_then_finish(0.2, clock), {}, deadline=1.2,
                                   profile=profile)  # fmt: skip
    finally:
        await pool.aclose()
        await runtime.settle()
    assert result.degraded and result.reason is not None and "soft deadline" in result.reason
    assert "done" not in result.state and result.state.get("started") is True
