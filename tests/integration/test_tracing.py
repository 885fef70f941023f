"""Tracing against the real local vLLM pool: the ``traceparent`` header on the
wire, and the spans of a real LangGraph graph run (normal and degraded)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from agentrt.core._deadline import Deadline
from agentrt.pool import LOCAL_MODEL_NAME, EndpointPool, EndpointSpec
from agentrt.tracing import (
    AGENTRT,
    GEN_AI,
    ChatSpans,
    node_span,
    workflow_span,
)
from agentrt.tts._config import TTSConfig
from agentrt.tts._executor import TTSExecutor

ADDITION = [{"role": "user", "content": "What is 3 plus 4?"}]


class RecordingProxy:
    """A loopback TCP pass-through that keeps every byte the client sent."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.sent = bytearray()
        self.port = 0
        self.handlers: set[asyncio.Task[None]] = set()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if record:
                    self.sent.extend(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            await asyncio.gather(
                self._pipe(reader, up_writer, record=True),
                self._pipe(up_reader, writer, record=False),
            )
        except asyncio.CancelledError:
            writer.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[RecordingProxy]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for task in self.handlers:
                task.cancel()
            await asyncio.gather(*self.handlers, return_exceptions=True)

    def chat_requests(self) -> list[str]:
        """The header blocks of the chat-completion requests that went through."""
        text = self.sent.decode("latin-1")
        blocks = re.split(r"(?=POST |GET )", text)
        return [b.split("\r\n\r\n")[0] for b in blocks if b.startswith("POST /v1/chat/completions")]


def majority(n: int, max_tokens: int = 48) -> TTSConfig:
    return TTSConfig("majority", n, temperature=0.7, max_tokens=max_tokens)


def named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


async def test_a_request_to_the_local_vllm_carries_traceparent(
    plain_specs: list[EndpointSpec], spans: InMemorySpanExporter
) -> None:
    upstream = plain_specs[0].address
    async with RecordingProxy(upstream).running() as proxy:
        spec = plain_specs[0].model_copy(update={"url": f"http://127.0.0.1:{proxy.port}"})
        async with EndpointPool([spec], health_interval_s=0) as pool:
            result = await TTSExecutor(pool, observer=ChatSpans()).run(
                ADDITION, slice_s=60, config=majority(2)
            )
    assert result.branches.finished + result.branches.early_stopped == 2
    [chat] = named(spans, "chat")
    requests = proxy.chat_requests()
    assert len(requests) == 1
    match = re.search(r"(?im)^traceparent: (\S+)\r?$", requests[0])
    assert match is not None, requests[0]
    version, trace_id, span_id, flags = match.group(1).split("-")
    assert version == "00" and int(flags, 16) & 1
    assert trace_id == f"{chat.context.trace_id:032x}"
    assert span_id == f"{chat.context.span_id:016x}"
    # The pool's key rides in its one header and nowhere else in the request.
    key = plain_specs[0].api_key
    if key is not None:
        secret = key.get_secret_value()
        lines = [line for line in requests[0].splitlines() if secret in line]
        assert len(lines) == 1 and lines[0].lower().startswith("authorization: bearer "), lines
    attrs = dict(chat.attributes or {})
    assert attrs["server.address"] == "127.0.0.1" and attrs["server.port"] == proxy.port


class State(TypedDict):
    question: str
    plan: str
    answer: str


def build_graph(executor: TTSExecutor, solve_slice_s: float, solve_config: TTSConfig):  # type: ignore[no-untyped-def]
    async def plan(state: State) -> dict[str, str]:
        with node_span("plan", step=1):
            result = await executor.run(
                [{"role": "user", "content": f"Restate briefly: {state['question']}"}],
                slice_s=30,
                config=TTSConfig("single", 1, max_tokens=16),
            )
        return {"plan": result.text}

    async def solve(state: State) -> dict[str, str]:
        with node_span("solve", step=2):
            result = await executor.run(ADDITION, slice_s=solve_slice_s, config=solve_config)
        return {"answer": result.answer.key if result.answer else ""}

    builder = StateGraph(State)
    builder.add_node("plan", plan)
    builder.add_node("solve", solve)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "solve")
    builder.add_edge("solve", END)
    return builder.compile()


async def run_graph(
    specs: list[EndpointSpec], solve_slice_s: float, solve_config: TTSConfig
) -> None:
    async with EndpointPool(specs) as pool:
        graph = build_graph(TTSExecutor(pool, observer=ChatSpans()), solve_slice_s, solve_config)
        deadline = Deadline.after(120)
        with workflow_span("plan-solve", deadline=deadline, task_seed=1) as run:
            state = await graph.ainvoke({"question": "What is 3 plus 4?", "plan": "", "answer": ""})
            run.set_outcome(correct=state["answer"] == "7")


def check_tree(spans: InMemorySpanExporter) -> tuple[ReadableSpan, ReadableSpan]:
    [workflow] = named(spans, "invoke_workflow")
    [plan], [solve] = named(spans, "node plan"), named(spans, "node solve")
    chats = named(spans, "chat")
    assert workflow.name == "invoke_workflow plan-solve" and workflow.parent is None
    assert (workflow.attributes or {})[GEN_AI.OPERATION_NAME] == "invoke_workflow"
    for node in (plan, solve):
        assert node.parent is not None and node.parent.span_id == workflow.context.span_id
    by_parent = {c.parent.span_id: c for c in chats if c.parent is not None}
    plan_chat, solve_chat = by_parent[plan.context.span_id], by_parent[solve.context.span_id]
    for chat in (plan_chat, solve_chat):
        attrs = dict(chat.attributes or {})
        assert chat.name == f"chat {LOCAL_MODEL_NAME}" and chat.kind is SpanKind.CLIENT
        assert attrs[GEN_AI.OPERATION_NAME] == "chat" and attrs[GEN_AI.PROVIDER_NAME] == "vllm"
        assert attrs[GEN_AI.REQUEST_MODEL] == LOCAL_MODEL_NAME
        for key in (
            GEN_AI.REQUEST_MAX_TOKENS,
            GEN_AI.REQUEST_TEMPERATURE,
            GEN_AI.REQUEST_TOP_P,
            GEN_AI.USAGE_INPUT_TOKENS,
            GEN_AI.USAGE_OUTPUT_TOKENS,
            "server.address",
            "server.port",
            AGENTRT.DEADLINE_S,
            AGENTRT.TIME_LEFT_S,
            AGENTRT.SLICE_S,
            AGENTRT.STRATEGY,
            AGENTRT.N,
            AGENTRT.GROUP,
            AGENTRT.PREDICTED_LATENCY_S,
            AGENTRT.ACTUAL_LATENCY_S,
            AGENTRT.DEGRADED,
        ):
            assert key in attrs, key
        if int(attrs.get(GEN_AI.USAGE_OUTPUT_TOKENS, 0)) > 0:  # type: ignore[arg-type]
            # (a call cut before its first chunk has no usage: 0 both ways)
            assert int(attrs[GEN_AI.USAGE_INPUT_TOKENS]) > 5  # type: ignore[arg-type]
        branches = [
            b
            for b in named(spans, "branch")
            if b.parent and b.parent.span_id == chat.context.span_id
        ]
        # The first request carries the N branches; a hedge (or a re-issue after a
        # failure) adds a request for the missing ones, each branch span saying which.
        first = [b for b in branches if (b.attributes or {})[AGENTRT.BRANCH_REQUEST] == 0]
        assert len(first) == attrs[AGENTRT.N]
        hedged = [b for b in branches if (b.attributes or {})[AGENTRT.BRANCH_HEDGE]]
        assert len(hedged) <= attrs.get(AGENTRT.HEDGE_BRANCHES, 0)  # cancelled hedges: fewer
        for branch in branches:
            assert chat.start_time is not None and branch.start_time is not None
            assert branch.start_time >= chat.start_time
    assert GEN_AI.REQUEST_CHOICE_COUNT not in (plan_chat.attributes or {})  # n == 1
    return plan_chat, solve_chat


async def test_spans_of_a_graph_run_on_the_local_pool(
    plain_specs: list[EndpointSpec], spans: InMemorySpanExporter
) -> None:
    await run_graph(plain_specs, 60, majority(4))
    _, solve = check_tree(spans)
    attrs = dict(solve.attributes or {})
    assert attrs[GEN_AI.REQUEST_CHOICE_COUNT] == 4
    assert attrs[AGENTRT.DEGRADED] is False and "error.type" not in attrs
    reasons = list(attrs[GEN_AI.RESPONSE_FINISH_REASONS])  # type: ignore[arg-type]
    assert reasons and set(reasons) <= {"stop", "length"}


async def test_spans_of_a_degraded_graph_run(
    plain_specs: list[EndpointSpec], spans: InMemorySpanExporter
) -> None:
    # 16 long branches in a 0.6 s slice: the slice ends with branches unfinished.
    await run_graph(plain_specs, 0.6, majority(16, max_tokens=256))
    _, solve = check_tree(spans)
    attrs = dict(solve.attributes or {})
    assert attrs[AGENTRT.DEGRADED] is True
    assert attrs["error.type"] == "deadline_exceeded"
    assert solve.status.status_code is StatusCode.ERROR
    assert int(attrs[AGENTRT.BRANCHES_CANCELLED]) > 0  # type: ignore[arg-type]
    assert "agentrt.slice_end" in [e.name for e in solve.events]
    cancelled = [
        b
        for b in named(spans, "branch")
        if b.parent is not None
        and b.parent.span_id == solve.context.span_id
        and (b.attributes or {})[AGENTRT.BRANCH_OUTCOME] == "cancelled"
    ]
    assert cancelled and all(
        (b.attributes or {})["error.type"] == "deadline_exceeded" for b in cancelled
    )
