"""The recent runs of one owner, kept in memory: what ``agentrt serve``'s runs page draws.

:class:`RecentRuns` is a span processor. Added to the tracer provider the runs'
spans go to (:meth:`RecentRuns.attach`), it keeps the spans of each run started
inside :meth:`RecentRuns.recording` — the ``invoke_workflow`` span started
there opens the run, under the label given (the server's run id) — grouped by
trace id, as :class:`~agentrt.tracing._run.RunTrace` reads them back. Spans of
other runs, other owners or other instrumentation are not kept.

Memory is bounded: the latest ``max_runs`` runs (the oldest forgotten first), at
most ``max_spans_per_run`` spans each besides the run's own workflow span (later
ones are counted, not kept), string values redacted and cut to
``max_value_chars``, no span events. ``on_end`` runs where a span ends (on the
event loop), so it only copies the span, its strings cut, and appends it under
a lock, never raising; redaction (a regex per string) waits until a run is read
(:meth:`RecentRuns.get`).
"""

from __future__ import annotations

import contextvars
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from agentrt.core._errors import ConfigurationError
from agentrt.core._log import log_dropped
from agentrt.core._redact import truncate_redacted
from agentrt.tracing._attributes import GEN_AI
from agentrt.tracing._run import RunTrace, SpanRecord
from agentrt.tracing._setup import _provider

__all__ = [
    "MAX_RUNS",
    "MAX_SPANS_PER_RUN",
    "MAX_VALUE_CHARS",
    "RecentRuns",
    "RecordedRun",
    "raw_record",
    "redacted_record",
]

MAX_RUNS = 50
"""Runs a :class:`RecentRuns` keeps by default (the oldest forgotten first)."""
MAX_SPANS_PER_RUN = 2000
"""Spans kept per run by default, besides its workflow span."""
MAX_VALUE_CHARS = 1000
"""String attribute values are cut to this many characters (after redaction)."""
_MAX_ITEMS = 100
"""Items kept of an attribute that is a sequence."""
_KEY_MARGIN = 256
"""Strings are kept this much longer than shown, and cut again after redaction:
a credential the first cut split (up to this long) is then cut away whole."""

_recording: contextvars.ContextVar[tuple[RecentRuns, str] | None] = contextvars.ContextVar(
    "agentrt_recent_run", default=None
)


@dataclass(frozen=True)
class RecordedRun:
    """One kept run: its spans as a trace, the labels it was recorded under,
    whether its workflow span has ended, and the spans over the limit."""

    trace: RunTrace
    labels: tuple[str, ...]
    finished: bool
    dropped_spans: int


@dataclass
class _Kept:
    trace_id: str
    root_span_id: str
    labels: list[str]
    spans: list[SpanRecord] = field(default_factory=list)
    finished: bool = False
    dropped: int = 0


def _cut(value: Any, keep: int) -> Any:
    """An attribute value with its strings cut to ``keep`` characters and its
    sequences to :data:`_MAX_ITEMS` items (cheap: what ``on_end`` can afford)."""
    if isinstance(value, str):
        return value[:keep]
    if isinstance(value, tuple | list):
        return tuple(v[:keep] if isinstance(v, str) else v for v in value[:_MAX_ITEMS])
    return value


def _redacted(value: Any, limit: int) -> Any:
    """An attribute value :func:`_cut` before, now redacted and cut to ``limit``."""
    if isinstance(value, str):
        return truncate_redacted(value, limit)
    if isinstance(value, tuple):
        return [truncate_redacted(v, limit) if isinstance(v, str) else v for v in value]
    return value


def raw_record(span: ReadableSpan, keep_chars: int) -> SpanRecord:
    """One finished span as a :class:`SpanRecord`, its strings cut to
    ``keep_chars`` but not yet redacted, without its events."""
    context = span.get_span_context()
    assert context is not None
    parent = span.parent
    start_ns = span.start_time or 0
    return SpanRecord(
        trace_id=f"{context.trace_id:032x}",
        span_id=f"{context.span_id:016x}",
        parent_id=f"{parent.span_id:016x}" if parent is not None else None,
        name=span.name[:keep_chars],
        kind=span.kind.name,
        start_ns=start_ns,
        end_ns=span.end_time if span.end_time is not None else start_ns,
        attributes={k: _cut(v, keep_chars) for k, v in (span.attributes or {}).items()},
        status=span.status.status_code.name,
        status_message=(span.status.description or "")[:keep_chars] or None,
    )


def redacted_record(record: SpanRecord, limit: int) -> SpanRecord:
    """``record`` as it may be shown: every string redacted, then cut to ``limit``."""
    message = record.status_message
    return replace(
        record,
        name=truncate_redacted(record.name, limit),
        attributes={k: _redacted(v, limit) for k, v in record.attributes.items()},
        status_message=truncate_redacted(message, limit) if message else None,
    )


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"RecentRuns: {name} must be an integer >= 1, got {value!r}")
    return value


class RecentRuns(SpanProcessor):
    """The spans of the latest runs recorded through it, in memory, bounded (see
    the module docstring). Thread-safe: spans may end on any thread."""

    def __init__(
        self,
        max_runs: int = MAX_RUNS,
        max_spans_per_run: int = MAX_SPANS_PER_RUN,
        max_value_chars: int = MAX_VALUE_CHARS,
    ) -> None:
        self.max_runs = _positive("max_runs", max_runs)
        self.max_spans_per_run = _positive("max_spans_per_run", max_spans_per_run)
        self.max_value_chars = _positive("max_value_chars", max_value_chars)
        self._runs: OrderedDict[str, _Kept] = OrderedDict()
        self._labels: dict[str, str] = {}
        self._providers: list[TracerProvider] = []
        self._lock = threading.Lock()
        self._closed = False

    # -- wiring ---------------------------------------------------------------------

    def attach(self, provider: trace.TracerProvider | None = None) -> bool:
        """Keep the runs whose spans go to ``provider`` (default: the provider
        agentrt's spans go to now). False when that is not an SDK provider:
        without one no span is recorded, so there is nothing to keep."""
        target = provider if provider is not None else _provider()
        if not isinstance(target, TracerProvider):
            return False
        with self._lock:
            self._closed = False
            if any(p is target for p in self._providers):
                return True
            self._providers.append(target)
        target.add_span_processor(self)
        return True

    @property
    def recording_spans(self) -> bool:
        """Whether it is attached to an SDK provider (and not shut down since)."""
        with self._lock:
            return bool(self._providers) and not self._closed

    @contextmanager
    def recording(self, label: str) -> Iterator[None]:
        """Keep the run whose workflow span starts inside the block, under ``label``."""
        token = _recording.set((self, label))
        try:
            yield
        finally:
            _recording.reset(token)

    def context_for(self, label: str) -> contextvars.Context:
        """A copy of the current context in which a run is kept under ``label``:
        what :meth:`recording` does, for ``asyncio.create_task(..., context=)``."""
        context = contextvars.copy_context()
        context.run(_recording.set, (self, label))
        return context

    # -- the span processor -----------------------------------------------------------

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        owner = _recording.get()
        if owner is None or owner[0] is not self or self._closed:
            return
        if (span.attributes or {}).get(GEN_AI.OPERATION_NAME) != GEN_AI.INVOKE_WORKFLOW:
            return
        context = span.get_span_context()
        self._open(f"{context.trace_id:032x}", f"{context.span_id:016x}", owner[1])

    def on_end(self, span: ReadableSpan) -> None:
        context = span.get_span_context()
        if context is None or f"{context.trace_id:032x}" not in self._runs:
            return
        try:
            record = raw_record(span, self.max_value_chars + _KEY_MARGIN)
        except Exception as exc:  # a span it cannot read loses only itself
            log_dropped("recent runs: a span could not be kept", exc)
            return
        with self._lock:
            kept = self._runs.get(record.trace_id)
            if kept is None:
                return
            if record.span_id == kept.root_span_id:
                kept.finished = True
            elif len(kept.spans) - kept.finished >= self.max_spans_per_run:
                kept.dropped += 1
                return
            kept.spans.append(record)

    def shutdown(self) -> None:
        """Stop keeping runs and forget those kept (the provider is shutting down,
        or the owner is done with them)."""
        with self._lock:
            self._closed = True
            self._runs.clear()
            self._labels.clear()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def _open(self, trace_id: str, root_span_id: str, label: str) -> None:
        """Start keeping ``trace_id`` (or add ``label`` to it), forgetting the
        oldest run past :attr:`max_runs`."""
        with self._lock:
            previous = self._runs.get(self._labels.get(label, trace_id))
            if previous is not None and previous.trace_id != trace_id:
                previous.labels.remove(label)  # a label names its latest run only
            self._labels[label] = trace_id
            kept = self._runs.get(trace_id)
            if kept is not None:
                if label not in kept.labels:
                    kept.labels.append(label)
                return
            self._runs[trace_id] = _Kept(trace_id, root_span_id, [label])
            while len(self._runs) > self.max_runs:
                _, oldest = self._runs.popitem(last=False)
                for name in oldest.labels:
                    self._labels.pop(name, None)

    # -- reading ----------------------------------------------------------------------

    def get(self, label: str) -> RecordedRun | None:
        """The run recorded under ``label``, if it is still kept."""
        with self._lock:
            trace_id = self._labels.get(label)
            kept = self._runs.get(trace_id) if trace_id is not None else None
            if kept is None:
                return None
            spans, labels = list(kept.spans), tuple(kept.labels)
            finished, dropped = kept.finished, kept.dropped
        shown = [redacted_record(s, self.max_value_chars) for s in spans]
        return RecordedRun(RunTrace(kept.trace_id, shown), labels, finished, dropped)

    def labels(self) -> list[str]:
        """The labels of the runs kept, oldest run first."""
        with self._lock:
            return [label for kept in self._runs.values() for label in kept.labels]

    def __contains__(self, label: object) -> bool:
        with self._lock:
            return label in self._labels

    def __len__(self) -> int:
        """How many runs are kept."""
        with self._lock:
            return len(self._runs)
