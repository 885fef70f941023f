"""The graphs a server serves, as the Agent Protocol's assistants.

Each served graph is one assistant whose ``assistant_id`` and ``graph_id`` are the
graph's name (``graphs/math.py:graph`` is ``math``); a request may also name it by
the compiled graph's own name (``StateGraph(...).compile(name="solver")``). A
graph carries its budget profile (the module's ``PROFILE``, else the default):
its ``deadline_s`` is a run's deadline when the request gives none, and its
per-node minimum latencies say the least time a run needs
(:func:`agentrt.budget._minimum.minimum_run_s`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from agentrt.budget._minimum import minimum_run_s
from agentrt.budget._profile import BudgetProfile, load_profile
from agentrt.budget._topology import GraphTopology
from agentrt.core._errors import ConfigurationError
from agentrt.core._settings import Settings
from agentrt.langgraph._loading import LoadedGraph, graph_key
from agentrt.serve._protocol import RequestRefused

__all__ = ["GraphCatalog", "ServedGraph"]

DEFAULT_GRAPH_NAME = "LangGraph"
"""What ``compile()`` names a graph not given a name: no alias for that."""


@dataclass(frozen=True)
class ServedGraph:
    """A compiled graph as one assistant: its name, budget profile and the path it
    was loaded from (``graph_path`` of its runs; checked against the profile's)."""

    name: str
    graph: Any
    profile: BudgetProfile | Path | None = None
    path: str | None = None
    description: str | None = None

    @classmethod
    def coerce(cls, name: str, value: Any, settings: Settings | None = None) -> ServedGraph:
        """A :class:`ServedGraph`, a :class:`LoadedGraph` (its module's ``PROFILE``) or a
        compiled graph (the default profile) served as ``name``."""
        if isinstance(value, ServedGraph):
            return value if value.name == name else _renamed(value, name)
        if isinstance(value, LoadedGraph):
            doc = (value.module.__doc__ or "").strip().split("\n", 1)[0] or None
            return cls(name, value.graph, value.profile(settings), value.path, doc)
        if not (hasattr(value, "astream") and hasattr(value, "get_graph")):
            raise ConfigurationError(
                f"graph {name!r} must be a compiled LangGraph graph, got {type(value).__name__}"
            )
        return cls(name, value)


def _renamed(served: ServedGraph, name: str) -> ServedGraph:
    return ServedGraph(name, served.graph, served.profile, served.path, served.description)


@dataclass
class _Entry:
    served: ServedGraph
    profile: BudgetProfile
    topology: GraphTopology
    minimum_s: float
    with_checkpointer: Any = None
    aliases: tuple[str, ...] = field(default_factory=tuple)


class GraphCatalog:
    """The served graphs by assistant id, each with its parsed profile, its topology,
    the least time a run of it needs, and its copy that keeps thread state in the
    server's checkpointer."""

    def __init__(self, graphs: Sequence[ServedGraph]) -> None:
        if not graphs:
            raise ConfigurationError("agentrt serve needs at least one graph to serve")
        self._entries: dict[str, _Entry] = {}
        self._aliases: dict[str, str] = {}
        for served in graphs:
            if served.name in self._entries:
                raise ConfigurationError(f"two graphs are served as {served.name!r}")
            profile = _parsed(served.profile)
            if (
                served.path is not None
                and profile.graph is not None
                and (graph_key(profile.graph) != graph_key(served.path))
            ):
                raise ConfigurationError(
                    f"the budget profile of {served.name!r} is for graph {profile.graph!r}, "
                    f"not {served.path!r}"
                )
            topology = GraphTopology.from_langgraph(served.graph)
            self._entries[served.name] = _Entry(
                served, profile, topology, minimum_run_s(profile, topology)
            )
        for name, entry in self._entries.items():
            own = getattr(entry.served.graph, "name", None)
            if isinstance(own, str) and own not in (*self._entries, DEFAULT_GRAPH_NAME):
                self._aliases.setdefault(own, name)

    @classmethod
    def of(
        cls, graphs: Mapping[str, Any] | Sequence[Any], settings: Settings | None = None
    ) -> GraphCatalog:
        """A catalog of ``graphs``: a mapping of assistant id to graph, or a sequence
        of :class:`ServedGraph`/:class:`LoadedGraph` (named after their path)."""
        if isinstance(graphs, Mapping):
            items = list(graphs.items())
        else:
            items = [(_name_of(g), g) for g in graphs]
        return cls([ServedGraph.coerce(name, value, settings) for name, value in items])

    def __iter__(self) -> Iterator[ServedGraph]:
        return (entry.served for entry in self._entries.values())

    def names(self) -> list[str]:
        return list(self._entries)

    def _entry(self, assistant_id: str) -> _Entry:
        name = assistant_id if assistant_id in self._entries else self._aliases.get(assistant_id)
        if name is None:
            raise RequestRefused(
                404,
                f"assistant {assistant_id!r} not found; this server serves {self.names()}",
                field="assistant_id",
                value=assistant_id,
            )
        return self._entries[name]

    def get(self, assistant_id: str) -> ServedGraph:
        """The graph served as ``assistant_id`` (or named so), else a 404 naming it."""
        return self._entry(assistant_id).served

    def profile(self, name: str) -> BudgetProfile:
        return self._entry(name).profile

    def topology(self, name: str) -> GraphTopology:
        return self._entry(name).topology

    def minimum_s(self, name: str, start: Sequence[str] | None = None) -> float:
        """The least seconds a run of ``name`` needs (from ``start``, a resumed
        thread's next nodes; else from the entry)."""
        entry = self._entry(name)
        if not start:
            return entry.minimum_s
        return minimum_run_s(entry.profile, entry.topology, start=start)

    def attach(self, saver: BaseCheckpointSaver[Any]) -> None:
        """Give every graph a copy that keeps its threads in ``saver``."""
        for entry in self._entries.values():
            entry.with_checkpointer = entry.served.graph.copy(update={"checkpointer": saver})

    def threaded(self, name: str) -> Any:
        """The copy of ``name`` that keeps thread state in the server's checkpointer."""
        entry = self._entry(name)
        if entry.with_checkpointer is None:
            raise ConfigurationError("the server's checkpointer is not open yet")
        return entry.with_checkpointer


def _name_of(value: Any) -> str:
    if isinstance(value, ServedGraph):
        return value.name
    if isinstance(value, LoadedGraph):
        return value.name
    name = getattr(value, "name", None)
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"name the graph {value!r}: pass a mapping of id to graph")
    return name


def _parsed(profile: BudgetProfile | Path | None) -> BudgetProfile:
    if profile is None:
        return BudgetProfile.default()
    if isinstance(profile, BudgetProfile):
        return profile
    return load_profile(profile)
