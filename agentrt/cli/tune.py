"""``agentrt tune TRACES... --graph graphs/NAME.py:graph -o budgets/NAME.tuned.toml``:
:func:`agentrt.tuning.tune`, then its fit quality, latency models and node
statistics as tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agentrt.tuning import TuneOutcome, tune

__all__ = ["render", "tune_command"]


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
