"""One trace as read back: spans (:class:`SpanRecord`) grouped into a run
(:class:`RunTrace`) with its parent links.

A :class:`RunTrace` builds its indexes once (by id, parents, children, the
node of each span), so building and walking a trace is linear in its spans.
A span whose parent chain loops (its own parent, or a longer cycle) is read
as a root: the cycle is cut at its earliest span, which keeps the others
under it. Files are read by :mod:`agentrt.tracing._records`.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentrt.tracing._attributes import AGENTRT, GEN_AI

__all__ = ["EventRecord", "RunTrace", "SpanRecord"]


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
        """The attribute as a finite float, else ``None`` (absent, not a
        number, NaN or infinite: none of them is a figure to compute with)."""
        value = self.attributes.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        try:
            number = float(value)
        except OverflowError:  # an integer past the float range
            return None
        return number if math.isfinite(number) else None

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


_DIGITS = re.compile(r"([0-9]+)")


def _natural(name: str) -> tuple[tuple[int, int | str], ...]:
    """``branch 2`` before ``branch 10`` (runs of up to 18 digits compare as numbers)."""
    return tuple(
        (0, int(p)) if len(p) <= 18 and p.isascii() and p.isdigit() else (1, p)
        for p in _DIGITS.split(name)
        if p
    )


@dataclass
class RunTrace:
    """The spans of one trace (one run), with parent links.

    Spans are kept once per span id (the first seen), ordered by start time.
    The parent of a span is its ``parent_id`` when that span is in the trace,
    else none (a root); parent cycles are cut (see the module docstring).
    """

    trace_id: str
    spans: list[SpanRecord]
    source: Path | None = None
    _by_id: dict[str, SpanRecord] = field(default_factory=dict, repr=False, compare=False)
    _parent: dict[str, str | None] = field(default_factory=dict, repr=False, compare=False)
    _children: dict[str | None, list[SpanRecord]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _node_memo: dict[str, str | None] = field(default_factory=dict, repr=False, compare=False)
    _node_spans: list[SpanRecord] = field(default_factory=list, repr=False, compare=False)
    _node_starts: list[int] = field(default_factory=list, repr=False, compare=False)
    _call_spans: list[SpanRecord] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id: dict[str, SpanRecord] = {}
        for span in self.spans:
            by_id.setdefault(span.span_id, span)
        self.spans = sorted(by_id.values(), key=lambda s: (s.start_ns, _natural(s.name)))
        self._by_id = by_id
        self._parent = _acyclic_parents(self.spans, by_id)
        children: dict[str | None, list[SpanRecord]] = defaultdict(list)
        for span in self.spans:
            children[self._parent[span.span_id]].append(span)
        self._children = dict(children)
        self._node_memo = {}
        self._node_spans = [s for s in self.spans if s.is_node]  # in start order
        self._node_starts = [s.start_ns for s in self._node_spans]
        self._call_spans = [s for s in self.spans if s.is_chat]

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
        return min((s.start_ns for s in self.spans), default=0)

    @property
    def end_ns(self) -> int:
        return max((s.end_ns for s in self.spans), default=0)

    def span(self, span_id: str) -> SpanRecord | None:
        """The span with ``span_id`` in this trace, if any."""
        return self._by_id.get(span_id)

    def parent(self, span: SpanRecord) -> SpanRecord | None:
        """The parent of ``span`` in this trace (``None`` for a root)."""
        parent_id = self._parent.get(span.span_id)
        return self._by_id.get(parent_id) if parent_id is not None else None

    def roots(self) -> list[SpanRecord]:
        return list(self._children.get(None, []))

    def children(self, span: SpanRecord) -> list[SpanRecord]:
        return list(self._children.get(span.span_id, []))

    def walk(self) -> Iterator[tuple[int, SpanRecord]]:
        """Depth-first, children by start time: ``(depth, span)``; every span once."""
        stack = [(0, s) for s in reversed(self._children.get(None, []))]
        while stack:
            depth, span = stack.pop()
            yield depth, span
            stack.extend((depth + 1, c) for c in reversed(self._children.get(span.span_id, [])))

    def calls(self) -> list[SpanRecord]:
        return list(self._call_spans)

    def nodes(self) -> list[SpanRecord]:
        return list(self._node_spans)

    def branches(self, call: SpanRecord) -> list[SpanRecord]:
        return [s for s in self._children.get(call.span_id, []) if s.is_branch]

    def node_of(self, span: SpanRecord) -> str | None:
        """The node a span ran in: its own ``agentrt.node``, else its nearest node
        ancestor's, else the innermost node span whose time contains it (a driver
        that opens node spans outside the node's task)."""
        own = span.get(AGENTRT.NODE)
        if own is not None:
            return str(own)
        member = self._by_id.get(span.span_id) is span
        start = self._parent.get(span.span_id) if member else span.parent_id
        node = self._ancestor_node(start)
        if node is not None:
            return node
        inner = self._innermost_node_around(span)
        return str(inner.get(AGENTRT.NODE)) if inner is not None else None

    def _innermost_node_around(self, span: SpanRecord) -> SpanRecord | None:
        """The node span that started last among those whose time contains
        ``span`` (the first in start order on a tie), searching back from the
        last node that started before it."""
        nodes, starts = self._node_spans, self._node_starts
        i = bisect.bisect_right(starts, span.start_ns) - 1
        while i >= 0 and nodes[i].end_ns < span.end_ns:
            i -= 1
        if i < 0:
            return None
        best = i
        for j in range(i - 1, -1, -1):
            if starts[j] != starts[i]:
                break
            if nodes[j].end_ns >= span.end_ns:
                best = j
        return nodes[best]

    def _ancestor_node(self, span_id: str | None) -> str | None:
        """The ``agentrt.node`` of ``span_id`` or its nearest ancestor that has
        one, remembered for the whole chain (so all lookups together are linear)."""
        chain: list[str] = []
        found: str | None = None
        current = span_id
        while current is not None and current in self._by_id:
            if current in self._node_memo:
                found = self._node_memo[current]
                break
            node = self._by_id[current].get(AGENTRT.NODE)
            if node is not None:
                found = str(node)
                self._node_memo[current] = found
                break
            chain.append(current)
            current = self._parent[current]
        for seen in chain:
            self._node_memo[seen] = found
        return found


def _acyclic_parents(
    spans: list[SpanRecord], by_id: Mapping[str, SpanRecord]
) -> dict[str, str | None]:
    """Each span's parent within the trace, with every parent cycle cut at its
    earliest span (in ``spans`` order), in one pass over the chains."""
    parent: dict[str, str | None] = {}
    for span in spans:
        pid = span.parent_id
        parent[span.span_id] = pid if pid is not None and pid in by_id else None
    order = {span.span_id: i for i, span in enumerate(spans)}
    on_path, done = 1, 2
    state: dict[str, int] = {}
    for span in spans:
        path: list[str] = []
        current: str | None = span.span_id
        while current is not None and current not in state:
            state[current] = on_path
            path.append(current)
            current = parent[current]
        if current is not None and state[current] == on_path:  # walked into its own path
            cycle = path[path.index(current) :]
            parent[min(cycle, key=order.__getitem__)] = None
        for seen in path:
            state[seen] = done
    return parent
