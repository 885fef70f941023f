"""Metrics of runs and LLM calls, recorded with the real OpenTelemetry SDK (an
``InMemoryMetricReader``) as real agentrt runs go against the in-process vLLM
double: the GenAI client series (names, units, token types, model and server
attributes, the conventions' buckets), runs by outcome, SLA met and missed,
overshoot, slices allocated and used, the latency-prediction error,
admission refusals; and the Prometheus text ``metrics_exposition`` serves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, StateGraph
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from agentrt.core._clock import FakeClock
from agentrt.core._deadline import Deadline
from agentrt.core._errors import ConfigurationError
from agentrt.langgraph import Runtime, TTSChatModel
from agentrt.langgraph._runner import RunFailed, RunResult
from agentrt.pool import EndpointPool, EndpointSpec
from agentrt.tracing import (
    AGENTRT,
    ChatSpans,
    TracingSettings,
    configure_tracing,
    count_admission_refusal,
    metrics_exposition,
    shutdown_tracing,
    use_meter_provider,
    workflow_span,
)
from agentrt.tracing._instruments import (
    DURATION_BUCKETS_S,
    MAX_REASONS,
    METRIC,
    OTHER,
    SLA_GRACE_S,
    TOKEN_BUCKETS,
    CallMeasurement,
    Metrics,
    admission_reason,
    error_class,
    overshoot_s,
    run_outcome,
    sla_met,
)
from agentrt.tracing._metric_readers import build_meter_provider
from agentrt.tts import LastNumber
from agentrt.tts._config import TTSConfig
from agentrt.tts._executor import TTSExecutor
from tests.unit.vllm_double import MODEL, FakeCluster, FakeVLLM, answers_chunks

MESSAGES = [{"role": "user", "content": "What is 3 plus 4?"}]


@dataclass
class Meters:
    reader: InMemoryMetricReader
    instruments: Metrics

    def collect(self) -> dict[str, Metric]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return {
            m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        }


@pytest.fixture
def meters() -> Iterator[Meters]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    with use_meter_provider(provider) as instruments:
        yield Meters(reader, instruments)
    provider.shutdown()


def points(metrics: Mapping[str, Metric], name: str) -> list[tuple[dict[str, Any], Any]]:
    """``(attributes, point)`` of every series of ``name``."""
    assert name in metrics, sorted(metrics)
    return [(dict(p.attributes or {}), p) for p in metrics[name].data.data_points]


def histogram(metrics: Mapping[str, Metric], name: str, **where: Any) -> HistogramDataPoint:
    """The one series of histogram ``name`` whose attributes include ``where``
    (keys written with ``__`` for ``.``: ``agentrt__node``)."""
    wanted = {k.replace("__", "."): v for k, v in where.items()}
    found = [p for a, p in points(metrics, name) if all(a.get(k) == v for k, v in wanted.items())]
    assert len(found) == 1, points(metrics, name)
    assert isinstance(found[0], HistogramDataPoint)
    return found[0]


def counts(metrics: Mapping[str, Metric], name: str, key: str) -> dict[Any, float]:
    """A counter's value per value of attribute ``key``."""
    out: dict[Any, float] = {}
    for attrs, point in points(metrics, name):
        assert isinstance(point, NumberDataPoint)
        out[attrs.get(key)] = out.get(attrs.get(key), 0) + point.value
    return out


def pool_of(cluster: FakeCluster) -> EndpointPool:
    return EndpointPool(
        [EndpointSpec(url=cluster.url("a"))], transport=cluster.transport, health_interval_s=0
    )


class S(TypedDict, total=False):
    question: str
    answer: str


def solver(model: TTSChatModel, *, name: str = "solver", block_s: float = 0.0) -> Any:
    async def solve(state: S) -> S:
        if block_s:
            time.sleep(block_s)  # noqa: ASYNC251 - blocks the loop: no timer fires meanwhile
        reply = await model.ainvoke(state["question"])
        assert isinstance(reply, AIMessage)
        return {"answer": str(reply.content)}

    builder = StateGraph(S)
    builder.add_node("solve", solve)
    builder.add_edge(START, "solve")
    builder.add_edge("solve", END)
    return builder.compile(name=name)


@pytest.fixture
async def runtime_on() -> AsyncIterator[Any]:
    opened: list[tuple[Runtime, EndpointPool]] = []

    def make(server: FakeVLLM) -> Runtime:
        pool = pool_of(FakeCluster(a=server))
        runtime = Runtime(pool=pool)
        opened.append((runtime, pool))
        return runtime

    yield make
    for runtime, pool in opened:
        await runtime.settle()
        await pool.aclose()


def _graph_of(spans: InMemorySpanExporter) -> str:
    (run,) = [s for s in spans.get_finished_spans() if s.name.startswith("invoke_workflow")]
    return str((run.attributes or {})[AGENTRT.GRAPH])


# -- the GenAI client metrics of one call ------------------------------------------


async def test_an_llm_call_records_the_genai_client_metrics(meters: Meters) -> None:
    server = FakeVLLM(chunks=answers_chunks(["7", "7", "5"]))
    async with pool_of(FakeCluster(a=server)) as pool:
        result = await TTSExecutor(pool, observer=ChatSpans()).run(
            MESSAGES, slice_s=30, config=TTSConfig("majority", 3, temperature=0.7, max_tokens=64)
        )
    metrics = meters.collect()
    genai = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "vllm",
        "gen_ai.request.model": MODEL,
        "server.address": "a.test",
        "server.port": 8000,
    }
    duration = metrics[METRIC.OPERATION_DURATION]
    assert duration.unit == "s"
    ((attrs, point),) = points(metrics, METRIC.OPERATION_DURATION)
    assert attrs == genai, "no error.type on a call that succeeded"
    assert point.count == 1 and 0 < point.sum < 30
    assert tuple(point.explicit_bounds) == DURATION_BUCKETS_S

    assert metrics[METRIC.TOKEN_USAGE].unit == "{token}"
    tokens = {a["gen_ai.token.type"]: (a, p) for a, p in points(metrics, METRIC.TOKEN_USAGE)}
    assert set(tokens) == {"input", "output"}
    for kind, figure in (("input", result.prompt_tokens), ("output", result.completion_tokens)):
        attrs, point = tokens[kind]
        assert {k: v for k, v in attrs.items() if k != "gen_ai.token.type"} == genai
        assert point.count == 1 and point.sum == figure
        assert tuple(point.explicit_bounds) == TOKEN_BUCKETS
    assert result.completion_tokens > 0

    assert metrics[METRIC.TIME_TO_FIRST_CHUNK].unit == "s"
    ((attrs, point),) = points(metrics, METRIC.TIME_TO_FIRST_CHUNK)
    assert attrs == genai and point.count == 1 and 0 <= point.sum <= duration_sum(metrics)
    assert tuple(point.explicit_bounds) == DURATION_BUCKETS_S


def duration_sum(metrics: Mapping[str, Metric]) -> float:
    return float(sum(p.sum for _, p in points(metrics, METRIC.OPERATION_DURATION)))


async def test_one_series_per_call_not_per_branch(meters: Meters) -> None:
    server = FakeVLLM(chunks=answers_chunks(["7", "7", "7", "7"]))
    async with pool_of(FakeCluster(a=server)) as pool:
        executor = TTSExecutor(pool, observer=ChatSpans())
        for _ in range(2):
            await executor.run(
                MESSAGES, slice_s=30, config=TTSConfig("majority", 4, temperature=0.7)
            )
    metrics = meters.collect()
    assert histogram(metrics, METRIC.OPERATION_DURATION).count == 2
    assert histogram(metrics, METRIC.TIME_TO_FIRST_CHUNK).count == 2
    for kind in ("input", "output"):
        assert histogram(metrics, METRIC.TOKEN_USAGE, gen_ai__token__type=kind).count == 2


async def test_a_call_that_raises_records_its_duration_with_error_type_and_no_usage(
    meters: Meters,
) -> None:
    server = FakeVLLM(header_delay_s=60)  # the call is in flight until it is cancelled
    async with pool_of(FakeCluster(a=server)) as pool:
        executor = TTSExecutor(pool, observer=ChatSpans())
        task = asyncio.ensure_future(executor.run(MESSAGES, slice_s=30))
        for _ in range(1000):  # until the request is sent (a few turns of the loop)
            if server.requests:
                break
            await asyncio.sleep(0.001)
        assert server.requests
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    metrics = meters.collect()
    ((attrs, point),) = points(metrics, METRIC.OPERATION_DURATION)
    assert attrs["error.type"] == "cancelled" and point.count == 1
    assert METRIC.TOKEN_USAGE not in metrics, "no usage for a failed operation"


# -- a run, end to end -------------------------------------------------------------


async def test_a_run_records_its_outcome_sla_overshoot_and_each_calls_slice(
    meters: Meters, spans: InMemorySpanExporter, runtime_on: Any
) -> None:
    runtime = runtime_on(FakeVLLM(chunks=answers_chunks(["7"])))
    model = TTSChatModel(call_site="solve", answer_spec=LastNumber())
    result: RunResult = await runtime.run(solver(model), {"question": "3 + 4?"}, deadline=5.0)
    assert not result.degraded and result.deadline_met
    (call,) = [c.result for c in result.calls]
    graph = _graph_of(spans)
    metrics = meters.collect()

    assert metrics[METRIC.RUNS].unit == "{run}"
    assert points(metrics, METRIC.RUNS)[0][0] == {
        "agentrt.graph": graph,
        "agentrt.run.outcome": "ok",
    }
    assert counts(metrics, METRIC.RUNS, "agentrt.run.outcome") == {"ok": 1}
    assert counts(metrics, METRIC.SLA_RUNS, "agentrt.sla.outcome") == {"met": 1}
    overshoot = histogram(metrics, METRIC.OVERSHOOT, agentrt__graph=graph)
    assert metrics[METRIC.OVERSHOOT].unit == "s"
    assert overshoot.count == 1 and overshoot.sum == 0 and overshoot.bucket_counts[0] == 1

    where = {"agentrt.graph": graph, "agentrt.node": "solve"}
    allocated = histogram(metrics, METRIC.SLICE_ALLOCATED, agentrt__node="solve")
    assert allocated.count == 1 and allocated.sum == pytest.approx(call.plan.slice_s)
    assert 0 < allocated.sum <= 5.0
    ((attrs, used),) = points(metrics, METRIC.SLICE_USED)
    assert attrs == {**where, "agentrt.within_slice": True}
    assert used.sum == pytest.approx(call.latency_s)
    assert metrics[METRIC.SLICE_ALLOCATED].unit == metrics[METRIC.SLICE_USED].unit == "s"

    error_s = call.latency_error_s
    assert error_s is not None
    ((attrs, error),) = points(metrics, METRIC.PREDICTION_ERROR)
    direction = "slower" if error_s > 0 else "faster"
    assert attrs == {
        **where,
        "agentrt.prediction.direction": direction,
        "agentrt.tts.group": "plain",
    }
    assert error.sum == pytest.approx(abs(error_s)) and metrics[METRIC.PREDICTION_ERROR].unit == "s"
    # the GenAI series of the run's call carry no run ids, prompts or node names
    ((attrs, _),) = points(metrics, METRIC.OPERATION_DURATION)
    assert not any(k.startswith("agentrt.") for k in attrs)


async def test_a_stalled_server_under_a_tight_deadline_degrades_the_run_within_its_sla(
    meters: Meters, spans: InMemorySpanExporter, runtime_on: Any
) -> None:
    runtime = runtime_on(FakeVLLM(chunks=answers_chunks(["7"]), stall_after_chunks=1))
    model = TTSChatModel(call_site="solve", answer_spec=LastNumber())
    result = await runtime.run(solver(model), {"question": "3 + 4?"}, deadline=0.4)
    assert result.degraded
    metrics = meters.collect()
    assert counts(metrics, METRIC.RUNS, "agentrt.run.outcome") == {"degraded": 1}
    # cut at its deadline, it returns within the grace (on a machine not starved of CPU)
    sla = "met" if sla_met(result.elapsed_s, result.deadline_s) else "missed"
    assert counts(metrics, METRIC.SLA_RUNS, "agentrt.sla.outcome") == {sla: 1}
    overshoot = histogram(metrics, METRIC.OVERSHOOT)
    assert overshoot.count == 1 and overshoot.sum == pytest.approx(result.overshoot_s)
    ((attrs, _),) = points(metrics, METRIC.OPERATION_DURATION)
    assert attrs["error.type"] in {"deadline_exceeded", "cancelled"}


async def test_a_run_that_blocks_its_event_loop_past_the_deadline_misses_its_sla(
    meters: Meters, runtime_on: Any
) -> None:
    runtime = runtime_on(FakeVLLM(chunks=answers_chunks(["7"])))
    graph = solver(TTSChatModel(call_site="solve"), block_s=0.35)
    result = await runtime.run(graph, {"question": "3 + 4?"}, deadline=0.1)
    assert result.overshoot_s > SLA_GRACE_S
    metrics = meters.collect()
    assert counts(metrics, METRIC.SLA_RUNS, "agentrt.sla.outcome") == {"missed": 1}
    overshoot = histogram(metrics, METRIC.OVERSHOOT)
    assert overshoot.count == 1 and overshoot.sum == pytest.approx(result.overshoot_s)
    assert overshoot.bucket_counts[0] == 0, "not in the on-time bucket"


async def test_a_run_whose_graph_raises_counts_as_failed(meters: Meters, runtime_on: Any) -> None:
    async def broken(state: S) -> S:
        raise ValueError("the node is broken")

    builder = StateGraph(S)
    builder.add_node("broken", broken)
    builder.add_edge(START, "broken")
    builder.add_edge("broken", END)
    runtime = runtime_on(FakeVLLM())
    with pytest.raises(RunFailed):
        await runtime.run(builder.compile(name="broken"), {}, deadline=2.0, on_error="raise")
    metrics = meters.collect()
    ((attrs, point),) = points(metrics, METRIC.RUNS)
    assert attrs["agentrt.run.outcome"] == "failed" and point.value == 1
    # the graph's own error once the runner passes RunResult.error, else what left the run
    assert attrs["error.type"] in {"ValueError", "agentrt.langgraph._runner.RunFailed"}
    assert counts(metrics, METRIC.SLA_RUNS, "agentrt.sla.outcome") == {"met": 1}


def test_a_failure_the_runner_reports_makes_the_run_failed_with_its_class(
    meters: Meters,
) -> None:
    clock = FakeClock()
    with workflow_span("g", deadline=Deadline.after(1.0, clock=clock)) as run:
        run.set_outcome(degraded=True, error="EndpointRejected: 401 Bearer sk-abcdefghijklmn")
        clock.advance(1.2)
    metrics = meters.collect()
    ((attrs, _),) = points(metrics, METRIC.RUNS)
    assert attrs == {"agentrt.graph": "g", "agentrt.run.outcome": "failed",
                     "error.type": "EndpointRejected"}  # fmt: skip
    assert counts(metrics, METRIC.SLA_RUNS, "agentrt.sla.outcome") == {"missed": 1}
    assert histogram(metrics, METRIC.OVERSHOOT).sum == pytest.approx(0.2)


def test_a_run_without_a_deadline_has_no_sla_or_overshoot(meters: Meters) -> None:
    with workflow_span("g", deadline=Deadline.after(float("inf"), clock=FakeClock())):
        pass
    metrics = meters.collect()
    assert counts(metrics, METRIC.RUNS, "agentrt.run.outcome") == {"ok": 1}
    assert METRIC.SLA_RUNS not in metrics and METRIC.OVERSHOOT not in metrics


def test_a_run_that_raises_counts_as_failed_with_its_error_type(meters: Meters) -> None:
    with pytest.raises(KeyError), workflow_span("g"):
        raise KeyError("x")
    ((attrs, _),) = points(meters.collect(), METRIC.RUNS)
    assert attrs["agentrt.run.outcome"] == "failed" and attrs["error.type"] == "KeyError"


# -- admission refusals --------------------------------------------------------------


def test_admission_refusals_are_counted_by_a_bounded_reason(meters: Meters) -> None:
    for reason in ["queue_full", "queue_full", "deadline_too_short"]:
        count_admission_refusal(reason)
    count_admission_refusal("Bearer sk-live-abcdefghijklmnop")  # free text: never a series
    count_admission_refusal("x" * 200)
    metrics = meters.collect()
    assert metrics[METRIC.ADMISSION_REFUSALS].unit == "{request}"
    assert counts(metrics, METRIC.ADMISSION_REFUSALS, "agentrt.admission.reason") == {
        "queue_full": 2, "deadline_too_short": 1, OTHER: 2,
    }  # fmt: skip


def test_distinct_refusal_reasons_are_capped(meters: Meters) -> None:
    for i in range(MAX_REASONS + 10):
        count_admission_refusal(f"reason_{i}")
    by_reason = counts(meters.collect(), METRIC.ADMISSION_REFUSALS, "agentrt.admission.reason")
    assert len(by_reason) <= MAX_REASONS + 1 and by_reason[OTHER] >= 10


# -- what is recorded, decided purely -----------------------------------------------


@pytest.mark.parametrize(
    ("elapsed_s", "met"), [(0.5, True), (1.0, True), (1.0 + SLA_GRACE_S, True), (1.0501, False)]
)
def test_the_sla_is_the_deadline_plus_50_ms(elapsed_s: float, met: bool) -> None:
    assert sla_met(elapsed_s, 1.0) is met
    assert overshoot_s(elapsed_s, 1.0) == pytest.approx(max(0.0, elapsed_s - 1.0))


def test_outcomes_and_error_classes() -> None:
    assert run_outcome(raised=False, error=None, degraded=False) == "ok"
    assert run_outcome(raised=False, error=None, degraded=True) == "degraded"
    assert run_outcome(raised=False, error="ValueError: x", degraded=True) == "failed"
    assert run_outcome(raised=True, error=None, degraded=False) == "failed"
    assert error_class("EndpointRejected: 401") == "EndpointRejected"
    assert error_class("langgraph.errors.GraphRecursionError: limit") == (
        "langgraph.errors.GraphRecursionError"
    )
    assert error_class("no class here, just words") == OTHER
    assert admission_reason(" queue_full ") == "queue_full"
    assert admission_reason("api_key=abcdefgh") == OTHER
    assert admission_reason("") == OTHER


def test_server_and_config_text_is_redacted_and_cut_on_attributes(meters: Meters) -> None:
    meters.instruments.record_call(
        CallMeasurement(
            0.5, "vllm", model="m?api_key=abcdefghijkl", server=("user:sk-abcdefghijklmnop@h", 1),
            error="x" * 500, node="n" * 500,
        )
    )  # fmt: skip
    ((attrs, _),) = points(meters.collect(), METRIC.OPERATION_DURATION)
    assert "abcdefghijkl" not in str(attrs) and "sk-abcdefghijklmnop" not in str(attrs)
    assert all(len(str(v)) <= 128 for v in attrs.values())


def test_non_finite_figures_are_not_recorded(meters: Meters) -> None:
    meters.instruments.record_call(
        CallMeasurement(0.1, "vllm", slice_s=float("inf"), used_s=float("nan"),
                        prediction_error_s=float("inf"), first_chunk_s=-1.0)
    )  # fmt: skip
    metrics = meters.collect()
    assert set(metrics) == {METRIC.OPERATION_DURATION}


# -- never in the way ------------------------------------------------------------------


async def test_a_failure_while_recording_is_logged_not_raised(
    meters: Meters, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("the meter is broken")

    monkeypatch.setattr(meters.instruments, "record_call", broken)
    monkeypatch.setattr(meters.instruments, "record_run", broken)
    monkeypatch.setattr(meters.instruments, "count_admission_refusal", broken)
    server = FakeVLLM(chunks=answers_chunks(["7"]))
    with caplog.at_level(logging.WARNING, logger="agentrt"):
        async with pool_of(FakeCluster(a=server)) as pool:
            with workflow_span("g"):
                result = await TTSExecutor(pool, observer=ChatSpans()).run(MESSAGES, slice_s=5)
        count_admission_refusal("queue_full")
    assert result.text
    logged = [r.getMessage() for r in caplog.records]
    assert any("recording call metrics failed" in m for m in logged)
    assert any("recording run metrics failed" in m for m in logged)
    assert any("counting an admission refusal failed" in m for m in logged)


# -- where metrics go ------------------------------------------------------------------


async def test_metrics_exposition_serves_prometheus_text() -> None:
    configure_tracing(TracingSettings(exporters=()))
    configure_tracing(TracingSettings(exporters=()))  # twice in one process: no duplicate
    try:
        server = FakeVLLM(chunks=answers_chunks(["7", "7"]))
        async with pool_of(FakeCluster(a=server)) as pool:
            with workflow_span("math", deadline=Deadline.after(5.0)):
                await TTSExecutor(pool, observer=ChatSpans()).run(
                    MESSAGES, slice_s=5, config=TTSConfig("majority", 2, temperature=0.7)
                )
        count_admission_refusal("queue_full")
        body, content_type = metrics_exposition()
    finally:
        shutdown_tracing()
    assert content_type.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    expected = {
        "gen_ai_client_operation_duration_seconds": "histogram",
        "gen_ai_client_token_usage": "histogram",
        "gen_ai_client_operation_time_to_first_chunk_seconds": "histogram",
        "agentrt_runs": "counter",
        "agentrt_sla_runs": "counter",
        "agentrt_run_overshoot_seconds": "histogram",
        "agentrt_call_slice_allocated_seconds": "histogram",
        "agentrt_call_slice_used_seconds": "histogram",
        "agentrt_call_latency_prediction_error_seconds": "histogram",
        "agentrt_admission_refusals": "counter",
    }
    assert {n: families[n].type for n in expected if n in families} == expected
    tokens = {
        s.labels["gen_ai_token_type"]
        for s in families["gen_ai_client_token_usage"].samples
        if s.name.endswith("_count")
    }
    assert tokens == {"input", "output"}
    (runs,) = families["agentrt_runs"].samples
    assert runs.labels["agentrt_run_outcome"] == "ok" and runs.value == 1
    assert runs.labels["agentrt_graph"] == "math"
    (refusals,) = families["agentrt_admission_refusals"].samples
    assert refusals.labels["agentrt_admission_reason"] == "queue_full" and refusals.value == 1
    (model,) = {
        s.labels["gen_ai_request_model"]
        for s in families["gen_ai_client_operation_duration_seconds"].samples
    }
    assert model == MODEL


def test_without_configured_tracing_the_exposition_is_empty() -> None:
    shutdown_tracing()
    body, content_type = metrics_exposition()
    assert body == b"" and "text/plain" in content_type


def test_a_configuration_without_a_prometheus_reader_exposes_nothing() -> None:
    configure_tracing(TracingSettings(exporters=(), metric_exporters=()))
    try:
        count_admission_refusal("queue_full")
        assert metrics_exposition()[0] == b""
    finally:
        shutdown_tracing()


@pytest.mark.parametrize(
    ("env", "readers"),
    [
        ({}, ("prometheus",)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ("prometheus", "otlp")),
        ({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://c:4318/v1/metrics"},
         ("prometheus", "otlp")),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://phoenix:6006/v1/traces"},
         ("prometheus",)),
        ({"OTEL_METRICS_EXPORTER": "otlp, console"}, ("otlp", "console")),
        ({"OTEL_METRICS_EXPORTER": "none"}, ()),
        ({"OTEL_SDK_DISABLED": "true"}, ()),
    ],
)  # fmt: skip
def test_metric_readers_follow_the_standard_variables(
    env: dict[str, str], readers: Sequence[str]
) -> None:
    assert TracingSettings.from_env(env).metric_exporters == tuple(readers)


def test_an_unknown_metric_exporter_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="OTEL_METRICS_EXPORTER"):
        TracingSettings.from_env({"OTEL_METRICS_EXPORTER": "statsd"})


def test_otlp_metrics_get_a_periodic_reader_beside_prometheus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://127.0.0.1:9/v1/metrics")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "1")
    setup = build_meter_provider(("prometheus", "otlp", "otlp"), Resource.create({}))
    try:
        kinds = [type(r).__name__ for r in setup.readers]
        assert kinds == ["PrometheusMetricReader", PeriodicExportingMetricReader.__name__]
        assert setup.registry is not None
    finally:
        setup.provider.shutdown()
    with pytest.raises(ConfigurationError, match="unknown metric exporter 'statsd'"):
        build_meter_provider(("statsd",), Resource.create({}))


def test_configured_tracing_owns_its_meter_provider() -> None:
    tracing = configure_tracing(TracingSettings(exporters=()))
    try:
        assert tracing.metrics_registry is not None
        assert tracing.metrics is not None
    finally:
        shutdown_tracing()
    count_admission_refusal("after_shutdown")  # goes to the global provider: no error
