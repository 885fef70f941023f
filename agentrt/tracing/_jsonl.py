"""The JSONL span exporter: one file per trace (one run) under ``traces/``.

Each line is one finished span as a flat JSON object (hex ids, integer
nanosecond times, attributes as a plain object), the format
:mod:`agentrt.tracing._records` reads back along with OTLP-JSON. A run names
its file through :meth:`JsonlSpanExporter.name_trace` when it starts; spans of
a trace nobody named go to ``trace-<trace id>.jsonl``.

String values (attributes, event attributes, the status description) are
redacted on the way to the file. The exporter never raises into the SDK or
the caller: spans it cannot write (disk full, no permission, a span it cannot
serialise) are counted and logged through :func:`agentrt.core._log.log_dropped`,
and a batch is appended whole or not at all, so a failed write leaves no half
line that would make the file unreadable.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agentrt.core._log import log_dropped
from agentrt.core._redact import redact

__all__ = ["JsonlSpanExporter", "span_to_dict"]

_MAX_NAMED = 4096
"""Trace names remembered at most (the oldest are forgotten first)."""
_MAX_STEM = 160
"""File-name stems are cut to this many ASCII characters (file systems allow 255 bytes)."""


def _plain(value: Any) -> Any:
    """A JSON-ready attribute value, strings redacted (attribute values are
    flat: a string, number, bool, or a sequence of those)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, tuple | list):
        return [redact(v) if isinstance(v, str) else v for v in value]
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
        status["description"] = redact(span.status.description)
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
        self._write_lock = threading.Lock()  # SimpleSpanProcessor exports from any thread
        self._closed = False

    def name_trace(self, trace_id: int, stem: str) -> Path:
        """Send the spans of ``trace_id`` to ``<stem>.jsonl``; returns that path."""
        safe = "".join(
            c if (c.isascii() and c.isalnum()) or c in "-_." else "_" for c in stem[:_MAX_STEM]
        )
        safe = safe or "trace"
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
        """Append ``spans`` to their traces' files; never raises (see the module)."""
        try:
            return self._export(spans)
        except Exception as exc:  # the last line of defence: the caller's code goes on
            log_dropped("JSONL trace exporter: a batch of spans was dropped", exc)
            return SpanExportResult.FAILURE

    def _export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            if spans:
                log_dropped("JSONL trace exporter", f"{len(spans)} span(s) after shutdown dropped")
            return SpanExportResult.FAILURE
        by_file: dict[Path, list[str]] = {}
        failed = 0
        for span in spans:
            try:
                context = span.get_span_context()
                if context is None:
                    continue
                line = json.dumps(span_to_dict(span), separators=(",", ":"), default=str)
                by_file.setdefault(self.path_for(context.trace_id), []).append(line)
            except Exception as exc:  # one span it cannot serialise loses only itself
                failed += 1
                log_dropped("JSONL trace exporter: a span could not be serialised", exc)
        with self._write_lock:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                lost = sum(len(lines) for lines in by_file.values())
                log_dropped(
                    f"JSONL trace exporter: {lost} span(s) for {self.directory} dropped", exc
                )
                return SpanExportResult.FAILURE
            for path, lines in by_file.items():
                try:
                    _append(path, ("\n".join(lines) + "\n").encode("utf-8"))
                except OSError as exc:
                    failed += len(lines)
                    log_dropped(
                        f"JSONL trace exporter: {len(lines)} span(s) for {path} dropped", exc
                    )
        return SpanExportResult.FAILURE if failed else SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._closed = True

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _append(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` whole or not at all: on a failed write (a full
    disk) the file is cut back to where it ended, so it keeps only whole lines."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)
