"""The ``chat {model}`` span of one executor call, with a child span per branch.

The executor opens :func:`chat_call` around a call; the pool's client notes
the endpoint and model of each request it sends (:func:`note_endpoint`, via
:func:`agentrt.tracing._propagation.outgoing_headers`), the executor hands over
each stream it read (:func:`note_stream`), and :meth:`CallTrace.finished`
writes the plan, predictions, actual figures and the branch spans; text that
may quote a server (degraded reasons, the endpoint URL) is redacted before it
is cut and set. Times come
from the executor's clock, mapped onto wall time at the span's start, so a
call, its branches and its slice line up on one axis. As the span ends, the
call's metrics are recorded from the same figures (:mod:`agentrt.tracing._metrics`).
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from agentrt.core._clock import Clock, wall_time_ns
from agentrt.core._deadline import Deadline, current_deadline
from agentrt.core._log import log_dropped
from agentrt.tracing._attributes import (
    AGENTRT,
    ERROR_TYPE,
    GEN_AI,
    SERVER_ADDRESS,
    SERVER_PORT,
    error_type,
)
from agentrt.tracing._content import (
    capture_content,
    input_messages_json,
    output_messages_json,
    safe_url,
)
from agentrt.tracing._metrics import call_measurement, record_call
from agentrt.tracing._propagation import outgoing_headers
from agentrt.tracing._setup import get_tracer
from agentrt.tracing._spans import (
    current_allocation,
    current_node,
    current_run,
    expected_answer,
    record_error,
)
from agentrt.tracing._text import safe_text

if TYPE_CHECKING:
    from agentrt.pool._events import RequestSent
    from agentrt.pool._stream import ChatStream
    from agentrt.tts._observer import CallStarted
    from agentrt.tts._result import Result

__all__ = ["CallTrace", "ChatSpans", "chat_call", "current_call"]

PROVIDER_VLLM = "vllm"
PROVIDER_OPENAI_COMPATIBLE = "openai_compatible"


@dataclass
class CallTrace:
    """Collects what one call did while its ``chat`` span is open."""

    span: trace.Span
    clock: Clock
    started_clock: float
    started_ns: int
    streams: list[ChatStream] = field(default_factory=list)
    hedges: list[ChatStream] = field(default_factory=list)
    model: str | None = None
    # what the call's metrics are recorded from as the span ends
    provider: str = PROVIDER_VLLM
    server: tuple[str, int] | None = None
    slice_s: float | None = None
    result: Result | None = None
    first_chunk_s: float | None = None
    cut: bool = False

    def ns(self, at: float) -> int:
        """Wall-clock nanoseconds of an instant on the executor's clock."""
        return self.started_ns + round((at - self.started_clock) * 1e9)

    def outgoing_headers(self) -> dict[str, str]:
        """The W3C trace context of this call's span, for every request it sends."""
        with trace.use_span(self.span, end_on_exit=False):
            return outgoing_headers()

    def stream_read(self, stream: ChatStream, *, hedge: bool) -> None:
        """The executor reads ``stream`` for this call (``hedge``: as its hedge)."""
        if stream not in self.streams:
            self.streams.append(stream)
            if hedge:
                self.hedges.append(stream)

    def request_sent(self, sent: RequestSent) -> None:
        """The endpoint a request of this call went to."""
        if self.model is None:
            self.model = sent.model
            self.span.update_name(f"chat {sent.model}")
            self.span.set_attribute(GEN_AI.REQUEST_MODEL, sent.model)
            self.provider = PROVIDER_VLLM if sent.vllm else PROVIDER_OPENAI_COMPATIBLE
            self.span.set_attribute(GEN_AI.PROVIDER_NAME, self.provider)
        self.server = (sent.address[0], sent.address[1])
        self.span.set_attribute(SERVER_ADDRESS, sent.address[0])
        self.span.set_attribute(SERVER_PORT, sent.address[1])
        self.span.set_attribute(AGENTRT.ENDPOINT_URL, safe_text(safe_url(sent.url)))
        self.span.set_attribute(AGENTRT.ENDPOINT_GROUP, sent.group)
        if sent.draft_tokens:
            self.span.set_attribute(AGENTRT.DRAFT_TOKENS, sent.draft_tokens)

    def finished(self, result: Result) -> None:
        """Record the plan, the predictions against the actual figures, and the branches."""
        span = self.span
        plan = result.plan
        self.result = result
        attrs: dict[str, AttributeValue] = {
            AGENTRT.OBJECTIVE: plan.objective,
            AGENTRT.SLICE_S: _finite(plan.slice_s),
            AGENTRT.PLAN_REASON: safe_text(plan.reason),
            AGENTRT.CONFIGS_CONSIDERED: plan.considered,
            AGENTRT.CONFIGS_FITTING: plan.fitting,
            AGENTRT.ACTUAL_LATENCY_S: result.latency_s,
            AGENTRT.ACTUAL_TOKENS: result.completion_tokens,
            AGENTRT.WITHIN_SLICE: result.latency_s <= plan.slice_s,
            AGENTRT.BRANCHES_FINISHED: result.branches.finished,
            AGENTRT.BRANCHES_EARLY_STOPPED: result.branches.early_stopped,
            AGENTRT.BRANCHES_CANCELLED: result.branches.cancelled,
            AGENTRT.TOKENS_SAVED: result.tokens_saved_by_early_stop,
            AGENTRT.DEGRADED: result.degraded,
            AGENTRT.REQUESTS: len(self.streams),
            AGENTRT.HEDGED: result.hedged,
            AGENTRT.HEDGE_WON: result.hedge_won,
            AGENTRT.HEDGE_BRANCHES: result.branches.hedged,
            GEN_AI.USAGE_INPUT_TOKENS: result.prompt_tokens,
            GEN_AI.USAGE_OUTPUT_TOKENS: result.completion_tokens,
        }
        config = plan.config
        if config is not None:
            attrs |= {
                AGENTRT.STRATEGY: config.strategy,
                AGENTRT.N: config.n,
                AGENTRT.GROUP: config.group,
                GEN_AI.REQUEST_MAX_TOKENS: config.max_tokens,
            }
            if config.n != 1:
                attrs[GEN_AI.REQUEST_CHOICE_COUNT] = config.n
        if self.streams:
            request = self.streams[0].request
            attrs[GEN_AI.REQUEST_MAX_TOKENS] = request.max_tokens
            attrs[GEN_AI.REQUEST_TEMPERATURE] = request.temperature
            attrs[GEN_AI.REQUEST_TOP_P] = request.top_p
            if request.seed is not None:
                attrs[GEN_AI.REQUEST_SEED] = request.seed
        prediction = plan.prediction
        if prediction is not None:
            attrs |= {
                AGENTRT.PREDICTED_LATENCY_S: prediction.latency_quantile_s,
                AGENTRT.PREDICTED_LATENCY_MEAN_S: prediction.latency_mean_s,
                AGENTRT.PREDICTED_TOKENS: prediction.expected_tokens,
                AGENTRT.PREDICTED_ACCURACY: prediction.accuracy,
                AGENTRT.SLA_QUANTILE: prediction.sla_quantile,
            }
        reasons = [b.finish_reason for s in self.streams for b in _branches(s) if b.finish_reason]
        if reasons:
            attrs[GEN_AI.RESPONSE_FINISH_REASONS] = reasons
        first = [
            b.first_token_at - s.started_at
            for s in self.streams
            for b in _branches(s)
            if b.first_token_at is not None
        ]
        if first:
            self.first_chunk_s = attrs[GEN_AI.RESPONSE_TIME_TO_FIRST_CHUNK] = min(first)
        if result.hedge_after_s is not None:
            attrs[AGENTRT.HEDGE_AFTER_S] = result.hedge_after_s
        online = result.online
        if online is not None:
            attrs |= {
                AGENTRT.ONLINE_TTFT_FACTOR: online.ttft_factor,
                AGENTRT.ONLINE_PER_TOKEN_FACTOR: online.per_token_factor,
                AGENTRT.ONLINE_UNCERTAINTY: online.uncertainty,
                AGENTRT.ONLINE_OBSERVATIONS: online.observations,
                AGENTRT.ONLINE_DRIFTS: online.drifts,
            }
        if result.degraded_reason is not None:
            attrs[AGENTRT.DEGRADED_REASON] = safe_text(result.degraded_reason)
        votes = result.votes
        if votes:
            attrs[AGENTRT.VOTES] = [f"{key}:{weight:g}" for key, weight in votes.items()]
        answer = result.answer
        expected = expected_answer()
        if expected is not None:
            attrs[AGENTRT.ACTUAL_CORRECT] = answer is not None and answer.key == expected
        if capture_content():
            if answer is not None:
                attrs[AGENTRT.ANSWER] = answer.key
            winner = result.decision.winner_index
            finish = None
            if winner is not None:
                records = [b for s in self.streams for b in _branches(s)]
                finish = records[winner].finish_reason if winner < len(records) else None
            attrs[GEN_AI.OUTPUT_MESSAGES] = output_messages_json(result.text, finish)
        span.set_attributes(attrs)
        cut = any(s.cut_by_deadline for s in self.streams) and result.branches.cancelled > 0
        self.cut = cut
        if cut:
            span.set_attribute(ERROR_TYPE, "deadline_exceeded")
            reason = safe_text(result.degraded_reason or "slice ended")
            span.set_status(Status(StatusCode.ERROR, reason))
        self._branch_spans(result)

    def _branch_spans(self, result: Result) -> None:
        tracer = get_tracer()
        parent = trace.set_span_in_context(self.span)
        early_stopped = result.branches.early_stopped > 0
        now = self.clock.now()
        ordinal = 0
        for r, stream in enumerate(self.streams):
            last = r == len(self.streams) - 1
            closed_at = stream.closed_at if stream.closed_at is not None else now
            if last and early_stopped and not stream.cut_by_deadline:
                self.span.add_event(
                    "agentrt.early_stop", {AGENTRT.REQUESTS: r}, timestamp=self.ns(closed_at)
                )
            if stream.cut_by_deadline:
                self.span.add_event(
                    "agentrt.slice_end", {AGENTRT.REQUESTS: r}, timestamp=self.ns(closed_at)
                )
            hedge = any(stream is h for h in self.hedges)
            for branch in _branches(stream):
                outcome = _outcome(branch, stream, result, last=last, hedged=bool(self.hedges))
                end = branch.finished_at if branch.finished_at is not None else closed_at
                attrs: dict[str, AttributeValue] = {
                    AGENTRT.BRANCH_INDEX: branch.index,
                    AGENTRT.BRANCH_REQUEST: r,
                    AGENTRT.BRANCH_OUTCOME: outcome,
                    AGENTRT.BRANCH_TOKENS: branch.tokens,
                    AGENTRT.BRANCH_CHUNKS: len(branch.token_times),
                    AGENTRT.BRANCH_CONCURRENCY: stream.request.n,
                    AGENTRT.BRANCH_HEDGE: hedge,
                }
                if branch.finish_reason is not None:
                    attrs[AGENTRT.BRANCH_FINISH_REASON] = branch.finish_reason
                if branch.first_token_at is not None:
                    attrs[AGENTRT.BRANCH_TTFT_S] = branch.first_token_at - stream.started_at
                    attrs[AGENTRT.BRANCH_DECODE_S] = max(0.0, end - branch.first_token_at)
                child = tracer.start_span(
                    f"branch {ordinal}",
                    context=parent,
                    kind=SpanKind.INTERNAL,
                    attributes=attrs,
                    start_time=self.ns(stream.started_at),
                )
                if outcome == "cancelled":
                    child.set_status(Status(StatusCode.ERROR, "cancelled"))
                    child.set_attribute(
                        ERROR_TYPE, "deadline_exceeded" if stream.cut_by_deadline else "cancelled"
                    )
                child.end(end_time=self.ns(max(end, stream.started_at)))
                ordinal += 1


def _outcome(branch: Any, stream: ChatStream, result: Result, *, last: bool, hedged: bool) -> str:
    """``finished``; ``early_stopped`` (the vote was decided); ``superseded`` (a
    hedged call got this branch from the other request); else ``cancelled``."""
    if branch.finished:
        return "finished"
    healthy = stream.error is None and not stream.cut_by_deadline
    if healthy and result.branches.early_stopped > 0 and (last or hedged):
        return "early_stopped"
    if healthy and hedged and result.branches.cancelled == 0:
        return "superseded"
    return "cancelled"


def _branches(stream: ChatStream) -> list[Any]:
    return [stream.branches[i] for i in sorted(stream.branches)]


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 1e9


_current: contextvars.ContextVar[CallTrace | None] = contextvars.ContextVar(
    "agentrt_trace_call", default=None
)


def current_call() -> CallTrace | None:
    """The executor call being traced in this context, if any."""
    return _current.get()


def _slice_attributes(slice_s: float | None, deadline: Deadline | None) -> dict[str, Any]:
    attrs: dict[str, AttributeValue] = {}
    run = current_run()
    run_deadline = run.deadline if run is not None and run.deadline is not None else deadline
    if run_deadline is not None and math.isfinite(run_deadline.budget_s):
        attrs[AGENTRT.DEADLINE_S] = run_deadline.budget_s
        attrs[AGENTRT.TIME_LEFT_S] = run_deadline.remaining()
    node = current_node()
    if node is not None:
        attrs[AGENTRT.NODE] = node.node
        if node.visit is not None:
            attrs[AGENTRT.NODE_VISIT] = node.visit
        if node.step is not None:
            attrs[AGENTRT.NODE_STEP] = node.step
    allocation = current_allocation()
    if allocation is not None:
        attrs |= {
            AGENTRT.CALL_INDEX: allocation.index,
            AGENTRT.PLANNED_SLICE_S: allocation.planned_s,
            AGENTRT.SLICE_STATUS: allocation.status,
            AGENTRT.POLICY: allocation.policy,
            AGENTRT.PREDICTED_MIN_S: allocation.predicted_min_s,
        }
        attrs.setdefault(AGENTRT.NODE, allocation.node)
        if allocation.call_site is not None:
            attrs[AGENTRT.CALL_SITE] = allocation.call_site
    if slice_s is not None:
        attrs[AGENTRT.SLICE_S] = slice_s
    return attrs


@contextmanager
def chat_call(
    messages: Sequence[Mapping[str, Any]],
    *,
    clock: Clock,
    slice_s: float | None = None,
    deadline: Deadline | None = None,
    prompt_tokens_estimate: int | None = None,
) -> Iterator[CallTrace]:
    """The ``chat`` span (CLIENT) of one executor call, current inside the block."""
    attrs = {
        GEN_AI.OPERATION_NAME: GEN_AI.CHAT,
        GEN_AI.PROVIDER_NAME: PROVIDER_VLLM,
        GEN_AI.REQUEST_STREAM: True,
        **_slice_attributes(slice_s, deadline or current_deadline()),
    }
    if prompt_tokens_estimate is not None:
        attrs[AGENTRT.PROMPT_TOKENS_ESTIMATE] = prompt_tokens_estimate
    if capture_content():
        attrs[GEN_AI.INPUT_MESSAGES] = input_messages_json(messages)
    started_clock, started_ns = clock.now(), wall_time_ns()
    span = get_tracer().start_span(
        "chat", kind=SpanKind.CLIENT, attributes=attrs, start_time=started_ns
    )
    call = CallTrace(span, clock, started_clock, started_ns, slice_s=slice_s)
    token = _current.set(call)
    error: str | None = None
    try:
        with trace.use_span(
            span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        ):
            yield call
    except BaseException as exc:
        record_error(span, exc)
        error = error_type(exc)
        raise
    finally:
        _current.reset(token)
        ended = clock.now()
        span.end(end_time=call.ns(ended))
        _record_metrics(call, ended - started_clock, error)


def _record_metrics(call: CallTrace, duration_s: float, error: str | None) -> None:
    """The call's metrics, labelled with the graph and node it ran in (never raises)."""
    run, node, allocation = current_run(), current_node(), current_allocation()
    where = node.node if node is not None else allocation.node if allocation else None
    graph = run.graph if run is not None else None
    try:
        measurement = call_measurement(call, duration_s, error, graph=graph, node=where)
    except Exception as exc:  # a hostile result must not cost the call its answer
        log_dropped("measuring a call failed", exc)
        return
    record_call(measurement)


class ChatSpans:
    """The executor's tracing observer: a ``chat {model}`` span per call, a child
    span per branch, on the global OpenTelemetry tracer provider.

        executor = TTSExecutor(pool, observer=ChatSpans())
    """

    def call(self, started: CallStarted) -> AbstractContextManager[CallTrace]:
        return chat_call(
            started.messages, clock=started.clock, slice_s=started.slice_s,
            deadline=started.deadline, prompt_tokens_estimate=started.prompt_tokens_estimate,
        )  # fmt: skip
