"""``agentrt tune TRACES... --graph graphs/NAME.py:graph -o budgets/NAME.tuned.toml``.

Reads the traces, refuses runs of another graph, fits every model, prints the
latency-prediction error on held-out runs before and after, and writes the
tuned profile and its executor models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agentrt.budget._profile import BudgetProfile, load_profile
from agentrt.core._errors import ConfigurationError
from agentrt.tracing._records import load_runs
from agentrt.tuning._fit import Fit, fit
from agentrt.tuning._profile_writer import tuned_profile, write_tuned
from agentrt.tuning._quality import ErrorStats, FitQuality, evaluate
from agentrt.tuning._samples import RunSample, extract

__all__ = ["TuneOutcome", "graph_key", "select_runs", "tune", "tune_command"]


def graph_key(name: str) -> str:
    """What identifies a graph across spellings: ``graphs/math.py:graph`` -> ``math``."""
    path = name.split(":", 1)[0]
    if path.endswith(".py") or "/" in path:
        return Path(path).stem
    return path


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


def _graph_nodes(graph: str) -> tuple[set[str] | None, object]:
    """The node names of the graph file, and its ``PROFILE`` (None when not loadable)."""
    if not Path(graph.split(":", 1)[0]).is_file():
        return None, None
    from agentrt.langgraph._loading import load_graph

    loaded = load_graph(graph)
    drawn = loaded.graph.get_graph()
    nodes = {str(n) for n in drawn.nodes if not str(n).startswith("__")}
    return nodes, loaded.optional("PROFILE")


def _base_profile(base: Path | None, module_profile: object, graph: str) -> BudgetProfile:
    if base is not None:
        return load_profile(base)
    if module_profile is not None and Path(str(module_profile)).is_file():
        return load_profile(Path(str(module_profile)))
    guess = Path("budgets") / f"{graph_key(graph)}.toml"
    return load_profile(guess) if guess.is_file() else BudgetProfile.default()


def tune(
    traces: Sequence[str | Path],
    graph: str,
    output: Path | None = None,
    *,
    base: Path | None = None,
) -> TuneOutcome:
    """Fit ``graph``'s models from ``traces``; write them when ``output`` is given."""
    nodes, module_profile = _graph_nodes(graph)
    runs = select_runs(extract(load_runs(traces)), graph, nodes)
    quality = evaluate(runs)
    fitted = fit(runs)
    profile = tuned_profile(fitted, _base_profile(base, module_profile, graph), graph)
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


def render(outcome: TuneOutcome, console: Console) -> None:
    """Print fit quality, the latency models and the node statistics."""
    quality = outcome.quality
    table = Table(title=f"latency prediction error on {quality.held_out_runs} held-out runs")
    for column in ("models", "calls", "median APE", "p90 APE"):
        table.add_column(column)
    for label, errors in (("before (as run)", quality.before), ("after (tuned)", quality.after)):
        table.add_row(
            label,
            str(errors.count),
            "-" if errors.median_pct is None else f"{errors.median_pct:.1f}%",
            "-" if errors.p90_pct is None else f"{errors.p90_pct:.1f}%",
        )
    console.print(table)
    groups = Table(title="latency model per endpoint group")
    for column in ("group", "TTFT base ms", "ms/prompt tok", "ms/token by N", "acceptance by N"):
        groups.add_column(column)
    for name, model in sorted(outcome.fitted.latency.items()):
        spec = model.speculative
        groups.add_row(
            name,
            f"{model.ttft.base_s * 1000:.1f}",
            f"{model.ttft.per_prompt_token_s * 1000:.3f}",
            ", ".join(f"{n:g}:{s * 1000:.1f}" for n, s in model.decode_s_per_token.points),
            "-" if spec is None else ", ".join(f"{n:g}:{a:.2f}" for n, a in spec.acceptance.points),
        )
    console.print(groups)
    nodes = Table(title="per node")
    for column in (
        "node",
        "calls",
        "p50 s",
        "p90 s",
        "calls/visit",
        "visits/run",
        "tokens p50/p90",
        "accuracy",
    ):
        nodes.add_column(column)
    for name, node in sorted(outcome.fitted.nodes.items()):
        stats = node.stats
        accuracy = "-"
        if node.accuracy is not None:
            accuracy = ", ".join(
                f"{m.strategy}{m.n}:{m.accuracy:.2f}" for m in node.accuracy.measured
            )
        tokens = "-" if stats.tokens_p50 is None else f"{stats.tokens_p50:g}/{stats.tokens_p90:g}"
        nodes.add_row(
            name, str(node.calls), f"{stats.p50_s:.2f}", f"{stats.p90_s:.2f}",
            f"{stats.calls_per_visit:.2f}", f"{stats.expected_visits:.2f}", tokens, accuracy,
        )  # fmt: skip
    console.print(nodes)
    if outcome.profile_path is not None:
        console.print(f"wrote {outcome.profile_path} and {outcome.models_path}")


def tune_command(
    traces: Sequence[Path], *, graph: str, output: Path, console: Console, base: Path | None = None
) -> TuneOutcome:
    """What ``agentrt tune`` runs (the CLI wraps errors into messages)."""
    outcome = tune(traces, graph, output, base=base)
    render(outcome, console)
    return outcome
