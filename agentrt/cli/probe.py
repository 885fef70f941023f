"""``agentrt probe train``: collect samples on the pool, label, train, save, report."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agentrt.core._errors import ConfigurationError
from agentrt.pool._endpoint import PLAIN_GROUP
from agentrt.pool._local import pool_endpoints
from agentrt.pool._pool import EndpointPool
from agentrt.tasks import suite as task_suite
from agentrt.tts.probe._embedding import MiniLMEmbedder
from agentrt.tts.probe._model import default_probe_path
from agentrt.tuning.probe._collect import collect_samples, load_samples, save_samples
from agentrt.tuning.probe._labels import DEFAULT_DRAWS, QuerySamples, bootstrap_examples
from agentrt.tuning.probe._train import ProbeReport, ProbeTraining, train_probe

__all__ = ["report_table", "train_probe_command"]


def _cached_samples(path: Path | None) -> list[QuerySamples] | None:
    return load_samples(path) if path is not None and path.is_file() else None


def report_table(report: ProbeReport) -> Table:
    """Brier score and ECE of the raw network, the Platt-scaled probe and a constant."""
    metrics = report.metrics
    title = "probe calibration"
    if metrics is not None:
        title += f" ({metrics.split} split: {metrics.queries} queries, {metrics.rows} rows)"
    table = Table(title=title)
    for column in ("predictor", "Brier", "ECE"):
        table.add_column(column)
    if metrics is not None:
        table.add_row("network (raw)", f"{metrics.brier_raw:.4f}", f"{metrics.ece_raw:.4f}")
        table.add_row(
            "probe (Platt)", f"{metrics.brier_calibrated:.4f}", f"{metrics.ece_calibrated:.4f}"
        )
        table.add_row(
            f"constant {report.constant:.3f}",
            f"{metrics.brier_constant:.4f}",
            f"{metrics.ece_constant:.4f}",
        )
    return table


async def train_probe_command(
    *,
    console: Console,
    suite: str = "addition",
    count: int = 64,
    seed: int = 0,
    samples_per_query: int = 16,
    max_tokens: int = 64,
    draws: int = DEFAULT_DRAWS,
    output: Path | None = None,
    samples: Path | None = None,
    group: str = PLAIN_GROUP,
) -> ProbeReport:
    """Collect ``samples_per_query`` branches for ``count`` tasks of ``suite`` on the
    pool (``AGENTRT_ENDPOINTS``, else the local pool), train the probe and write it
    to ``output`` (default ``~/.cache/agentrt/probes/default.safetensors``).

    With ``samples`` given: read them from that JSONL file when it exists
    (no pool needed), else collect and write them there first.
    """
    if count < 3:
        raise ConfigurationError(f"count must be >= 3 (train, calibration, test), got {count}")
    cached = await asyncio.to_thread(_cached_samples, samples)
    collected: list[QuerySamples]
    if cached is not None:
        collected = cached
        console.print(f"read {len(collected)} query x cap records from {samples}")
    else:
        tasks = task_suite(suite, seed=seed, count=count)
        async with (
            pool_endpoints(plain=1, spec=0, announce=console.print) as specs,
            EndpointPool(specs) as pool,
        ):
            console.print(
                f"sampling {len(tasks)} {suite} tasks x {samples_per_query} branches "
                f"(max_tokens={max_tokens}, T=0.7) on group {group!r}..."
            )
            collected = await collect_samples(
                pool, tasks, samples_per_query, max_tokens, seed=seed, group=group
            )
        if samples is not None:
            console.print(f"wrote {save_samples(samples, collected)}")
    examples = bootstrap_examples(collected, draws=draws, seed=seed)
    console.print(f"{len(examples)} labelled rows; training...")
    report = train_probe(examples, MiniLMEmbedder(), ProbeTraining(seed=seed), draws=draws)
    path = report.probe.save(output or default_probe_path())
    console.print(report_table(report))
    console.print(f"wrote {path}")
    return report
