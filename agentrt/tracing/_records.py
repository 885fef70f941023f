"""Reading traces back: agentrt's JSONL files and OTLP-JSON, grouped into runs.

A file may hold agentrt's flat JSONL spans (one object per line), OTLP-JSON
``ExportTraceServiceRequest`` documents (one per line, as the collector's file
exporter writes them, or one document per file), or both. Directories are
searched for ``*.jsonl`` and ``*.json``. Span times stay in Unix nanoseconds.

Trace files are input like any other: anything wrong with one (unreadable,
not UTF-8, not JSON, a line that is not a span, a field of the wrong type, a
line over :attr:`TraceLimits.max_line_bytes` or nested deeper than
:attr:`TraceLimits.max_depth`) is one :class:`TraceFileError` naming the file
and the line. Size and nesting are checked *before* ``json.loads``, so a
hostile file can exhaust neither memory nor the recursion limit. The spans
decode in :mod:`agentrt.tracing._decode` and group into
:class:`~agentrt.tracing._run.RunTrace` runs (linear time, parent cycles cut).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from agentrt.tracing._decode import Malformed, NotJson, decode
from agentrt.tracing._errors import TraceFileError
from agentrt.tracing._run import EventRecord, RunTrace, SpanRecord

__all__ = [
    "DEFAULT_LIMITS",
    "EventRecord",
    "RunTrace",
    "SpanRecord",
    "TraceFileError",
    "TraceLimits",
    "find_trace_file",
    "group_runs",
    "load_runs",
    "load_spans",
    "trace_files",
]


@dataclass(frozen=True)
class TraceLimits:
    """What one trace file may hold before it is refused as malformed.

    A line (one span, or one OTLP document as the collector writes it) is at
    most ``max_line_bytes``; a file that is one pretty-printed document at
    most ``max_document_bytes``; JSON nests at most ``max_depth`` arrays and
    objects (an OTLP span needs about 12).
    """

    max_line_bytes: int = 16 * 2**20
    max_document_bytes: int = 256 * 2**20
    max_depth: int = 64


DEFAULT_LIMITS = TraceLimits()


_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENING = frozenset(b"[{")


def _nesting(data: bytes, limit: int) -> int:
    """How deep ``data`` nests arrays and objects (outside strings), counted up
    to ``limit + 1`` at most: what ``json.loads`` would recurse into."""
    brackets = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    if len(brackets) <= limit:
        return len(brackets)  # cannot nest deeper than it has brackets
    depth = deepest = 0
    for byte in brackets:
        depth = depth + 1 if byte in _OPENING else depth - 1
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                break
    return deepest


def _parse(data: bytes, limits: TraceLimits) -> Any:
    """One JSON document from ``data``, checked before parsing (raises Malformed)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Malformed(f"not UTF-8 (byte {exc.start} of the line)") from None
    if _nesting(data, limits.max_depth) > limits.max_depth:
        raise Malformed(f"JSON nested deeper than {limits.max_depth} levels")
    try:
        return json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or an integer of too many digits
        raise NotJson(f"not JSON: {exc}") from None


def _lines(handle: BinaryIO, path: Path, limits: TraceLimits) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` for each non-blank line, none over the limit."""
    number = 0
    while True:
        line = handle.readline(limits.max_line_bytes + 1)
        if not line:
            return
        number += 1
        if len(line) > limits.max_line_bytes and not line.endswith(b"\n"):
            raise TraceFileError(path, number, f"line longer than {limits.max_line_bytes} bytes")
        line = line.rstrip(b"\r\n")
        if line.strip():
            yield number, line


def _documents(path: Path, limits: TraceLimits) -> list[tuple[int | None, Any]]:
    """The JSON documents of a file with their line numbers: one per line, or
    the whole file as one document when its lines are not JSON each."""
    documents: list[tuple[int | None, Any]] = []
    try:
        with path.open("rb") as handle:
            for number, line in _lines(handle, path, limits):
                try:
                    documents.append((number, _parse(line, limits)))
                except NotJson as exc:
                    error = TraceFileError(path, number, str(exc))
                    return _one_document(path, handle, limits, error)
                except Malformed as exc:
                    raise TraceFileError(path, number, str(exc)) from None
    except OSError as exc:
        raise TraceFileError(path, None, f"cannot read: {exc.strerror or exc}") from exc
    return documents


def _one_document(
    path: Path, handle: BinaryIO, limits: TraceLimits, line_error: TraceFileError
) -> list[tuple[int | None, Any]]:
    """The file as one (pretty-printed) document, else the first bad line's error."""
    size = handle.seek(0, 2)
    if size > limits.max_document_bytes:
        raise line_error
    handle.seek(0)
    try:
        return [(None, _parse(handle.read(), limits))]
    except Malformed:
        raise line_error from None


def _spans_of(path: Path, limits: TraceLimits = DEFAULT_LIMITS) -> list[SpanRecord]:
    spans: list[SpanRecord] = []
    for number, document in _documents(path, limits):
        try:
            spans.extend(decode(document))
        except Malformed as exc:
            raise TraceFileError(path, number, str(exc)) from None
        except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
            # a shape the checks above did not foresee: still one clear error
            raise TraceFileError(path, number, f"malformed span: {exc!r}"[:300]) from exc
    return spans


def trace_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files ``paths`` name: files as given, directories searched for traces
    (regular files only: a FIFO or a device named ``*.jsonl`` is not read)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        try:
            if path.is_dir():
                matches = [*path.rglob("*.jsonl"), *path.rglob("*.json")]
                found.extend(sorted(p for p in matches if p.is_file()))
            elif path.is_file():
                found.append(path)
            else:
                raise TraceFileError(path, None, "trace file not found")
        except OSError as exc:
            raise TraceFileError(path, None, f"cannot read: {exc.strerror or exc}") from exc
    return found


def load_spans(
    paths: Iterable[str | Path], *, limits: TraceLimits = DEFAULT_LIMITS
) -> list[SpanRecord]:
    """Every span in ``paths`` (files or directories)."""
    spans: list[SpanRecord] = []
    for path in trace_files(paths):
        spans.extend(_spans_of(path, limits))
    return spans


def group_runs(spans: Iterable[SpanRecord], source: Path | None = None) -> list[RunTrace]:
    """One :class:`RunTrace` per trace id, ordered by start time."""
    by_trace: dict[str, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    runs = [RunTrace(trace_id, found, source) for trace_id, found in by_trace.items()]
    return sorted(runs, key=lambda r: r.start_ns)


def load_runs(
    paths: Iterable[str | Path], *, limits: TraceLimits = DEFAULT_LIMITS
) -> list[RunTrace]:
    """The runs in ``paths``, each remembering the first file it came from (a
    trace split over several files is one run)."""
    by_trace: dict[str, list[SpanRecord]] = defaultdict(list)
    sources: dict[str, Path] = {}
    for path in trace_files(paths):
        for span in _spans_of(path, limits):
            by_trace[span.trace_id].append(span)
            sources.setdefault(span.trace_id, path)
    runs = [RunTrace(trace_id, spans, sources[trace_id]) for trace_id, spans in by_trace.items()]
    return sorted(runs, key=lambda r: r.start_ns)


def find_trace_file(run: str | Path, traces_dir: str | Path = "traces") -> Path:
    """The file of ``run``: a path, or a run id / trace id / file-name fragment
    matched against the files in ``traces_dir`` (newest wins)."""
    path = Path(run)
    directory = Path(traces_dir)
    try:
        if path.is_file():
            return path
        candidates = sorted(directory.glob("*.jsonl")) if directory.is_dir() else []
        candidates = [p for p in candidates if p.is_file()]
    except OSError as exc:  # a name too long to be a path, an unreadable directory
        raise TraceFileError(
            directory, None, f"cannot search for {str(run)[:80]!r}: {exc.strerror or exc}"
        ) from exc
    matches = [p for p in candidates if str(run) in p.name]
    if not matches:
        quoted = json.dumps(str(run)).encode("utf-8")
        for candidate in candidates:
            try:
                if quoted in candidate.read_bytes():
                    matches.append(candidate)
            except OSError:  # unreadable: not the one we can show
                continue
    if not matches:
        raise TraceFileError(directory, None, f"no trace file for run {str(run)!r}")
    return max(matches, key=lambda p: p.stat().st_mtime)
