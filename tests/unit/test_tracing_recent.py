"""The recent runs kept in memory (:class:`agentrt.tracing.RecentRuns`): grouped by
run under their labels, only the runs recorded through the store, bounded in runs,
in spans per run and in characters per value, redacted, and drawable."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from agentrt.core._errors import ConfigurationError
from agentrt.tracing import RecentRuns, node_span, use_tracer_provider, workflow_span
from agentrt.tracing._waterfall import layout


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    provider = TracerProvider()
    with use_tracer_provider(provider):
        yield provider
    provider.shutdown()


def one_run(graph: str = "g", nodes: tuple[str, ...] = ("plan", "solve")) -> str:
    """A run of ``graph`` visiting ``nodes``; its trace id."""
    with workflow_span(graph) as run:
        for step, node in enumerate(nodes):
            with node_span(node, step=step):
                pass
    return run.trace_id


def test_a_recorded_run_is_kept_under_its_label_grouped_by_trace(
    provider: TracerProvider,
) -> None:
    recent = RecentRuns()
    assert recent.attach(provider) and recent.recording_spans
    with recent.recording("run-1"):
        trace_id = one_run("math")
    kept = recent.get("run-1")
    assert kept is not None and kept.finished and kept.dropped_spans == 0
    assert kept.labels == ("run-1",) and kept.trace.trace_id == trace_id
    assert [s.name for s in kept.trace.spans] == ["invoke_workflow math", "node plan", "node solve"]
    assert kept.trace.graph == "math"
    rows = layout(kept.trace).rows
    assert [(r.kind, r.label, r.depth) for r in rows] == [
        ("workflow", "invoke_workflow math", 0), ("node", "node plan", 1),
        ("node", "node solve", 1),
    ]  # fmt: skip
    assert "run-1" in recent and len(recent) == 1 and recent.labels() == ["run-1"]


def test_runs_not_recorded_through_it_are_not_kept(provider: TracerProvider) -> None:
    recent, other = RecentRuns(), RecentRuns()
    recent.attach(provider)
    other.attach(provider)
    one_run()  # outside any recording
    with other.recording("theirs"):
        one_run()
    with recent.recording("mine"), provider.get_tracer("x").start_as_current_span("not a run"):
        pass  # a span that is not a workflow span opens no run
    assert len(recent) == 0 and recent.get("theirs") is None
    assert other.labels() == ["theirs"]


def test_the_oldest_runs_are_forgotten_past_max_runs(provider: TracerProvider) -> None:
    recent = RecentRuns(max_runs=3)
    recent.attach(provider)
    for i in range(5):
        with recent.recording(f"run-{i}"):
            one_run()
    assert len(recent) == 3 and recent.labels() == ["run-2", "run-3", "run-4"]
    assert recent.get("run-0") is None and "run-1" not in recent
    assert recent.get("run-4") is not None


def test_spans_past_max_spans_per_run_are_counted_not_kept(provider: TracerProvider) -> None:
    recent = RecentRuns(max_spans_per_run=3)
    recent.attach(provider)
    with recent.recording("big"):
        one_run(nodes=tuple(f"n{i}" for i in range(10)))
    kept = recent.get("big")
    assert kept is not None and kept.finished and kept.dropped_spans == 7
    names = [s.name for s in kept.trace.spans]
    assert names == ["invoke_workflow g", "node n0", "node n1", "node n2"]  # the root kept


def test_a_run_in_flight_shows_the_spans_ended_so_far(provider: TracerProvider) -> None:
    recent = RecentRuns()
    recent.attach(provider)
    with recent.recording("live"), workflow_span("g"):
        with node_span("first", step=0):
            pass
        kept = recent.get("live")
        assert kept is not None and not kept.finished
        assert [s.name for s in kept.trace.spans] == ["node first"]
    done = recent.get("live")
    assert done is not None and done.finished and len(done.trace.spans) == 2


def test_values_are_redacted_and_cut(provider: TracerProvider) -> None:
    recent = RecentRuns(max_value_chars=40)
    recent.attach(provider)
    attributes = {"note": "api_key=sk-abcdefghijklmnop", "long": "x" * 500}
    with recent.recording("r"), workflow_span("g"), node_span("n", attributes=attributes):
        pass
    kept = recent.get("r")
    assert kept is not None
    node = next(s for s in kept.trace.spans if s.name == "node n")
    assert "sk-abcdefghijklmnop" not in node.get("note") and "api_key=" in node.get("note")
    assert len(node.get("long")) == 40 and node.get("long").endswith("…")


def test_a_label_names_its_latest_run(provider: TracerProvider) -> None:
    recent = RecentRuns()
    recent.attach(provider)
    with recent.recording("same"):
        first = one_run()
    with recent.recording("same"):
        second = one_run()
    kept = recent.get("same")
    assert kept is not None and kept.trace.trace_id == second != first
    assert recent.labels() == ["same"] and len(recent) == 2


async def test_a_task_started_in_its_context_is_recorded(provider: TracerProvider) -> None:
    recent = RecentRuns()
    recent.attach(provider)

    async def run() -> str:
        return one_run("async")

    trace_id = await asyncio.create_task(run(), context=recent.context_for("task"))
    kept = recent.get("task")
    assert kept is not None and kept.trace.trace_id == trace_id
    one_run()  # the caller's own context records nothing
    assert len(recent) == 1


def test_attach_needs_an_sdk_provider_and_is_idempotent(provider: TracerProvider) -> None:
    recent = RecentRuns()
    assert not recent.attach(trace.NoOpTracerProvider())
    assert not recent.recording_spans
    assert recent.attach(provider) and recent.attach()  # the provider in use: the same one
    with recent.recording("once"):
        one_run()
    kept = recent.get("once")
    assert kept is not None and len(kept.trace.spans) == 3  # each span kept once


def test_shutdown_forgets_and_stops_until_attached_again(provider: TracerProvider) -> None:
    recent = RecentRuns()
    recent.attach(provider)
    with recent.recording("before"):
        one_run()
    recent.shutdown()
    assert len(recent) == 0 and not recent.recording_spans
    with recent.recording("while-closed"):
        one_run()
    assert len(recent) == 0
    recent.attach(provider)
    with recent.recording("after"):
        one_run()
    assert recent.labels() == ["after"]


@pytest.mark.parametrize("field", ["max_runs", "max_spans_per_run", "max_value_chars"])
@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_bounds_must_be_positive_integers(field: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=f"RecentRuns: {field} must be an integer >= 1"):
        RecentRuns(**{field: value})  # type: ignore[arg-type]
