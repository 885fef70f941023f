"""The JSONL span exporter: one file per trace (one run) under ``traces/``.

Each line is one finished span as a flat JSON object (hex ids, integer
nanosecond times, attributes as a plain object), the format
:mod:`agentrt.tracing._records` reads back along with OTLP-JSON. A run names
its file through :meth:`JsonlSpanExporter.name_trace` when it starts; spans of
a trace nobody named go to ``trace-<trace id>.jsonl``.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["JsonlSpanExporter", "span_to_dict"]

_MAX_NAMED = 4096
"""Trace names remembered at most (the oldest are forgotten first)."""


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: _plain(v) for k, v in (attributes or {}).items()}


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    """One finished span as the flat JSON object of a JSONL trace line."""
    context = span.get_span_context()
    assert context is not None
    parent = span.parent
    status: dict[str, Any] = {"code": span.status.status_code.name}
    if span.status.description:
        status["description"] = span.status.description
    return {
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_span_id": f"{parent.span_id:016x}" if parent is not None else None,
        "name": span.name,
        "kind": span.kind.name,
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
        "attributes": _attributes(span.attributes),
        "events": [
            {
                "name": event.name,
                "time_unix_nano": event.timestamp,
                "attributes": _attributes(event.attributes),
            }
            for event in span.events
        ],
        "status": status,
        "service": span.resource.attributes.get("service.name"),
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
    }


class JsonlSpanExporter(SpanExporter):
    """Appends spans to ``directory/<name>.jsonl``, one file per trace."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._names: OrderedDict[int, str] = OrderedDict()
        self._lock = threading.Lock()
        self._closed = False

    def name_trace(self, trace_id: int, stem: str) -> Path:
        """Send the spans of ``trace_id`` to ``<stem>.jsonl``; returns that path."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem) or "trace"
        with self._lock:
            self._names[trace_id] = safe
            self._names.move_to_end(trace_id)
            while len(self._names) > _MAX_NAMED:
                self._names.popitem(last=False)
        return self.path_for(trace_id)

    def path_for(self, trace_id: int) -> Path:
        """The file the spans of ``trace_id`` go to."""
        with self._lock:
            stem = self._names.get(trace_id, f"trace-{trace_id:032x}")
        return self.directory / f"{stem}.jsonl"

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        by_file: dict[Path, list[str]] = {}
        for span in spans:
            context = span.get_span_context()
            if context is None:
                continue
            line = json.dumps(span_to_dict(span), separators=(",", ":"), default=str)
            by_file.setdefault(self.path_for(context.trace_id), []).append(line)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for path, lines in by_file.items():
                with path.open("a", encoding="utf-8") as handle:
                    handle.write("\n".join(lines) + "\n")
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._closed = True

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
