"""Close the loop: traced runs with a profile, tune, traced runs with the tuned one.

:func:`traced_runs` runs a graph on seeded tasks through
:func:`agentrt.langgraph.run`, each inside a workflow span (node spans from
the runner's task events, labels from the task's answer), one JSONL file per
run. :func:`figures` measures a set of runs: latency-prediction error of the
complete calls (predicted mean on the span vs actual), the share of calls
inside their slices, of runs inside their deadline, of correct runs.
:func:`measure_loop` does default runs -> tune -> tuned runs on fresh seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agentrt.core._settings import Settings
from agentrt.core._stats import share
from agentrt.langgraph._inputs import graph_input, task_judge
from agentrt.langgraph._loading import graph_key, load_graph
from agentrt.langgraph._runner import RunObserver
from agentrt.langgraph._runtime import Runtime
from agentrt.pool._endpoint import EndpointSpec
from agentrt.pool._local import LocalPool
from agentrt.pool._pool import EndpointPool
from agentrt.tracing._records import load_runs
from agentrt.tracing._setup import TracingSettings, configure_tracing, current_tracing
from agentrt.tts._calibrate import load_latency_models
from agentrt.tuning._quality import ErrorStats, latency_errors
from agentrt.tuning._samples import extract
from agentrt.tuning._tune import TuneOutcome, tune

__all__ = ["LoopFigures", "LoopResult", "figures", "measure_loop", "traced_runs"]


@dataclass(frozen=True)
class LoopFigures:
    """How a set of runs went."""

    runs: int
    calls: int
    latency_error: ErrorStats
    calls_within_slice: float | None
    runs_within_deadline: float | None
    correct: float | None
    degraded_runs: float | None


def figures(traces: Sequence[Path]) -> LoopFigures:
    """Measure the runs in ``traces``."""
    runs = extract(load_runs(traces))
    calls = [c for r in runs for c in r.calls]
    return LoopFigures(
        runs=len(runs),
        calls=len(calls),
        latency_error=ErrorStats.of([b for b, _ in latency_errors(calls, None)]),
        calls_within_slice=share([w for c in calls if (w := c.within_slice) is not None]),
        runs_within_deadline=share([r.deadline_met for r in runs if r.deadline_met is not None]),
        correct=share([r.correct for r in runs if r.correct is not None]),
        degraded_runs=share([r.degraded for r in runs if r.degraded is not None]),
    )


async def traced_runs(
    graph: str,
    seeds: Sequence[int],
    *,
    deadline_s: float,
    traces_dir: Path,
    profile: Path | None = None,
    calibration: Path | None = None,
    endpoints: Sequence[EndpointSpec] | None = None,
) -> list[Path]:
    """Run ``graph`` once per task seed with JSONL traces under ``traces_dir``;
    returns the files written. ``profile`` defaults to the graph's ``PROFILE``,
    ``calibration`` (latency models) to what ``agentrt run`` uses, ``endpoints``
    to the local pool's."""
    settings = Settings()
    loaded = load_graph(graph)
    chosen = profile or loaded.profile(settings)
    source = calibration or settings.find_calibration()
    latency = load_latency_models(source) if source is not None else None
    previous = current_tracing()
    tracing = configure_tracing(TracingSettings(exporters=("jsonl",), traces_dir=traces_dir))
    files: list[Path] = []
    try:
        async with EndpointPool(list(endpoints or LocalPool().endpoints())) as pool:
            runtime = Runtime(pool=pool, latency=latency)
            for seed in seeds:
                graph_in, task = graph_input(loaded, None, seed)
                result = await runtime.run(
                    loaded.graph, graph_in, deadline=deadline_s, profile=chosen,
                    graph_path=loaded.path, run_seed=seed,
                    observer=RunObserver(judge=task_judge(task, loaded), task_seed=seed),
                )  # fmt: skip
                if result.trace_file is not None:
                    files.append(result.trace_file)
    finally:
        tracing.shutdown()
        if previous is not None:
            configure_tracing(previous.settings)
    return files


@dataclass(frozen=True)
class LoopResult:
    before: LoopFigures
    tuned: TuneOutcome
    after: LoopFigures


async def measure_loop(
    graph: str,
    *,
    runs: int,
    deadline_s: float,
    work_dir: Path,
    first_seed: int = 1000,
) -> LoopResult:
    """Default-profile runs, tune on them, tuned-profile runs on fresh seeds."""
    before_dir, after_dir = work_dir / "before", work_dir / "after"
    seeds = range(first_seed, first_seed + runs)
    before_files = await traced_runs(graph, seeds, deadline_s=deadline_s, traces_dir=before_dir)
    output = work_dir / f"{graph_key(graph)}.tuned.toml"
    tuned = tune(before_files, graph, output)
    assert tuned.profile_path is not None and tuned.models_path is not None
    after_seeds = range(first_seed + runs, first_seed + 2 * runs)
    after_files = await traced_runs(
        graph, after_seeds, deadline_s=deadline_s, traces_dir=after_dir,
        profile=tuned.profile_path, calibration=tuned.models_path,
    )  # fmt: skip
    return LoopResult(figures(before_files), tuned, figures(after_files))
