"""The shape of a graph, as far as time goes: nodes, edges, loops, fan-outs.

:class:`GraphTopology` is a pure value read once from a compiled LangGraph
graph (``compiled.get_graph()``). It answers one question: which nodes lie on
the longest expected path from a node to the end. Loops (strongly connected
components) are collapsed, each member counted with the visits the caller
expects; branches that leave a node side by side (static parallel edges,
``Send`` fan-outs) or as alternatives (conditional routes) count as the
longest of them, not their sum, since they share wall clock.

Routers must declare where they can go (a ``Literal`` return type or a path
map), otherwise LangGraph draws no edges for them and the path is too short.
"""

from __future__ import annotations

import itertools
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

__all__ = ["END", "START", "Edge", "GraphTopology"]

START = "__start__"
END = "__end__"


@dataclass(frozen=True)
class Edge:
    """One edge; ``conditional`` edges are routes a router may take."""

    source: str
    target: str
    conditional: bool = False


@dataclass(frozen=True)
class GraphTopology:
    """Nodes and edges of a graph (``START``/``END`` only as edge ends).

    ``fanout`` names nodes reached through ``Send`` (many parallel tasks of
    one node in one step).
    """

    nodes: tuple[str, ...]
    edges: tuple[Edge, ...]
    fanout: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        known = {*self.nodes, START, END}
        for edge in self.edges:
            for end in (edge.source, edge.target):
                if end not in known:
                    raise ValueError(f"edge {edge.source}->{edge.target}: unknown node {end!r}")

    # -- construction ---------------------------------------------------------

    @classmethod
    def chain(cls, names: Iterable[str]) -> GraphTopology:
        """``START -> names[0] -> ... -> names[-1] -> END``."""
        nodes = tuple(names)
        path = (START, *nodes, END)
        return cls(nodes, tuple(Edge(a, b) for a, b in itertools.pairwise(path)))

    @classmethod
    def from_edges(
        cls,
        edges: Iterable[tuple[str, str] | Edge],
        *,
        fanout: Iterable[str] = (),
    ) -> GraphTopology:
        """A topology from ``(source, target)`` pairs or :class:`Edge` values."""
        edge_list = tuple(e if isinstance(e, Edge) else Edge(e[0], e[1]) for e in edges)
        names: dict[str, None] = {}
        for edge in edge_list:
            for end in (edge.source, edge.target):
                if end not in (START, END):
                    names.setdefault(end)
        return cls(tuple(names), edge_list, frozenset(fanout))

    @classmethod
    def from_langgraph(cls, compiled: Any) -> GraphTopology:
        """Read a compiled LangGraph graph (anything with ``get_graph()``).

        Nodes reached through a router whose return type mentions ``Send`` are
        marked as fan-out nodes.
        """
        drawn = compiled.get_graph()
        nodes = tuple(name for name in drawn.nodes if name not in (START, END))
        edges = tuple(Edge(str(e.source), str(e.target), bool(e.conditional)) for e in drawn.edges)
        return cls(nodes, edges, _send_targets(compiled) & frozenset(nodes))

    # -- reading --------------------------------------------------------------

    def __contains__(self, node: object) -> bool:
        return node in self._successors and node not in (START, END)

    @cached_property
    def _successors(self) -> Mapping[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {name: [] for name in (START, *self.nodes, END)}
        for edge in self.edges:
            if edge.target not in out[edge.source]:
                out[edge.source].append(edge.target)
        return {name: tuple(sorted(targets)) for name, targets in out.items()}

    def successors(self, node: str) -> tuple[str, ...]:
        return self._successors[node]

    @property
    def entry(self) -> tuple[str, ...]:
        """Nodes the run starts at."""
        return self.successors(START)

    @property
    def finish(self) -> tuple[str, ...]:
        """Nodes that may end the run."""
        return tuple(sorted(n for n in self.nodes if END in self.successors(n)))

    @cached_property
    def _components(self) -> Mapping[str, frozenset[str]]:
        """Each node's strongly connected component (Tarjan, iterative)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        result: dict[str, frozenset[str]] = {}
        counter = 0
        for root in sorted(self._successors):
            if root in index:
                continue
            work: list[tuple[str, int]] = [(root, 0)]
            while work:
                node, i = work.pop()
                if i == 0:
                    index[node] = low[node] = counter
                    counter += 1
                    stack.append(node)
                    on_stack.add(node)
                succ = self._successors[node]
                if i < len(succ):
                    work.append((node, i + 1))
                    nxt = succ[i]
                    if nxt not in index:
                        work.append((nxt, 0))
                    elif nxt in on_stack:
                        low[node] = min(low[node], index[nxt])
                    continue
                if low[node] == index[node]:
                    members: set[str] = set()
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        members.add(top)
                        if top == node:
                            break
                    frozen = frozenset(members)
                    for member in members:
                        result[member] = frozen
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
        return result

    def component(self, node: str) -> frozenset[str]:
        """The nodes in the same loop as ``node`` (just ``{node}`` outside loops)."""
        return self._components[node]

    def in_loop(self, node: str) -> bool:
        """Whether ``node`` can be visited again in the same run."""
        return len(self.component(node)) > 1 or node in self.successors(node)

    @cached_property
    def loops(self) -> tuple[frozenset[str], ...]:
        """Every loop (strongly connected component with a cycle), sorted."""
        seen = {c for n, c in self._components.items() if n in self.nodes and self.in_loop(n)}
        return tuple(sorted(seen, key=lambda c: sorted(c)))

    def _ordered(self, start: str, members: frozenset[str]) -> tuple[str, ...]:
        """``members`` in breadth-first order from ``start`` (deterministic)."""
        order = [start]
        for node in order:
            for nxt in self.successors(node):
                if nxt in members and nxt not in order:
                    order.append(nxt)
        order.extend(sorted(members - set(order)))
        return tuple(order)

    def remaining_path(self, node: str, cost: Callable[[str], float]) -> tuple[str, ...]:
        """The nodes still ahead of ``node`` on the longest path to the end.

        It starts with ``node``'s loop (``node`` first; just ``node`` outside a
        loop), then follows the costliest chain of components to ``END``;
        ``cost(n)`` is the caller's expected remaining seconds for node ``n``
        (visits already counted). Side-by-side or alternative branches count
        as the longest of them.
        """
        if node not in self:
            raise KeyError(node)
        best: dict[frozenset[str], tuple[float, tuple[str, ...]]] = {}

        def longest_after(comp: frozenset[str]) -> tuple[float, tuple[str, ...]]:
            if comp in best:
                return best[comp]
            nexts = {
                self._components[t]
                for n in comp
                for t in self.successors(n)
                if self._components[t] != comp
            }
            winner: tuple[float, tuple[str, ...]] = (0.0, ())
            for nxt in sorted(nexts, key=lambda c: sorted(c)):
                if END in nxt or START in nxt:
                    continue
                entry = min(nxt)
                tail_cost, tail = longest_after(nxt)
                members = self._ordered(entry, nxt)
                total = sum(cost(m) for m in members) + tail_cost
                if total > winner[0] or not winner[1]:
                    winner = (total, members + tail)
            best[comp] = winner
            return winner

        own = self._components[node]
        return self._ordered(node, own) + longest_after(own)[1]


def _send_targets(compiled: Any) -> frozenset[str]:
    """Targets of routers whose return annotation mentions ``Send`` (best effort:
    reads the builder's branch specs; anything unexpected yields no targets)."""
    targets: set[str] = set()
    try:
        branches = compiled.builder.branches
        for specs in branches.values():
            for spec in specs.values():
                func = getattr(spec.path, "func", None) or getattr(spec.path, "afunc", None)
                if func is None or spec.ends is None:
                    continue
                hints = typing.get_type_hints(func)
                if "Send" in repr(hints.get("return", "")):
                    targets.update(str(t) for t in spec.ends.values())
    except Exception:  # a private structure changed: no fan-out hints, not an error
        return frozenset()
    return frozenset(targets)
