"""The workflow, node and tool spans, as context managers for the runner.

A run is one ``invoke_workflow {graph}`` span (INTERNAL); each node visit a
``node {name}`` span under it; each tool call an ``execute_tool {name}`` span;
each LLM call the executor's ``chat {model}`` span (:mod:`agentrt.tracing._chat`)
under the node that made it. What a chat span cannot see for itself travels
in contextvars: the run (graph, deadline), the node visit, the budget
allocation of the next call (:func:`allocation_scope`) and the answer a
labelled run expects (:func:`expected_answer_scope`).

Leaving a workflow span, normally, by an error or by an interrupt, flushes
the exporters: on an event loop it only requests the flush (the flusher
thread does it, so a slow collector stalls no run), elsewhere it waits for
it, bounded. Error text (status descriptions, the ``exception`` event) is
redacted before it is cut to length and set (:mod:`agentrt.tracing._text`).
As a workflow span ends, the run's metrics are recorded (outcome, SLA,
overshoot: :mod:`agentrt.tracing._metrics`).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from agentrt.core._clock import wall_time_ns
from agentrt.core._deadline import Deadline, current_deadline
from agentrt.tracing._attributes import AGENTRT, ERROR_TYPE, GEN_AI, error_type
from agentrt.tracing._content import capture_content
from agentrt.tracing._instruments import run_measurement
from agentrt.tracing._metrics import record_run
from agentrt.tracing._setup import flush_traces, get_tracer, jsonl_exporter, request_flush
from agentrt.tracing._text import exception_message, record_exception_event, safe_text

if TYPE_CHECKING:
    from agentrt.budget._allocation import Allocation
    from agentrt.budget._report import BudgetReport

__all__ = [
    "NodeVisit",
    "RunInfo",
    "ToolSpan",
    "WorkflowSpan",
    "allocation_scope",
    "current_allocation",
    "current_node",
    "current_run",
    "current_workflow",
    "expected_answer",
    "expected_answer_scope",
    "node_context",
    "node_span",
    "record_error",
    "tool_span",
    "workflow_span",
]


@dataclass(frozen=True)
class RunInfo:
    """What chat spans need to know about the run they are part of."""

    graph: str
    run_id: str
    deadline: Deadline | None


@dataclass(frozen=True)
class NodeVisit:
    """The node visit an LLM call is made from."""

    node: str
    visit: str | None = None
    step: int | None = None


_run: contextvars.ContextVar[RunInfo | None] = contextvars.ContextVar(
    "agentrt_trace_run", default=None
)
_node: contextvars.ContextVar[NodeVisit | None] = contextvars.ContextVar(
    "agentrt_trace_node", default=None
)
_allocation: contextvars.ContextVar[Allocation | None] = contextvars.ContextVar(
    "agentrt_trace_allocation", default=None
)
_expected: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "agentrt_trace_expected", default=None
)


def current_run() -> RunInfo | None:
    return _run.get()


def current_node() -> NodeVisit | None:
    return _node.get()


def current_allocation() -> Allocation | None:
    return _allocation.get()


def expected_answer() -> str | None:
    return _expected.get()


def record_error(span: trace.Span, exc: BaseException) -> None:
    """Mark ``span`` failed: ``error.type``, status ERROR, and the exception
    event, its text redacted (an exception may quote a server or a config)."""
    kind = error_type(exc)
    span.set_attribute(ERROR_TYPE, kind)
    message = exception_message(exc)
    span.set_status(Status(StatusCode.ERROR, safe_text(f"{kind}: {message}" if message else kind)))
    if kind not in ("cancelled",):
        record_exception_event(span, exc)


@contextmanager
def _scoped(var: contextvars.ContextVar[Any], value: Any) -> Iterator[None]:
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


@contextmanager
def allocation_scope(allocation: Allocation | None) -> Iterator[None]:
    """Tell the next chat span inside the block which budget slice it runs in
    (slice, planned slice, status, policy, call index)."""
    with _scoped(_allocation, allocation):
        yield


@contextmanager
def expected_answer_scope(answer_key: str | None) -> Iterator[None]:
    """Label the chat spans inside the block: ``agentrt.actual.correct`` says
    whether each call's answer key equals ``answer_key``."""
    with _scoped(_expected, answer_key):
        yield


@dataclass
class WorkflowSpan:
    """The handle :func:`workflow_span` yields: add the run's outcome to it."""

    span: trace.Span
    run_id: str
    graph: str
    trace_file: Path | None
    deadline: Deadline | None = None
    _nodes: dict[str, tuple[trace.Span, NodeVisit]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _timed: bool = False
    _elapsed_s: float | None = None
    _degraded: bool = False
    _error: str | None = None

    @property
    def trace_id(self) -> str:
        return f"{self.span.get_span_context().trace_id:032x}"

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self.span.set_attribute(key, value)

    def set_outcome(
        self,
        *,
        answer: str | None = None,
        correct: bool | None = None,
        degraded: bool | None = None,
        report: BudgetReport | None = None,
        elapsed_s: float | None = None,
        deadline_met: bool | None = None,
        error: str | None = None,
    ) -> None:
        """Record how the run ended: its answer key (only with content capture
        on), whether it was right (labelled runs), degraded, the budget
        report's totals, and its elapsed seconds and whether it met its
        deadline. Given both, those two are the caller's figures (the runner's
        ``RunResult``); otherwise the span measures them on its deadline as it
        ends. ``error`` (``"Type: message"``, the runner's ``RunResult.error``)
        says the graph failed: the run counts as ``failed`` in the metrics."""
        if elapsed_s is not None and deadline_met is not None:
            self._set_timing(elapsed_s, deadline_met)
        if error is not None:
            self._error = error
        if answer is not None and capture_content():
            self.span.set_attribute(AGENTRT.RUN_ANSWER, answer)
        if correct is not None:
            self.span.set_attribute(AGENTRT.RUN_CORRECT, correct)
        if report is not None:
            self.span.set_attribute(AGENTRT.RUN_CALLS, len(report.calls))
            self.span.set_attribute(AGENTRT.RUN_TOKENS, report.tokens_used)
            self.span.set_attribute(AGENTRT.POLICY, report.policy)
            degraded = report.degraded if degraded is None else degraded or report.degraded
        if degraded is not None:
            self.span.set_attribute(AGENTRT.RUN_DEGRADED, degraded)
            self._degraded = degraded

    def _set_timing(self, elapsed_s: float, deadline_met: bool) -> None:
        self.span.set_attribute(AGENTRT.ELAPSED_S, elapsed_s)
        self.span.set_attribute(AGENTRT.RUN_DEADLINE_MET, deadline_met)
        self._timed = True
        self._elapsed_s = elapsed_s

    # -- node spans opened and closed from outside the node's task ---------------

    def node_started(
        self,
        node: str,
        visit: str | None = None,
        *,
        step: int | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> None:
        """Open the ``node {name}`` span of one visit (a child of the run), for a
        driver that sees tasks start and finish (LangGraph's ``tasks`` stream).
        Calls made inside :func:`node_context` of ``visit`` become its children."""
        key = visit or node
        attrs = _node_attributes(node, step, visit, None, attributes)
        parent = trace.set_span_in_context(self.span)
        with self._lock:
            if key in self._nodes:
                return
            span = get_tracer().start_span(
                f"node {node}", context=parent, kind=SpanKind.INTERNAL, attributes=attrs
            )
            self._nodes[key] = (span, NodeVisit(node, visit, step))

    def node_finished(
        self, node: str, visit: str | None = None, *, error: BaseException | str | None = None
    ) -> None:
        """Close the span :meth:`node_started` opened (unknown visits are ignored)."""
        with self._lock:
            entry = self._nodes.pop(visit or node, None)
        if entry is None:
            return
        span = entry[0]
        if isinstance(error, BaseException):
            record_error(span, error)
        elif error is not None:
            span.set_attribute(ERROR_TYPE, error if error in _KNOWN_ERRORS else "node_error")
            span.set_status(Status(StatusCode.ERROR, safe_text(error)))
        span.end()

    def node_visit(self, visit: str) -> tuple[trace.Span, NodeVisit] | None:
        with self._lock:
            return self._nodes.get(visit)

    def _close_nodes(self, kind: str) -> None:
        with self._lock:
            left, self._nodes = list(self._nodes.values()), {}
        for span, _visit in left:
            span.set_attribute(ERROR_TYPE, kind)
            span.set_status(Status(StatusCode.ERROR, f"{kind}: still running when the run ended"))
            span.end()


_KNOWN_ERRORS = frozenset({"deadline_exceeded", "cancelled"})


def _node_attributes(
    node: str,
    step: int | None,
    visit: str | None,
    attempt: int | None,
    extra: Mapping[str, AttributeValue] | None,
) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {AGENTRT.NODE: node}
    if step is not None:
        attrs[AGENTRT.NODE_STEP] = step
    if visit is not None:
        attrs[AGENTRT.NODE_VISIT] = visit
    if attempt is not None:
        attrs[AGENTRT.NODE_ATTEMPT] = attempt
    attrs.update(extra or {})
    return attrs


_workflow: contextvars.ContextVar[WorkflowSpan | None] = contextvars.ContextVar(
    "agentrt_trace_workflow", default=None
)


def current_workflow() -> WorkflowSpan | None:
    """The workflow span of the run in this context, if any."""
    return _workflow.get()


@contextmanager
def node_context(visit: str | None, node: str | None = None) -> Iterator[None]:
    """Make the node span that :meth:`WorkflowSpan.node_started` opened for
    ``visit`` current inside the block (what a chat model does around a call).
    Without such a span, calls are still labelled with ``node``."""
    workflow = _workflow.get()
    entry = workflow.node_visit(visit) if workflow is not None and visit else None
    if entry is None:
        with _scoped(_node, NodeVisit(node, visit) if node is not None else _node.get()):
            yield
        return
    span, info = entry
    with trace.use_span(span, end_on_exit=False), _scoped(_node, info):
        yield


def _file_stem(graph: str, trace_id: int) -> str:
    stamp = datetime.fromtimestamp(wall_time_ns() / 1e9, tz=UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{graph}-{trace_id:032x}"[: len(stamp) + len(graph) + 10]


@contextmanager
def workflow_span(
    graph: str,
    *,
    run_id: str | None = None,
    deadline: Deadline | None = None,
    task_seed: int | None = None,
    profile: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Iterator[WorkflowSpan]:
    """The ``invoke_workflow {graph}`` span of one run, current inside the block.

    ``deadline`` (default: the ambient one) gives ``agentrt.deadline_s`` and,
    at the end, ``agentrt.elapsed_s`` and ``agentrt.run.deadline_met``, unless
    :meth:`WorkflowSpan.set_outcome` recorded the run's own figures (the runner
    does, so a trace agrees with its ``RunResult``). ``run_id`` defaults to the
    trace id.
    An exception leaving the block sets ``error.type`` (``deadline_exceeded``,
    ``cancelled``, or the class name). The exporters are flushed on the way out
    (on an event loop: requested, not awaited; see the module docstring).
    """
    deadline = deadline or current_deadline()
    attrs: dict[str, AttributeValue] = {
        GEN_AI.OPERATION_NAME: GEN_AI.INVOKE_WORKFLOW,
        GEN_AI.WORKFLOW_NAME: graph,
        AGENTRT.GRAPH: graph,
    }
    if deadline is not None and deadline.budget_s != float("inf"):
        attrs[AGENTRT.DEADLINE_S] = deadline.budget_s
        attrs[AGENTRT.TIME_LEFT_S] = deadline.remaining()
    if task_seed is not None:
        attrs[AGENTRT.TASK_SEED] = task_seed
    if profile is not None:
        attrs[AGENTRT.PROFILE] = safe_text(profile)
    attrs.update(attributes or {})
    tracer = get_tracer()
    span = tracer.start_span(f"invoke_workflow {graph}", kind=SpanKind.INTERNAL, attributes=attrs)
    trace_id = span.get_span_context().trace_id
    exporter = jsonl_exporter()
    trace_file = exporter.name_trace(trace_id, _file_stem(graph, trace_id)) if exporter else None
    run_id = run_id or f"{trace_id:032x}"
    span.set_attribute(AGENTRT.RUN_ID, run_id)
    handle = WorkflowSpan(span, run_id, graph, trace_file, deadline)
    ended = "cancelled"
    raised: BaseException | None = None
    try:
        with (
            trace.use_span(
                span, end_on_exit=False, record_exception=False, set_status_on_exception=False
            ),
            _scoped(_run, RunInfo(graph, run_id, deadline)),
            _scoped(_node, None),
            _scoped(_workflow, handle),
        ):
            yield handle
    except BaseException as exc:
        record_error(span, exc)
        ended = error_type(exc) if error_type(exc) in _KNOWN_ERRORS else "cancelled"
        raised = exc
        raise
    finally:
        if deadline is not None and deadline.expired:
            ended = "deadline_exceeded"
        handle._close_nodes(ended)
        if not handle._timed and deadline is not None and deadline.budget_s != float("inf"):
            handle._set_timing(deadline.elapsed(), not deadline.expired)
        span.end()
        record_run(
            run_measurement(
                graph, elapsed_s=handle._elapsed_s, degraded=handle._degraded,
                deadline_s=deadline.budget_s if deadline is not None else None,
                error=handle._error, raised=None if raised is None else error_type(raised),
            )
        )  # fmt: skip
        _flush_after_run()


def _flush_after_run() -> None:
    """On an event loop, only request the flush: waiting there would stall every
    other run for as long as the exporters take. A sync caller waits (bounded),
    so its trace file is complete when the block ends."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        flush_traces()
    else:
        request_flush()


@contextmanager
def node_span(
    node: str,
    *,
    step: int | None = None,
    visit: str | None = None,
    attempt: int | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Iterator[trace.Span]:
    """A ``node {name}`` span for one visit of a graph node, current inside the
    block; chat spans opened inside it carry ``agentrt.node``."""
    attrs = _node_attributes(node, step, visit, attempt, attributes)
    with (
        get_tracer().start_as_current_span(
            f"node {node}",
            kind=SpanKind.INTERNAL,
            attributes=attrs,
            record_exception=False,
            set_status_on_exception=False,
        ) as span,
        _scoped(_node, NodeVisit(node, visit, step)),
    ):
        try:
            yield span
        except BaseException as exc:
            record_error(span, exc)
            raise


@dataclass
class ToolSpan:
    """The handle :func:`tool_span` yields."""

    span: trace.Span

    def set_result(self, result: Any) -> None:
        """Record the tool's result (only with content capture on)."""
        if capture_content():
            self.span.set_attribute(GEN_AI.TOOL_CALL_RESULT, _json(result))


def _json(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


@contextmanager
def tool_span(
    name: str,
    *,
    call_id: str | None = None,
    tool_type: str = "function",
    arguments: Any = None,
) -> Iterator[ToolSpan]:
    """An ``execute_tool {name}`` span (INTERNAL) around one tool call.

    ``arguments`` are recorded only with content capture on."""
    attrs: dict[str, AttributeValue] = {
        GEN_AI.OPERATION_NAME: GEN_AI.EXECUTE_TOOL,
        GEN_AI.TOOL_NAME: name,
        GEN_AI.TOOL_TYPE: tool_type,
    }
    if call_id is not None:
        attrs[GEN_AI.TOOL_CALL_ID] = call_id
    node = _node.get()
    if node is not None:
        attrs[AGENTRT.NODE] = node.node
    if arguments is not None and capture_content():
        attrs[GEN_AI.TOOL_CALL_ARGUMENTS] = _json(arguments)
    with get_tracer().start_as_current_span(
        f"execute_tool {name}",
        kind=SpanKind.INTERNAL,
        attributes=attrs,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield ToolSpan(span)
        except BaseException as exc:
            record_error(span, exc)
            raise
