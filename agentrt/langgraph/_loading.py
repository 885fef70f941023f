"""Load a graph by path, ``graphs/NAME.py:graph`` (the ``langgraph.json`` convention)."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from agentrt.core._errors import ConfigurationError
from agentrt.core._settings import Settings

__all__ = ["LoadedGraph", "graph_key", "load_graph"]


def graph_key(name: str) -> str:
    """What identifies a graph across spellings (a trace's workflow name, a
    profile's ``graph``, a path): ``graphs/math.py:graph`` -> ``math``."""
    path = name.split(":", 1)[0]
    if path.endswith(".py") or "/" in path:
        return Path(path).stem
    return path


@dataclass(frozen=True)
class LoadedGraph:
    """A compiled graph and the module it came from (for its task helpers)."""

    path: str
    graph: Any
    module: ModuleType

    @property
    def name(self) -> str:
        return graph_key(self.path)

    def optional(self, attribute: str) -> Any:
        return getattr(self.module, attribute, None)

    def profile(self, settings: Settings | None = None) -> Path | None:
        """The budget profile the module names (``PROFILE = "budgets/NAME.toml"``),
        found as :meth:`Settings.budget_file` finds it (an error naming the paths
        looked at when it is nowhere); None when the module names none."""
        declared = self.optional("PROFILE")
        if declared is None:
            return None
        return (settings or Settings()).budget_file(str(declared))


def load_graph(spec: str) -> LoadedGraph:
    """Import ``file.py`` and take its ``attr`` (default ``graph``); compile a StateGraph."""
    file_part, _, attribute = spec.partition(":")
    attribute = attribute or "graph"
    path = Path(file_part)
    if path.suffix != ".py":
        raise ConfigurationError(f"graph path must look like graphs/NAME.py:graph, got {spec!r}")
    if not path.is_file():
        raise ConfigurationError(f"graph file not found: {path}")
    module_name = f"agentrt_graph_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigurationError(f"cannot import graph file {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise ConfigurationError(f"importing {path} failed: {exc!r}") from exc
    if not hasattr(module, attribute):
        raise ConfigurationError(f"{path} has no attribute {attribute!r} (expected a graph)")
    graph = getattr(module, attribute)
    if hasattr(graph, "compile") and not hasattr(graph, "astream"):
        graph = graph.compile()
    if not (hasattr(graph, "astream") and hasattr(graph, "get_graph")):
        raise ConfigurationError(
            f"{spec} is a {type(graph).__name__}, not a compiled LangGraph graph"
        )
    return LoadedGraph(spec, graph, module)
