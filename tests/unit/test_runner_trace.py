"""A run's ``invoke_workflow`` span carries the run's own elapsed time and
deadline figures, so a trace never disagrees with the ``RunResult``: for a run
that finishes, one cut at its deadline, and one that raises at it.

No server: the graphs' nodes never call an LLM.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentrt.budget import BudgetProfile
from agentrt.langgraph._runner import RunDeadlineExceeded, RunResult
from agentrt.langgraph._runtime import Runtime
from agentrt.pool import EndpointPool, EndpointSpec
from agentrt.tracing import AGENTRT

UNREACHABLE = EndpointSpec(url="http://127.0.0.1:9")


class S(TypedDict, total=False):
    done: bool


def _graph(*, wait: bool) -> Any:
    async def step(state: S) -> S:
        if wait:
            await asyncio.Event().wait()  # never set: only the deadline ends this node
        return {"done": True}

    builder = StateGraph(S)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_edge("step", END)
    return builder.compile(name="timed")


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    opened = EndpointPool([UNREACHABLE], health_interval_s=0)
    held = Runtime(pool=opened)
    try:
        yield held
    finally:
        await held.settle()
        await opened.aclose()


def _workflow(exporter: InMemorySpanExporter) -> dict[str, Any]:
    found: list[ReadableSpan] = [
        s for s in exporter.get_finished_spans() if s.name.startswith("invoke_workflow")
    ]
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return dict(found[0].attributes or {})


def _assert_agrees(attrs: dict[str, Any], result: RunResult) -> None:
    assert attrs[AGENTRT.ELAPSED_S] == result.elapsed_s
    assert attrs[AGENTRT.RUN_DEADLINE_MET] is result.deadline_met
    assert attrs[AGENTRT.RUN_DEGRADED] is result.degraded
    assert result.deadline_met is (result.overshoot_s == 0)


async def test_a_finished_run_and_its_span_agree(
    spans: InMemorySpanExporter, runtime: Runtime
) -> None:
    result = await runtime.run(_graph(wait=False), {}, deadline=5.0)
    assert result.state == {"done": True} and result.deadline_met
    _assert_agrees(_workflow(spans), result)


async def test_a_run_cut_at_its_deadline_and_its_span_agree(
    spans: InMemorySpanExporter, runtime: Runtime
) -> None:
    result = await runtime.run(_graph(wait=True), {}, deadline=0.2)
    assert result.degraded and result.cut == ("step",)
    _assert_agrees(_workflow(spans), result)


async def test_a_run_that_raises_at_its_deadline_and_its_span_agree(
    spans: InMemorySpanExporter, runtime: Runtime
) -> None:
    profile = BudgetProfile.default().with_spec(on_expiry="raise")
    with pytest.raises(RunDeadlineExceeded) as info:
        await runtime.run(_graph(wait=True), {}, deadline=0.2, profile=profile)
    _assert_agrees(_workflow(spans), info.value.result)


async def test_on_expiry_raise_can_be_asked_for_without_a_profile(
    spans: InMemorySpanExporter, runtime: Runtime
) -> None:
    with pytest.raises(RunDeadlineExceeded) as info:
        await runtime.run(_graph(wait=True), {}, deadline=0.2, on_expiry="raise")
    assert info.value.result.cut == ("step",)
    _assert_agrees(_workflow(spans), info.value.result)
