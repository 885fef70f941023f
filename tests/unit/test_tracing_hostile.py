"""The tracing layer when things go wrong: a slow collector, loops in parent
chains, huge traces, math text in labels, malformed files, a full disk,
secrets in error text. Real OpenTelemetry SDK (TracerProvider, span
processors, the in-memory exporter); nothing here needs a server."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rich.console import Console

from agentrt.cli.trace import trace_summary_command
from agentrt.cli.waterfall import layout, render_html, render_png
from agentrt.core._clock import FakeClock
from agentrt.core._errors import ConfigurationError
from agentrt.core._redact import REDACTED
from agentrt.tracing import (
    AGENTRT,
    GEN_AI,
    ChatSpans,
    TraceFileError,
    TracingSettings,
    configure_tracing,
    flush_traces,
    flush_traces_async,
    shutdown_tracing,
    use_tracer_provider,
    workflow_span,
)
from agentrt.tracing._chat import chat_call
from agentrt.tracing._jsonl import JsonlSpanExporter
from agentrt.tracing._records import (
    RunTrace,
    SpanRecord,
    TraceLimits,
    find_trace_file,
    load_runs,
)
from agentrt.tracing._summary import summarise
from agentrt.tts._config import TTSConfig
from agentrt.tts._executor import TTSExecutor
from agentrt.tuning._samples import extract
from tests.unit.vllm_double import FakeCluster, FakeVLLM, answers_chunks

# -- fixtures -------------------------------------------------------------------


class SlowFlush(SpanProcessor):
    """A processor whose ``force_flush`` takes ``seconds`` (a slow OTLP
    collector), noting how often the event loop's ticker ticked meanwhile."""

    def __init__(self, seconds: float, ticks: list[int] | None = None) -> None:
        self.seconds = seconds
        self.ticks = ticks if ticks is not None else [0]
        self.flushes = 0
        self.ticks_during: list[int] = []
        self.done = threading.Semaphore(0)  # released once per flush finished

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self.flushes += 1
        before = self.ticks[0]
        time.sleep(self.seconds)
        self.ticks_during.append(self.ticks[0] - before)
        self.done.release()
        return True

    async def finished(self) -> None:
        """Wait (off the loop) until one more flush has finished."""
        assert await asyncio.to_thread(self.done.acquire, timeout=10)


def provider_with(*processors: SpanProcessor) -> TracerProvider:
    provider = TracerProvider(shutdown_on_exit=False)
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


async def tick(ticks: list[int]) -> None:
    while True:
        await asyncio.sleep(0.005)
        ticks[0] += 1


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    with use_tracer_provider(provider_with(SimpleSpanProcessor(exporter))):
        yield exporter


def record(span_id: str, parent: str | None, *, start: int = 0, **attributes: Any) -> SpanRecord:
    return SpanRecord(
        trace_id="t" * 32, span_id=span_id, parent_id=parent, name=f"span {span_id}",
        kind="INTERNAL", start_ns=start, end_ns=start + 10, attributes=attributes,
    )  # fmt: skip


def jsonl_span(span_id: str, parent: str | None, **fields: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "trace_id": "a" * 32, "span_id": span_id, "parent_span_id": parent,
        "name": f"span {span_id}", "kind": "INTERNAL", "start_time_unix_nano": 1_000,
        "end_time_unix_nano": 2_000, "attributes": {}, "events": [], "status": {"code": "UNSET"},
    }  # fmt: skip
    line.update(fields)
    return line


def write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


# -- 1. flushing never blocks the event loop ------------------------------------


async def test_a_slow_flush_at_the_end_of_a_run_does_not_stall_the_loop() -> None:
    """Fails before the fix: the workflow span flushed on the loop, so the
    ticker could not tick once during the 2 s flush."""
    ticks = [0]
    slow = SlowFlush(2.0, ticks)
    ticker = asyncio.create_task(tick(ticks))
    try:
        with use_tracer_provider(provider_with(slow)):
            with workflow_span("g"):
                await asyncio.sleep(0)
            await slow.finished()  # the flush ran ...
        # ... and the loop went on meanwhile (400 ticks at best; 20 is plenty).
        assert slow.flushes == 1 and slow.ticks_during[0] >= 20
    finally:
        ticker.cancel()


async def test_waiting_for_a_flush_is_bounded_and_keeps_the_loop_running() -> None:
    ticks = [0]
    slow = SlowFlush(1.0, ticks)
    ticker = asyncio.create_task(tick(ticks))
    try:
        with use_tracer_provider(provider_with(slow)):
            before = ticks[0]
            assert await flush_traces_async(timeout_s=0.3) is False  # gave up waiting ...
            assert ticks[0] - before >= 5  # ... while the loop ticked (60 at best)
            await slow.finished()
            assert await flush_traces_async(timeout_s=0.1) is False
            await slow.finished()
    finally:
        ticker.cancel()
    assert slow.flushes == 2


async def test_runs_ending_together_share_one_flush_in_flight_and_one_queued() -> None:
    """Twenty runs end during a flush: one more flush serves them all (before
    the fix: twenty flushes, one after another, on the loop)."""
    slow = SlowFlush(0.3)
    with use_tracer_provider(provider_with(slow)):
        with workflow_span("first"):
            pass
        await asyncio.sleep(0.05)  # its flush is running now

        async def one_run(i: int) -> None:
            with workflow_span(f"run{i}"):
                await asyncio.sleep(0)

        await asyncio.gather(*(one_run(i) for i in range(20)))
        assert await flush_traces_async(timeout_s=10)
    assert 1 <= slow.flushes <= 3


async def test_an_awaited_flush_writes_the_run_file(tmp_path: Path) -> None:
    tracing = configure_tracing(TracingSettings(exporters=("jsonl",), traces_dir=tmp_path))
    try:
        with workflow_span("math") as run:
            pass
        assert await flush_traces_async(timeout_s=10)
        assert run.trace_file is not None
        assert "invoke_workflow math" in run.trace_file.read_text()
        assert tracing.flush(5_000) is True  # the sync form, for callers off the loop
    finally:
        shutdown_tracing()


def test_a_sync_caller_still_gets_its_file_when_the_block_ends(tmp_path: Path) -> None:
    configure_tracing(TracingSettings(exporters=("jsonl",), traces_dir=tmp_path))
    try:
        with workflow_span("sync") as run:
            pass
        assert run.trace_file is not None and run.trace_file.is_file()
    finally:
        shutdown_tracing()


class FailingFlush(SlowFlush):
    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        raise RuntimeError("collector exploded")


def test_a_processor_that_raises_while_flushing_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="agentrt")
    with use_tracer_provider(provider_with(FailingFlush(0))):
        assert flush_traces(2_000) is False
        with workflow_span("g"):
            pass
        assert flush_traces(2_000) is False  # the flusher thread survived
    assert "collector exploded" in caplog.text


# -- 2. loops in parent chains ----------------------------------------------------


@pytest.mark.timeout(30)
def test_a_span_that_is_its_own_parent_is_read_as_a_root() -> None:
    """Fails before the fix by hanging: node_of followed the loop forever."""
    run = RunTrace("t", [record("a", "a"), record("b", "a", start=1)])
    assert [s.span_id for s in run.roots()] == ["a"]
    assert [(d, s.span_id) for d, s in run.walk()] == [(0, "a"), (1, "b")]
    assert run.node_of(run.spans[1]) is None


@pytest.mark.timeout(30)
def test_a_longer_parent_cycle_is_cut_at_its_earliest_span() -> None:
    spans = [
        record("c", "b", start=3),
        record("a", "c", start=1),
        record("b", "a", start=2),
        record("d", "b", start=4, **{AGENTRT.NODE: "solve"}),
        record("e", "d", start=5),
    ]
    run = RunTrace("t", spans)
    assert [s.span_id for s in run.roots()] == ["a"]  # a's link to c is the one cut
    assert [s.span_id for _, s in run.walk()] == ["a", "b", "c", "d", "e"]
    assert [run.node_of(s) for s in run.spans] == [None, None, None, "solve", "solve"]
    assert run.parent(run.spans[0]) is None and run.parent(run.spans[2]) == run.spans[1]


@pytest.mark.timeout(60)
def test_summary_and_tuning_finish_on_a_file_with_parent_loops(tmp_path: Path) -> None:
    chat = {GEN_AI.OPERATION_NAME: "chat", AGENTRT.STRATEGY: "single", AGENTRT.N: 1,
            AGENTRT.ACTUAL_LATENCY_S: 0.5}  # fmt: skip
    path = write_lines(
        tmp_path / "loops.jsonl",
        [
            jsonl_span("1111111111111111", "1111111111111111", attributes=chat),
            jsonl_span("2222222222222222", "3333333333333333", attributes=chat),
            jsonl_span("3333333333333333", "2222222222222222", attributes=chat),
        ],
    )
    rows, totals = trace_summary_command([path], console=Console(file=open(os.devnull, "w")))  # noqa: SIM115
    assert sum(r.calls for r in rows) == 3 and totals.runs == 1
    [sample] = extract(load_runs([path]))
    assert len(sample.calls) == 3
    assert len(layout(load_runs([path])[0]).rows) == 3


# -- 3. linear time -------------------------------------------------------------------

READS = [0]


class CountingSpan(SpanRecord):
    """A span that counts every attribute read: the reader's work, whatever its code."""

    def __getattribute__(self, name: str) -> Any:
        READS[0] += 1
        return super().__getattribute__(name)


def chain(n: int) -> list[SpanRecord]:
    """A workflow span, a node span, and ``n`` spans each the child of the last."""
    spans: list[SpanRecord] = [
        CountingSpan("t", "w", None, "invoke_workflow g", "INTERNAL", 0, 10**9,
                     {GEN_AI.OPERATION_NAME: "invoke_workflow"}),
        CountingSpan("t", "n", "w", "node solve", "INTERNAL", 1, 10**9, {AGENTRT.NODE: "solve"}),
    ]  # fmt: skip
    parent = "n"
    for i in range(n):
        attrs = {GEN_AI.OPERATION_NAME: "chat"} if i % 2 else {}
        spans.append(CountingSpan("t", f"s{i}", parent, f"x {i}", "INTERNAL", 2 + i, 10**8, attrs))
        parent = f"s{i}"
    return spans


def work(n: int) -> int:
    spans = chain(n)
    READS[0] = 0
    run = RunTrace("t", spans)
    assert [run.node_of(s) for s in run.spans][2:] == ["solve"] * n
    list(run.walk())
    summarise([run])
    return READS[0]


def test_building_and_querying_a_trace_is_linear_in_its_spans() -> None:
    """Fails before the fix: node_of rebuilt the span index and walked the whole
    parent chain for every span, so twice the spans cost four times the work."""
    small, large = work(500), work(1000)
    assert large <= 2.5 * small, (small, large)


def test_a_trace_split_over_many_files_is_grouped_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = sys.modules[RunTrace.__module__]
    calls = [0]
    natural = module._natural

    def counting(name: str) -> Any:
        calls[0] += 1
        return natural(name)

    monkeypatch.setattr(module, "_natural", counting)
    files, per_file = 30, 10
    for f in range(files):
        write_lines(
            tmp_path / f"part{f:02}.jsonl",
            [jsonl_span(f"{f:08x}{i:08x}", None) for i in range(per_file)],
        )
    [run] = load_runs([tmp_path])
    assert len(run.spans) == files * per_file
    assert calls[0] <= 2 * files * per_file  # before: re-sorted on every file merged


# -- 4. math text in labels -------------------------------------------------------------


def test_dollar_signs_in_labels_are_drawn_as_text(tmp_path: Path) -> None:
    """Fails before the fix: matplotlib parsed ``$\\oops{$`` as math text and raised."""
    spans = [
        record(
            "w",
            None,
            **{GEN_AI.OPERATION_NAME: "invoke_workflow", AGENTRT.GRAPH: "cost $\\oops{$ graph"},
        ),
        replace(record("n", "w", start=1, **{AGENTRT.NODE: "$x^{$"}), name="node $\\frac{$"),
        replace(record("c", "n", start=2), name="price $5 and $\\undefinedcommand$"),
    ]
    waterfall = layout(RunTrace("t", spans))
    path = render_png(waterfall, tmp_path / "dollars.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "$\\frac{$" in render_html(waterfall)


def test_absurd_slices_and_deadlines_do_not_break_the_axis(tmp_path: Path) -> None:
    spans = [
        record(
            "w", None, **{GEN_AI.OPERATION_NAME: "invoke_workflow", AGENTRT.DEADLINE_S: 1.7e308}
        ),
        record("c", "w", start=1, **{GEN_AI.OPERATION_NAME: "chat", AGENTRT.SLICE_S: 1.7e308}),
    ]
    waterfall = layout(RunTrace("t", spans))
    assert waterfall.deadline_s is None and waterfall.rows[1].slice_s is None
    render_png(waterfall, tmp_path / "absurd.png")


# -- 5. malformed trace files: one clear error naming file and line --------------------

GOOD = json.dumps(jsonl_span("0123456789abcdef", None))


def span_line(**fields: Any) -> bytes:
    """One JSONL span line with ``fields`` replaced."""
    return json.dumps(jsonl_span("0123456789abcdef", None) | fields).encode()


def otlp_line(**fields: Any) -> bytes:
    """One OTLP-JSON request line holding one span, with ``fields`` replaced."""
    span = {"traceId": "ab" * 16, "spanId": "cd" * 8, "startTimeUnixNano": "1",
            "endTimeUnixNano": "2"} | fields  # fmt: skip
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


BAD_EVENT = [{"name": "e", "time_unix_nano": 1, "attributes": "a"}]
MALFORMED: dict[str, tuple[bytes, int | None, str]] = {
    "invalid UTF-8": (GOOD.encode() + b'\n{"name": "\xff\xfe"}\n', 2, "UTF-8"),
    "invalid JSON": (GOOD.encode() + b'\n{"trace_id": \n', 2, "not JSON"),
    "a list, not an object": (b"\n\n[1, 2]\n", 3, "not a JSON object"),
    "a number": (GOOD.encode() + b"\n5\n", 2, "not a JSON object"),
    "null": (b"null\n", 1, "not a JSON object"),
    "neither format": (b'{"hello": 1}\n', 1, "neither"),
    "span_id missing": (span_line(span_id=None), 1, "span_id"),
    "span_id a number": (span_line(span_id=5), 1, "span_id"),
    "trace_id an object": (span_line(trace_id={}), 1, "trace_id"),
    "parent a list": (span_line(parent_span_id=["p"]), 1, "parent_span_id"),
    "start time a string": (span_line(start_time_unix_nano="soon"), 1, "start_time"),
    "end time missing": (span_line(end_time_unix_nano=None), 1, "end_time"),
    "time a bool": (span_line(start_time_unix_nano=True), 1, "start_time"),
    "time a float": (span_line(start_time_unix_nano=1.5), 1, "start_time"),
    "time negative": (span_line(end_time_unix_nano=-1), 1, "end_time"),
    "time past 2**64": (span_line(end_time_unix_nano=2**70), 1, "end_time"),
    "time of 5000 digits": (GOOD.replace("1000", "1" * 5000).encode(), 1, "not JSON"),
    "name a number": (span_line(name=3), 1, "name"),
    "attributes a list": (span_line(attributes=[1]), 1, "attributes"),
    "events an object": (span_line(events={}), 1, "events"),
    "event attributes a string": (span_line(events=BAD_EVENT), 1, "events[0].attributes"),
    "status a string": (span_line(status="ERROR"), 1, "status"),
    "OTLP resourceSpans an object": (b'{"resourceSpans": {}}\n', 1, "resourceSpans"),
    "OTLP span not an object": (
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [7]}]}]}\n',
        1,
        "spans[0]",
    ),
    "OTLP spanId a number": (otlp_line(spanId=12), 1, "spanId"),
    "OTLP time not digits": (otlp_line(startTimeUnixNano="12abc"), 1, "startTimeUnixNano"),
    "OTLP attribute key a number": (
        otlp_line(attributes=[{"key": 5, "value": {}}]),
        1,
        "attributes[0].key",
    ),
    "OTLP intValue not a number": (
        otlp_line(attributes=[{"key": "k", "value": {"intValue": "x"}}]),
        1,
        "intValue",
    ),
    "OTLP array values an object": (
        otlp_line(attributes=[{"key": "k", "value": {"arrayValue": {"values": {}}}}]),
        1,
        "arrayValue.values",
    ),
    "nested 100,000 deep": (
        b'{"trace_id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
        1,
        "nested deeper",
    ),
    "nested deep, unclosed": (b"[" * 200_000 + b"\n", 1, "nested deeper"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_trace_file_is_one_error_naming_file_and_line(
    tmp_path: Path, case: str
) -> None:
    """Fails before the fix for most cases (TypeError, KeyError, RecursionError,
    UnicodeDecodeError, AttributeError escaped; line numbers skipped blanks)."""
    data, line, words = MALFORMED[case]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(data)
    with pytest.raises(TraceFileError) as caught:
        load_runs([path])
    error = caught.value
    assert isinstance(error, ConfigurationError)
    assert error.path == path and error.line == line, str(error)
    where = f"{path}:{line}:" if line is not None else f"{path}:"
    assert str(error).startswith(where) and words in str(error), str(error)


def test_a_line_over_the_byte_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    big = json.dumps(jsonl_span("0123456789abcdef", None, attributes={"x": "y" * 2000}))
    path.write_text(GOOD + "\n" + big + "\n")
    with pytest.raises(TraceFileError, match=r"big.jsonl:2: line longer than 1000 bytes"):
        load_runs([path], limits=TraceLimits(max_line_bytes=1000))
    assert len(load_runs([path])[0].spans) == 1  # the default allows it (same span id)


def test_the_default_line_limit_holds(tmp_path: Path) -> None:
    limit = TraceLimits().max_line_bytes
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as handle:
        handle.write(b'{"trace_id": "' + b"a" * (limit + 10) + b'"}\n')
    with pytest.raises(TraceFileError, match=f"huge.jsonl:1: line longer than {limit} bytes"):
        load_runs([path])


def test_a_pretty_printed_otlp_document_still_reads(tmp_path: Path) -> None:
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "ab" * 16, "spanId": "cd" * 8, "name": "chat m", "kind": 3,
        "startTimeUnixNano": "1", "endTimeUnixNano": "2",
        "attributes": [{"key": "n", "value": {"intValue": "4"}}],
    }]}]}]}  # fmt: skip
    path = tmp_path / "otlp.json"
    path.write_text(json.dumps(document, indent=2))
    [run] = load_runs([path])
    assert run.spans[0].kind == "CLIENT" and run.spans[0].get("n") == 4


def test_missing_files_and_unreadable_candidates_are_trace_file_errors(tmp_path: Path) -> None:
    with pytest.raises(TraceFileError, match="trace file not found"):
        load_runs([tmp_path / "nope.jsonl"])
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe\x00 not text")
    with pytest.raises(TraceFileError, match="no trace file for run 'abc'"):
        find_trace_file("abc", tmp_path)  # before: UnicodeDecodeError reading binary.jsonl


# -- 6. the JSONL exporter never raises, and says what it dropped ----------------------


def finished_span(**attributes: Any) -> ReadableSpan:
    exporter = InMemorySpanExporter()
    provider = provider_with(SimpleSpanProcessor(exporter))
    with use_tracer_provider(provider), workflow_span("dropped") as run:
        for key, value in attributes.items():
            run.set_attribute(key, value)
    [span] = [s for s in exporter.get_finished_spans() if s.name.startswith("invoke_workflow")]
    return span


def test_spans_that_cannot_be_written_are_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Fails before the fix: export returned FAILURE and nobody heard of it."""
    caplog.set_level(logging.WARNING, logger="agentrt")
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the traces directory should be")
    exporter = JsonlSpanExporter(blocked / "traces")
    assert exporter.export([finished_span()]).name == "FAILURE"
    assert "1 span(s)" in caplog.text and "dropped" in caplog.text


def test_a_full_disk_leaves_only_whole_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="agentrt")
    exporter = JsonlSpanExporter(tmp_path)
    span = finished_span()
    assert exporter.export([span]).name == "SUCCESS"
    [path] = tmp_path.glob("*.jsonl")
    before = path.read_bytes()
    real_write = os.write

    def half_then_full(fd: int, data: Any) -> int:
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    assert exporter.export([span, span]).name == "FAILURE"
    monkeypatch.undo()
    assert path.read_bytes() == before  # the half-written batch was cut back off
    assert len(load_runs([path])[0].spans) == 1
    assert "No space left on device" in caplog.text and "2 span(s)" in caplog.text


class Exploding:
    """Not a span at all: whatever the SDK hands over, export must not raise."""

    def get_span_context(self) -> Any:
        raise RuntimeError("boom")


def test_the_exporter_never_raises_into_the_caller(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agentrt")
    exporter = JsonlSpanExporter(tmp_path)
    result = exporter.export([Exploding(), finished_span()])  # type: ignore[list-item]
    assert result.name == "FAILURE" and "boom" in caplog.text
    assert len(load_runs([tmp_path])[0].spans) == 1  # the good span was still written
    exporter.shutdown()
    assert exporter.export([finished_span()]).name == "FAILURE"
    assert "after shutdown" in caplog.text


async def test_a_batch_processor_over_a_failing_exporter_keeps_the_run_going(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agentrt")
    (tmp_path / "f").write_text("")
    processor = BatchSpanProcessor(JsonlSpanExporter(tmp_path / "f" / "traces"))
    with use_tracer_provider(provider_with(processor)):
        with workflow_span("g"):
            pass
        assert await flush_traces_async(timeout_s=10)
    processor.shutdown()
    assert "dropped" in caplog.text


# -- 7. secrets in error text ---------------------------------------------------------

SECRET = "sk-live-0123456789abcdef"


def everything(exporter: InMemorySpanExporter) -> str:
    return json.dumps(
        [
            {
                "attrs": dict(s.attributes or {}),
                "events": [dict(e.attributes or {}) for e in s.events],
                "status": s.status.description,
            }
            for s in exporter.get_finished_spans()
        ],
        default=str,
    )


def test_error_messages_and_exception_events_are_redacted(spans: InMemorySpanExporter) -> None:
    """Fails before the fix: the status and the exception event quoted the key."""
    with pytest.raises(ValueError), workflow_span("g"):
        raise ValueError(f"upstream said: invalid api_key={SECRET}")
    text = everything(spans)
    assert SECRET not in text and REDACTED in text
    [workflow] = spans.get_finished_spans()
    [event] = workflow.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == "ValueError"
    assert "upstream said" in str((event.attributes or {})["exception.message"])


def test_node_errors_and_long_reasons_are_redacted_before_they_are_cut(
    spans: InMemorySpanExporter,
) -> None:
    with workflow_span("g") as run:
        run.node_started("solve", "solve:1")
        run.node_finished("solve", "solve:1", error="x" * 1990 + f" Authorization: Bearer {SECRET}")
    text = everything(spans)
    assert SECRET not in text and SECRET[:8] not in text


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("cannot print me")


def test_an_exception_that_cannot_print_itself_is_still_the_one_raised(
    spans: InMemorySpanExporter,
) -> None:
    """Fails before the fix: recording it raised the RuntimeError instead."""
    with pytest.raises(Unprintable), workflow_span("g"):
        raise Unprintable()
    assert "unprintable" in everything(spans)


async def test_a_degraded_reason_is_redacted_on_the_chat_span(
    spans: InMemorySpanExporter,
) -> None:
    server = FakeVLLM(chunks=answers_chunks(["7"]))
    cluster = FakeCluster(a=server)
    from agentrt.pool import EndpointPool, EndpointSpec

    specs = [EndpointSpec(url=cluster.url("a"))]
    async with EndpointPool(specs, transport=cluster.transport, health_interval_s=0) as pool:
        result = await TTSExecutor(pool, observer=ChatSpans()).run(
            [{"role": "user", "content": "2+5?"}], slice_s=5, config=TTSConfig("single", 1)
        )
    spans.clear()
    leaked = replace(
        result, degraded=True, degraded_reason=f"endpoint failures: 401 password={SECRET}"
    )
    with chat_call([], clock=FakeClock()) as call:
        call.finished(leaked)
    [chat] = spans.get_finished_spans()
    reason = str((chat.attributes or {})[AGENTRT.DEGRADED_REASON])
    assert SECRET not in reason and "endpoint failures" in reason


def test_jsonl_files_redact_string_attributes_on_write(tmp_path: Path) -> None:
    """Fails before the fix: attributes went to the file as they were set."""
    configure_tracing(TracingSettings(exporters=("jsonl",), traces_dir=tmp_path))
    try:
        with workflow_span("g") as run:
            run.set_attribute("agentrt.custom", f"token={SECRET}")
            run.set_attribute("agentrt.list", ["fine", f"Bearer {SECRET}"])
    finally:
        shutdown_tracing()
    assert run.trace_file is not None
    text = run.trace_file.read_text()
    assert SECRET not in text and REDACTED in text and '"fine"' in text
