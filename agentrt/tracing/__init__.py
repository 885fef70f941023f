"""OpenTelemetry tracing: GenAI-semconv spans for runs, nodes, tools and LLM calls,
the JSONL/OTLP/console exporters, the W3C ``traceparent`` sent to vLLM, and
metrics (the GenAI client metrics per LLM call, agentrt's per run) for
Prometheus (:func:`metrics_exposition`) and OTLP.

    with workflow_span("math", deadline=deadline) as run:      # invoke_workflow math
        with node_span("solve", step=1):                         # node solve
            result = await executor.run(messages, slice_s=2.0)   # chat {model} + branches
        run.set_outcome(correct=True, report=manager.report())

Flushing never blocks the event loop: a run's end requests it from a flusher
thread; ``await flush_traces_async()`` (or ``flush_traces()`` from sync code)
waits for it, bounded. Trace files read back raise :class:`TraceFileError`
(a ``ConfigurationError``) naming the file and line when malformed.
:class:`RecentRuns` keeps the latest runs' spans in memory, bounded (what
``agentrt serve``'s runs page draws its waterfalls from).

See docs/tracing.md for what each span records.
"""

from agentrt.tracing._attributes import AGENTRT, GEN_AI, error_type
from agentrt.tracing._chat import CallTrace, ChatSpans, chat_call, current_call
from agentrt.tracing._content import CAPTURE_CONTENT_ENV, capture_content
from agentrt.tracing._errors import TraceFileError
from agentrt.tracing._exposition import merge_expositions
from agentrt.tracing._jsonl import JsonlSpanExporter, span_to_dict
from agentrt.tracing._metrics import (
    count_admission_refusal,
    metrics_exposition,
    use_meter_provider,
)
from agentrt.tracing._propagation import TRACEPARENT, outgoing_headers
from agentrt.tracing._recent import RecentRuns, RecordedRun
from agentrt.tracing._setup import (
    Tracing,
    TracingSettings,
    configure_tracing,
    current_tracing,
    ensure_tracing,
    flush_traces,
    flush_traces_async,
    get_tracer,
    request_flush,
    shutdown_tracing,
    use_tracer_provider,
)
from agentrt.tracing._spans import (
    NodeVisit,
    RunInfo,
    ToolSpan,
    WorkflowSpan,
    allocation_scope,
    current_workflow,
    expected_answer_scope,
    node_context,
    node_span,
    tool_span,
    workflow_span,
)

__all__ = [
    "AGENTRT",
    "CAPTURE_CONTENT_ENV",
    "GEN_AI",
    "TRACEPARENT",
    "CallTrace",
    "ChatSpans",
    "JsonlSpanExporter",
    "NodeVisit",
    "RecentRuns",
    "RecordedRun",
    "RunInfo",
    "ToolSpan",
    "TraceFileError",
    "Tracing",
    "TracingSettings",
    "WorkflowSpan",
    "allocation_scope",
    "capture_content",
    "chat_call",
    "configure_tracing",
    "count_admission_refusal",
    "current_call",
    "current_tracing",
    "current_workflow",
    "ensure_tracing",
    "error_type",
    "expected_answer_scope",
    "flush_traces",
    "flush_traces_async",
    "get_tracer",
    "merge_expositions",
    "metrics_exposition",
    "node_context",
    "node_span",
    "outgoing_headers",
    "request_flush",
    "shutdown_tracing",
    "span_to_dict",
    "tool_span",
    "use_meter_provider",
    "use_tracer_provider",
    "workflow_span",
]
