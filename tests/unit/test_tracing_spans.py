"""Spans of the executor, the workflow/node/tool helpers and the JSONL exporter,
recorded with the real OpenTelemetry SDK (in-memory exporter) against the
in-process vLLM double."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from agentrt.core._clock import FakeClock
from agentrt.core._deadline import Deadline
from agentrt.core._errors import DeadlineExceeded
from agentrt.pool import EndpointPool, EndpointSpec
from agentrt.tracing import (
    AGENTRT,
    GEN_AI,
    ChatSpans,
    TracingSettings,
    configure_tracing,
    expected_answer_scope,
    node_span,
    shutdown_tracing,
    tool_span,
    workflow_span,
)
from agentrt.tracing._content import CAPTURE_CONTENT_ENV
from agentrt.tts._config import TTSConfig
from agentrt.tts._executor import TTSExecutor
from tests.unit.vllm_double import MODEL, FakeCluster, FakeVLLM, answers_chunks

MESSAGES = [{"role": "user", "content": "What is 3 plus 4?"}]


def pool_of(cluster: FakeCluster, *names: str) -> EndpointPool:
    specs = [EndpointSpec(url=cluster.url(n)) for n in names]
    return EndpointPool(specs, transport=cluster.transport, health_interval_s=0)


def majority(n: int) -> TTSConfig:
    return TTSConfig("majority", n, temperature=0.7, max_tokens=64)


def by_name(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


def one(exporter: InMemorySpanExporter, prefix: str) -> ReadableSpan:
    found = by_name(exporter, prefix)
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return found[0]


async def test_chat_span_has_the_genai_attributes_and_agentrt_figures(
    spans: InMemorySpanExporter,
) -> None:
    server = FakeVLLM(chunks=answers_chunks(["7", "7", "7", "5", "4"]))
    async with pool_of(FakeCluster(a=server), "a") as pool:
        result = await TTSExecutor(pool, observer=ChatSpans()).run(
            MESSAGES, slice_s=30, config=majority(5)
        )
    chat = one(spans, "chat")
    attrs = dict(chat.attributes or {})
    assert chat.name == f"chat {MODEL}" and chat.kind is SpanKind.CLIENT
    assert attrs[GEN_AI.OPERATION_NAME] == "chat"
    assert attrs[GEN_AI.PROVIDER_NAME] == "vllm"
    assert attrs[GEN_AI.REQUEST_MODEL] == MODEL
    assert attrs[GEN_AI.REQUEST_CHOICE_COUNT] == 5
    assert attrs[GEN_AI.REQUEST_MAX_TOKENS] == 64
    assert attrs[GEN_AI.REQUEST_TEMPERATURE] == 0.7
    assert attrs[GEN_AI.REQUEST_TOP_P] == 1.0
    assert list(attrs[GEN_AI.RESPONSE_FINISH_REASONS]) == ["stop"] * 3  # type: ignore[arg-type]
    assert attrs[GEN_AI.USAGE_INPUT_TOKENS] == result.prompt_tokens
    assert attrs[GEN_AI.USAGE_OUTPUT_TOKENS] == result.completion_tokens
    assert attrs["server.address"] == "a.test" or isinstance(attrs["server.address"], str)
    assert isinstance(attrs["server.port"], int)
    assert attrs[AGENTRT.STRATEGY] == "majority" and attrs[AGENTRT.N] == 5
    assert attrs[AGENTRT.GROUP] == "plain"
    assert attrs[AGENTRT.SLICE_S] == pytest.approx(30, abs=0.1)
    assert attrs[AGENTRT.PREDICTED_LATENCY_S] == result.predicted_latency_s
    assert attrs[AGENTRT.ACTUAL_LATENCY_S] == result.latency_s
    assert attrs[AGENTRT.BRANCHES_EARLY_STOPPED] == 2
    assert attrs[AGENTRT.DEGRADED] is False
    assert "error.type" not in attrs
    assert GEN_AI.INPUT_MESSAGES not in attrs and GEN_AI.OUTPUT_MESSAGES not in attrs
    branches = by_name(spans, "branch")
    assert len(branches) == 5
    assert all(b.parent is not None and b.parent.span_id == chat.context.span_id for b in branches)
    outcomes = sorted(str((b.attributes or {})[AGENTRT.BRANCH_OUTCOME]) for b in branches)
    assert outcomes == ["early_stopped"] * 2 + ["finished"] * 3
    assert [e.name for e in chat.events] == ["agentrt.early_stop"]
    # the request carried the chat span's trace context
    traceparent = server.request_headers[0]["traceparent"]
    version, trace_id, span_id, flags = traceparent.split("-")
    assert (version, trace_id, span_id) == (
        "00",
        f"{chat.context.trace_id:032x}",
        f"{chat.context.span_id:016x}",
    )
    assert int(flags, 16) & 1  # sampled


async def test_a_call_cut_by_its_slice_says_deadline_exceeded(
    spans: InMemorySpanExporter,
) -> None:
    chunks = answers_chunks(["9", "9", "1", "2"], finish_order=[0, 1, 2, 3])
    server = FakeVLLM(chunks=chunks, stall_after_chunks=6)
    async with pool_of(FakeCluster(a=server), "a") as pool:
        result = await TTSExecutor(pool, observer=ChatSpans()).run(
            MESSAGES, slice_s=0.3, config=majority(4)
        )
    assert result.degraded
    chat = one(spans, "chat")
    attrs = dict(chat.attributes or {})
    assert attrs["error.type"] == "deadline_exceeded"
    assert chat.status.status_code is StatusCode.ERROR
    assert attrs[AGENTRT.DEGRADED] is True and attrs[AGENTRT.BRANCHES_CANCELLED] == 2
    cancelled = [
        b
        for b in by_name(spans, "branch")
        if (b.attributes or {})[AGENTRT.BRANCH_OUTCOME] == "cancelled"
    ]
    assert len(cancelled) == 2
    assert all((b.attributes or {})["error.type"] == "deadline_exceeded" for b in cancelled)
    assert "agentrt.slice_end" in [e.name for e in chat.events]


async def test_workflow_node_tool_and_chat_spans_nest(spans: InMemorySpanExporter) -> None:
    server = FakeVLLM(chunks=answers_chunks(["7", "7"]))
    deadline = Deadline.after(20)
    async with pool_of(FakeCluster(a=server), "a") as pool:
        with workflow_span("math", deadline=deadline, task_seed=3) as run:
            with node_span("solve", step=1), expected_answer_scope("7"):
                await TTSExecutor(pool, observer=ChatSpans()).run(
                    MESSAGES, slice_s=5, config=majority(2)
                )
            with node_span("check", step=2), tool_span("calculator", call_id="c1") as tool:
                tool.set_result({"value": 7})
            run.set_outcome(correct=True, degraded=False)
    workflow = one(spans, "invoke_workflow")
    solve, check = one(spans, "node solve"), one(spans, "node check")
    chat, tool_s = one(spans, "chat"), one(spans, "execute_tool")
    assert workflow.name == "invoke_workflow math" and workflow.parent is None
    wattrs = dict(workflow.attributes or {})
    assert wattrs[GEN_AI.OPERATION_NAME] == "invoke_workflow"
    assert wattrs[GEN_AI.WORKFLOW_NAME] == "math"
    assert wattrs[AGENTRT.DEADLINE_S] == 20 and wattrs[AGENTRT.RUN_DEADLINE_MET] is True
    assert wattrs[AGENTRT.RUN_CORRECT] is True and wattrs[AGENTRT.TASK_SEED] == 3
    assert wattrs[AGENTRT.RUN_ID] == f"{workflow.context.trace_id:032x}"
    assert solve.parent is not None and solve.parent.span_id == workflow.context.span_id
    assert chat.parent is not None and chat.parent.span_id == solve.context.span_id
    assert tool_s.parent is not None and tool_s.parent.span_id == check.context.span_id
    cattrs = dict(chat.attributes or {})
    assert cattrs[AGENTRT.NODE] == "solve" and cattrs[AGENTRT.NODE_STEP] == 1
    assert cattrs[AGENTRT.DEADLINE_S] == 20 and 0 < float(cattrs[AGENTRT.TIME_LEFT_S]) <= 20  # type: ignore[arg-type]
    assert cattrs[AGENTRT.ACTUAL_CORRECT] is True
    tattrs = dict(tool_s.attributes or {})
    assert tool_s.name == "execute_tool calculator"
    assert tattrs[GEN_AI.OPERATION_NAME] == "execute_tool"
    assert tattrs[GEN_AI.TOOL_NAME] == "calculator" and tattrs[GEN_AI.TOOL_CALL_ID] == "c1"
    assert GEN_AI.TOOL_CALL_RESULT not in tattrs  # content capture is off


async def test_content_is_recorded_only_when_asked(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
    server = FakeVLLM(chunks=answers_chunks(["7", "7"]))
    spec = EndpointSpec(url=FakeCluster(a=server).url("a"), api_key="sk-secret")
    cluster = FakeCluster(a=server)
    async with EndpointPool([spec], transport=cluster.transport, health_interval_s=0) as pool:
        with tool_span("lookup", arguments={"q": "x"}) as tool:
            tool.set_result("found")
        await TTSExecutor(pool, observer=ChatSpans()).run(MESSAGES, slice_s=5, config=majority(2))
    attrs = dict(one(spans, "chat").attributes or {})
    messages = json.loads(str(attrs[GEN_AI.INPUT_MESSAGES]))
    assert messages == [
        {"role": "user", "parts": [{"type": "text", "content": "What is 3 plus 4?"}]}
    ]
    assert "The answer is 7" in str(attrs[GEN_AI.OUTPUT_MESSAGES])
    tool_attrs = dict(one(spans, "execute_tool").attributes or {})
    assert tool_attrs[GEN_AI.TOOL_CALL_ARGUMENTS] == '{"q": "x"}'
    assert tool_attrs[GEN_AI.TOOL_CALL_RESULT] == "found"
    everything = json.dumps(
        [dict(s.attributes or {}) for s in spans.get_finished_spans()], default=str
    )
    assert "sk-secret" not in everything and "Bearer" not in everything


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (DeadlineExceeded("run", 1.0, 1.2), "deadline_exceeded"),
        (asyncio.CancelledError(), "cancelled"),
        (KeyboardInterrupt(), "cancelled"),
        (ValueError("bad"), "ValueError"),
    ],
)
def test_errors_leaving_a_span_set_error_type(
    spans: InMemorySpanExporter, error: BaseException, expected: str
) -> None:
    with pytest.raises(type(error)), workflow_span("g"), node_span("n"):
        raise error
    for name in ("node n", "invoke_workflow g"):
        span = one(spans, name)
        assert (span.attributes or {})["error.type"] == expected
        assert span.status.status_code is StatusCode.ERROR


async def test_an_executor_cancelled_mid_call_ends_its_span_cancelled(
    spans: InMemorySpanExporter,
) -> None:
    server = FakeVLLM(chunks=answers_chunks(["9", "1"]), stall_after_chunks=1)
    async with pool_of(FakeCluster(a=server), "a") as pool:
        task = asyncio.create_task(
            TTSExecutor(pool, observer=ChatSpans()).run(MESSAGES, slice_s=30, config=majority(2))
        )
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    chat = one(spans, "chat")
    assert (chat.attributes or {})["error.type"] == "cancelled"


async def test_a_fake_clock_places_branches_on_its_own_time_axis(
    spans: InMemorySpanExporter,
) -> None:
    clock = FakeClock()
    server = FakeVLLM(chunks=answers_chunks(["7", "7"]))
    cluster = FakeCluster(a=server)
    specs = [EndpointSpec(url=cluster.url("a"))]
    async with EndpointPool(specs, transport=cluster.transport, clock=clock) as pool:
        await TTSExecutor(pool, clock=clock, observer=ChatSpans()).run(
            MESSAGES, slice_s=5, config=majority(2)
        )
    chat = one(spans, "chat")
    assert chat.start_time is not None and chat.end_time is not None
    for branch in by_name(spans, "branch"):
        assert branch.start_time is not None and branch.end_time is not None
        assert chat.start_time <= branch.start_time <= branch.end_time <= chat.end_time


async def test_jsonl_exporter_writes_one_file_per_run(tmp_path: Path) -> None:
    tracing = configure_tracing(TracingSettings(exporters=("jsonl",), traces_dir=tmp_path))
    try:
        server = FakeVLLM(chunks=answers_chunks(["7", "7"]))
        async with pool_of(FakeCluster(a=server), "a") as pool:
            files = []
            for _ in range(2):
                with workflow_span("math") as run, node_span("solve"):
                    await TTSExecutor(pool, observer=ChatSpans()).run(
                        MESSAGES, slice_s=5, config=majority(2)
                    )
                files.append(run.trace_file)
    finally:
        shutdown_tracing()
    assert tracing.jsonl is not None
    assert len({*files}) == 2 and all(f is not None and f.parent == tmp_path for f in files)
    for path in files:
        assert path is not None
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        names = sorted(line["name"] for line in lines)
        assert names == [
            "branch 0",
            "branch 1",
            f"chat {MODEL}",
            "invoke_workflow math",
            "node solve",
        ]
        assert len({line["trace_id"] for line in lines}) == 1
        assert "math" in path.name


def test_settings_follow_the_standard_variables() -> None:
    assert TracingSettings.from_env({}).exporters == ("jsonl",)
    assert TracingSettings.from_env({}, local=False).exporters == ()
    with_endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert TracingSettings.from_env(with_endpoint).exporters == ("jsonl", "otlp")
    chosen = {"OTEL_TRACES_EXPORTER": "console,otlp"}
    assert TracingSettings.from_env(chosen).exporters == ("console", "otlp")
    assert TracingSettings.from_env({"OTEL_TRACES_EXPORTER": "none"}).exporters == ()
    assert TracingSettings.from_env({"OTEL_SDK_DISABLED": "true"}).exporters == ()
    grpc = {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}
    assert TracingSettings.from_env(grpc).otlp_protocol == "grpc"
    assert TracingSettings.from_env({"AGENTRT_TRACES_DIR": "/x"}).traces_dir == Path("/x")


def test_otlp_exporter_is_built_from_the_standard_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9/v1/traces")
    tracing = configure_tracing(TracingSettings(exporters=("otlp", "console")))
    try:
        assert len(tracing.provider._active_span_processor._span_processors) == 2
    finally:
        shutdown_tracing()


async def test_a_driver_opens_node_spans_that_calls_in_the_task_join(
    spans: InMemorySpanExporter,
) -> None:
    """The runner's way: node spans opened from LangGraph's ``tasks`` stream,
    made current inside the task by ``node_context`` around each call."""
    from typing import TypedDict

    from langgraph.config import get_config
    from langgraph.graph import END, START, StateGraph

    from agentrt.tracing import current_workflow, node_context

    class State(TypedDict):
        answer: str

    server = FakeVLLM(chunks=answers_chunks(["7", "7"]))
    async with pool_of(FakeCluster(a=server), "a") as pool:
        executor = TTSExecutor(pool, observer=ChatSpans())

        async def solve(state: State) -> State:
            visit = get_config()["metadata"]["langgraph_checkpoint_ns"]
            with node_context(visit, "solve"):
                result = await executor.run(MESSAGES, slice_s=5, config=majority(2))
            return {"answer": result.answer.key if result.answer else ""}

        builder = StateGraph(State)
        builder.add_node("solve", solve)
        builder.add_edge(START, "solve")
        builder.add_edge("solve", END)
        graph = builder.compile()
        with workflow_span("one-node") as run:
            assert current_workflow() is run
            async for mode, chunk in graph.astream({"answer": ""}, stream_mode=["values", "tasks"]):
                if mode == "tasks" and "triggers" in chunk:
                    run.node_started(chunk["name"], f"{chunk['name']}:{chunk['id']}", step=1)
                elif mode == "tasks":
                    run.node_finished(chunk["name"], f"{chunk['name']}:{chunk['id']}")
            run.node_started("never_finished", "never_finished:x")
    workflow, node, chat = (
        one(spans, "invoke_workflow"),
        one(spans, "node solve"),
        one(spans, "chat"),
    )
    assert node.parent is not None and node.parent.span_id == workflow.context.span_id
    assert chat.parent is not None and chat.parent.span_id == node.context.span_id
    assert (chat.attributes or {})[AGENTRT.NODE] == "solve"
    left = one(spans, "node never_finished")
    assert (left.attributes or {})["error.type"] == "cancelled"


def test_every_gen_ai_key_is_defined_by_the_semantic_conventions() -> None:
    from opentelemetry.semconv._incubating.attributes import gen_ai_attributes
    from opentelemetry.semconv.attributes import error_attributes, server_attributes

    from agentrt.tracing._attributes import AGENTRT as OURS
    from agentrt.tracing._attributes import ERROR_TYPE, SERVER_ADDRESS, SERVER_PORT

    defined = {
        value
        for module in (gen_ai_attributes, error_attributes, server_attributes)
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, str)
    }
    keys = [v for k, v in vars(GEN_AI).items() if k.isupper() and v.startswith("gen_ai.")]
    assert keys and set(keys) <= defined
    assert {ERROR_TYPE, SERVER_ADDRESS, SERVER_PORT} <= defined
    ours = [v for k, v in vars(OURS).items() if k.isupper()]
    assert all(v.startswith("agentrt.") for v in ours)
    operations = {v.value for v in gen_ai_attributes.GenAiOperationNameValues}
    assert {GEN_AI.CHAT, GEN_AI.EXECUTE_TOOL, GEN_AI.INVOKE_WORKFLOW} <= operations
