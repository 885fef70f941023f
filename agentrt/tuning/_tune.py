"""What ``agentrt tune TRACES... --graph graphs/NAME.py:graph -o budgets/NAME.tuned.toml`` does.

Reads the traces, refuses runs of another graph, fits every model, measures the
latency-prediction error on held-out runs before and after, and writes the
tuned profile and its executor models (the command, :mod:`agentrt.cli.tune`,
prints them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agentrt.budget._profile import BudgetProfile, load_profile
from agentrt.core._errors import ConfigurationError
from agentrt.core._settings import BUDGETS, Settings
from agentrt.langgraph._loading import graph_key, load_graph
from agentrt.tracing._records import load_runs
from agentrt.tuning._fit import Fit, fit
from agentrt.tuning._profile_writer import tuned_profile, write_tuned
from agentrt.tuning._quality import ErrorStats, FitQuality, evaluate
from agentrt.tuning._samples import RunSample, extract

__all__ = ["TuneOutcome", "select_runs", "tune"]


def select_runs(runs: Sequence[RunSample], graph: str, nodes: set[str] | None) -> list[RunSample]:
    """The runs of ``graph`` (and runs without a workflow span, for latency only);
    runs of another graph, or with nodes the graph lacks, are refused."""
    wanted = graph_key(graph)
    others = sorted({r.graph for r in runs if r.graph is not None and graph_key(r.graph) != wanted})
    if others:
        raise ConfigurationError(
            f"the traces hold runs of graph(s) {others}, not of {graph!r}: "
            f"tune each graph from its own traces"
        )
    if nodes is not None:
        traced = {v.node for r in runs for v in r.visits} | {
            c.node for r in runs for c in r.calls if r.graph is not None
        }
        unknown = sorted(traced - nodes - {"*"})
        if unknown:
            raise ConfigurationError(
                f"the traces have node(s) {unknown} that {graph!r} does not have "
                f"(its nodes: {sorted(nodes)}): were they recorded from another version?"
            )
    if not any(r.graph is not None for r in runs) and not any(r.calls for r in runs):
        raise ConfigurationError(f"no runs of {graph!r} and no LLM calls in the traces")
    return list(runs)


@dataclass(frozen=True)
class TuneOutcome:
    """What ``agentrt tune`` did."""

    fitted: Fit
    profile: BudgetProfile
    quality: FitQuality
    profile_path: Path | None
    models_path: Path | None


def _graph_nodes(graph: str, settings: Settings) -> tuple[set[str] | None, Path | None]:
    """The node names of the graph file, and its ``PROFILE`` (None when not loadable)."""
    if not Path(graph.split(":", 1)[0]).is_file():
        return None, None
    loaded = load_graph(graph)
    drawn = loaded.graph.get_graph()
    nodes = {str(n) for n in drawn.nodes if not str(n).startswith("__")}
    return nodes, loaded.profile(settings)


def _base_profile(
    base: Path | None, module_profile: Path | None, graph: str, settings: Settings
) -> BudgetProfile:
    """``base``, else the graph's ``PROFILE``, else ``budgets/<graph>.toml`` where the
    settings find one, else the default profile."""
    if base is not None:
        return load_profile(base)
    if module_profile is not None:
        return load_profile(module_profile)
    guess = settings.find_budget_file(f"{BUDGETS}/{graph_key(graph)}.toml")
    return load_profile(guess) if guess is not None else BudgetProfile.default()


def tune(
    traces: Sequence[str | Path],
    graph: str,
    output: Path | None = None,
    *,
    base: Path | None = None,
    settings: Settings | None = None,
) -> TuneOutcome:
    """Fit ``graph``'s models from ``traces``; write them when ``output`` is given."""
    settings = settings or Settings()
    nodes, module_profile = _graph_nodes(graph, settings)
    runs = select_runs(extract(load_runs(traces)), graph, nodes)
    quality = evaluate(runs)
    fitted = fit(runs)
    profile = tuned_profile(fitted, _base_profile(base, module_profile, graph, settings), graph)
    written: tuple[Path | None, Path | None] = (None, None)
    if output is not None:
        header = (
            f"Written by `agentrt tune` from {len(runs)} runs ({fitted.calls} LLM calls) "
            f"of {graph}.\n"
            f"Held-out latency error (median / p90 APE): before {_pct(quality.before)}, "
            f"after {_pct(quality.after)}."
        )
        written = write_tuned(output, fitted, profile, header)
    return TuneOutcome(fitted, profile, quality, *written)


def _pct(stats: ErrorStats) -> str:
    if stats.median_pct is None or stats.p90_pct is None:
        return "n/a"
    return f"{stats.median_pct:.1f}% / {stats.p90_pct:.1f}%"
