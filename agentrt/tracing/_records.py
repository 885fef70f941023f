"""Reading traces back: agentrt's JSONL files and OTLP-JSON, grouped into runs.

A file may hold agentrt's flat JSONL spans (one object per line), OTLP-JSON
``ExportTraceServiceRequest`` documents (one per line, as the collector's file
exporter writes them, or one document per file), or both. Directories are
searched for ``*.jsonl`` and ``*.json``. Span times stay in Unix nanoseconds.
"""

from __future__ import annotations

import base64
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentrt.core._errors import ConfigurationError
from agentrt.tracing._attributes import AGENTRT, GEN_AI

__all__ = [
    "EventRecord",
    "RunTrace",
    "SpanRecord",
    "find_trace_file",
    "group_runs",
    "load_runs",
    "load_spans",
    "trace_files",
]

_OTLP_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}
_OTLP_KIND = {
    0: "UNSPECIFIED",
    1: "INTERNAL",
    2: "SERVER",
    3: "CLIENT",
    4: "PRODUCER",
    5: "CONSUMER",
}


@dataclass(frozen=True)
class EventRecord:
    name: str
    time_ns: int
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SpanRecord:
    """One finished span as read from a file."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Any]
    events: tuple[EventRecord, ...] = ()
    status: str = "UNSET"
    status_message: str | None = None

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9

    def get(self, key: str, default: Any = None) -> Any:
        return self.attributes.get(key, default)

    def number(self, key: str) -> float | None:
        value = self.attributes.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    @property
    def operation(self) -> str | None:
        value = self.attributes.get(GEN_AI.OPERATION_NAME)
        return str(value) if value is not None else None

    @property
    def is_workflow(self) -> bool:
        return self.operation == GEN_AI.INVOKE_WORKFLOW

    @property
    def is_chat(self) -> bool:
        return self.operation == GEN_AI.CHAT

    @property
    def is_tool(self) -> bool:
        return self.operation == GEN_AI.EXECUTE_TOOL

    @property
    def is_node(self) -> bool:
        return self.name.startswith("node ") and AGENTRT.NODE in self.attributes

    @property
    def is_branch(self) -> bool:
        return AGENTRT.BRANCH_OUTCOME in self.attributes


def _natural(name: str) -> tuple[tuple[int, int | str], ...]:
    """``branch 2`` before ``branch 10``."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", name) if p)


@dataclass
class RunTrace:
    """The spans of one trace (one run), with parent links."""

    trace_id: str
    spans: list[SpanRecord]
    source: Path | None = None
    _children: dict[str | None, list[SpanRecord]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.spans.sort(key=lambda s: (s.start_ns, _natural(s.name)))
        children: dict[str | None, list[SpanRecord]] = defaultdict(list)
        ids = {s.span_id for s in self.spans}
        for span in self.spans:
            parent = span.parent_id if span.parent_id in ids else None
            children[parent].append(span)
        self._children = dict(children)

    @property
    def workflow(self) -> SpanRecord | None:
        return next((s for s in self.spans if s.is_workflow), None)

    @property
    def graph(self) -> str | None:
        root = self.workflow
        if root is None:
            return None
        name = root.get(AGENTRT.GRAPH) or root.get(GEN_AI.WORKFLOW_NAME)
        return str(name) if name is not None else None

    @property
    def run_id(self) -> str:
        root = self.workflow
        value = root.get(AGENTRT.RUN_ID) if root is not None else None
        return str(value) if value is not None else self.trace_id

    @property
    def start_ns(self) -> int:
        return min(s.start_ns for s in self.spans)

    @property
    def end_ns(self) -> int:
        return max(s.end_ns for s in self.spans)

    def roots(self) -> list[SpanRecord]:
        return list(self._children.get(None, []))

    def children(self, span: SpanRecord) -> list[SpanRecord]:
        return list(self._children.get(span.span_id, []))

    def walk(self) -> Iterator[tuple[int, SpanRecord]]:
        """Depth-first, children by start time: ``(depth, span)``."""
        stack = [(0, s) for s in reversed(self.roots())]
        while stack:
            depth, span = stack.pop()
            yield depth, span
            stack.extend((depth + 1, c) for c in reversed(self.children(span)))

    def calls(self) -> list[SpanRecord]:
        return [s for s in self.spans if s.is_chat]

    def nodes(self) -> list[SpanRecord]:
        return [s for s in self.spans if s.is_node]

    def branches(self, call: SpanRecord) -> list[SpanRecord]:
        return [s for s in self.children(call) if s.is_branch]

    def node_of(self, span: SpanRecord) -> str | None:
        """The node a span ran in: its own ``agentrt.node``, else its nearest node
        ancestor's, else the innermost node span whose time contains it (a driver
        that opens node spans outside the node's task)."""
        by_id = {s.span_id: s for s in self.spans}
        current: SpanRecord | None = span
        while current is not None:
            node = current.get(AGENTRT.NODE)
            if node is not None:
                return str(node)
            current = by_id.get(current.parent_id) if current.parent_id else None
        around = [
            n for n in self.nodes() if n.start_ns <= span.start_ns and span.end_ns <= n.end_ns
        ]
        if around:
            return str(max(around, key=lambda n: n.start_ns).get(AGENTRT.NODE))
        return None


# -- decoding ---------------------------------------------------------------------


def _otlp_value(value: Mapping[str, Any]) -> Any:
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        return [_otlp_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return {
            kv["key"]: _otlp_value(kv.get("value", {}))
            for kv in value["kvlistValue"].get("values", [])
        }
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def _otlp_attributes(items: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    return {kv["key"]: _otlp_value(kv.get("value", {})) for kv in items or ()}


def _otlp_id(value: str | None, width: int) -> str | None:
    """OTLP-JSON ids are hex; some writers use base64 (the protobuf JSON mapping)."""
    if not value:
        return None
    text = value.lower()
    if len(text) == width and all(c in "0123456789abcdef" for c in text):
        return text
    try:
        return base64.b64decode(value).hex()
    except ValueError:
        return text


def _enum(value: Any, names: Mapping[int, str], prefix: str) -> str:
    if isinstance(value, int):
        return names.get(value, "UNSET")
    text = str(value or "")
    return text.removeprefix(prefix) or "UNSET"


def _from_otlp(document: Mapping[str, Any]) -> Iterator[SpanRecord]:
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for raw in scope_spans.get("spans", []):
                status = raw.get("status", {}) or {}
                yield SpanRecord(
                    trace_id=_otlp_id(raw.get("traceId"), 32) or "",
                    span_id=_otlp_id(raw.get("spanId"), 16) or "",
                    parent_id=_otlp_id(raw.get("parentSpanId"), 16),
                    name=str(raw.get("name", "")),
                    kind=_enum(raw.get("kind"), _OTLP_KIND, "SPAN_KIND_"),
                    start_ns=int(raw.get("startTimeUnixNano", 0)),
                    end_ns=int(raw.get("endTimeUnixNano", 0)),
                    attributes=_otlp_attributes(raw.get("attributes")),
                    events=tuple(
                        EventRecord(
                            str(e.get("name", "")),
                            int(e.get("timeUnixNano", 0)),
                            _otlp_attributes(e.get("attributes")),
                        )
                        for e in raw.get("events", []) or []
                    ),
                    status=_enum(status.get("code"), _OTLP_STATUS, "STATUS_CODE_"),
                    status_message=status.get("message"),
                )


def _from_flat(raw: Mapping[str, Any]) -> SpanRecord:
    status = raw.get("status") or {}
    return SpanRecord(
        trace_id=str(raw["trace_id"]),
        span_id=str(raw["span_id"]),
        parent_id=raw.get("parent_span_id"),
        name=str(raw.get("name", "")),
        kind=str(raw.get("kind", "INTERNAL")),
        start_ns=int(raw.get("start_time_unix_nano") or 0),
        end_ns=int(raw.get("end_time_unix_nano") or 0),
        attributes=dict(raw.get("attributes") or {}),
        events=tuple(
            EventRecord(
                str(e.get("name", "")),
                int(e.get("time_unix_nano") or 0),
                dict(e.get("attributes") or {}),
            )
            for e in raw.get("events") or []
        ),
        status=str(status.get("code", "UNSET")),
        status_message=status.get("description"),
    )


def _decode(document: Any, where: str) -> Iterator[SpanRecord]:
    if isinstance(document, Mapping) and "resourceSpans" in document:
        yield from _from_otlp(document)
    elif isinstance(document, Mapping) and "trace_id" in document and "span_id" in document:
        yield _from_flat(document)
    else:
        raise ConfigurationError(f"{where}: neither an agentrt JSONL span nor OTLP-JSON")


def trace_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files ``paths`` name: files as given, directories searched for traces."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted([*path.rglob("*.jsonl"), *path.rglob("*.json")]))
        elif path.is_file():
            found.append(path)
        else:
            raise ConfigurationError(f"trace file not found: {path}")
    return found


def _spans_of(path: Path) -> Iterator[SpanRecord]:
    text = path.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        documents = [json.loads(line) for line in lines]
    except json.JSONDecodeError:
        try:
            documents = [json.loads(text)]
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"{path}: not JSON lines nor one JSON document: {exc}"
            ) from exc
    for number, document in enumerate(documents, 1):
        yield from _decode(document, f"{path}:{number}")


def load_spans(paths: Iterable[str | Path]) -> list[SpanRecord]:
    """Every span in ``paths`` (files or directories)."""
    spans: list[SpanRecord] = []
    for path in trace_files(paths):
        spans.extend(_spans_of(path))
    return spans


def group_runs(spans: Iterable[SpanRecord], source: Path | None = None) -> list[RunTrace]:
    """One :class:`RunTrace` per trace id, ordered by start time."""
    by_trace: dict[str, list[SpanRecord]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for span in spans:
        key = (span.trace_id, span.span_id)
        if key not in seen:
            seen.add(key)
            by_trace[span.trace_id].append(span)
    runs = [RunTrace(trace_id, found, source) for trace_id, found in by_trace.items()]
    return sorted(runs, key=lambda r: r.start_ns)


def load_runs(paths: Iterable[str | Path]) -> list[RunTrace]:
    """The runs in ``paths``, each remembering the file it came from."""
    runs: list[RunTrace] = []
    for path in trace_files(paths):
        runs.extend(group_runs(_spans_of(path), source=path))
    merged: dict[str, RunTrace] = {}
    for run in runs:
        if run.trace_id in merged:
            previous = merged[run.trace_id]
            merged[run.trace_id] = group_runs([*previous.spans, *run.spans], previous.source)[0]
        else:
            merged[run.trace_id] = run
    return sorted(merged.values(), key=lambda r: r.start_ns)


def find_trace_file(run: str | Path, traces_dir: str | Path = "traces") -> Path:
    """The file of ``run``: a path, or a run id / trace id / file-name fragment
    matched against the files in ``traces_dir`` (newest wins)."""
    path = Path(run)
    if path.is_file():
        return path
    directory = Path(traces_dir)
    candidates = sorted(directory.glob("*.jsonl")) if directory.is_dir() else []
    matches = [p for p in candidates if str(run) in p.name]
    if not matches:
        for candidate in candidates:
            text = candidate.read_text(encoding="utf-8")
            if f'"{run}"' in text:
                matches.append(candidate)
    if not matches:
        raise ConfigurationError(f"no trace file for run {str(run)!r} in {directory}/")
    return max(matches, key=lambda p: p.stat().st_mtime)
