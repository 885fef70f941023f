"""``python -m benchmarks NAME [--quick]``: run one benchmark against the live pool,
write its JSON under ``benchmarks/results/``, its plot and table into the docs.

The benchmarks themselves live one per module and are listed in
:mod:`benchmarks.catalog`; this module only opens the pool, times the run
and writes what it measured.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from agentrt.core._clock import MonotonicClock
from agentrt.core._errors import ConfigurationError
from agentrt.pool._local import pool_endpoints
from agentrt.pool._pool import EndpointPool
from benchmarks.catalog import CATALOG
from benchmarks.registry import BenchContext
from benchmarks.results import BenchResult, environment, load_now
from benchmarks.tables import render_section, replace_section

__all__ = ["BENCHMARKS", "DOCS_FILE", "RESULTS_DIR", "bench_command", "document_result"]

BENCHMARKS = tuple(CATALOG)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
"""This checkout's ``benchmarks/results/``, whatever the working directory."""

DOCS_FILE = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
"""This checkout's ``docs/BENCHMARKS.md``; the plots go beside it."""


async def bench_command(
    name: str,
    *,
    quick: bool,
    console: Console,
    output_dir: Path = RESULTS_DIR,
    docs: Path = DOCS_FILE,
    tasks: str | Path = "addition",
    seed: int = 0,
    count: int | None = None,
) -> BenchResult:
    """Run benchmark ``name`` on the configured pool (else the local one), write
    ``output_dir/NAME[-quick].json``, a PNG next to ``docs`` and its section there.
    ``count`` overrides the number of scored tasks where a benchmark has tasks."""
    benchmark = CATALOG.get(name)
    if benchmark is None:
        raise ConfigurationError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    clock = MonotonicClock()
    started = datetime.now(UTC)
    t0 = clock.now()
    plain, spec = benchmark.pool
    async with (
        pool_endpoints(plain=plain, spec=spec, announce=console.print) as specs,
        EndpointPool(specs) as pool,
    ):
        model = next((e.served_model for e in pool.endpoints if e.served_model), None) or "unknown"
        env = environment([f"{e.spec.group} {e.spec.url}" for e in pool.endpoints], model)
        ctx = BenchContext(pool=pool, quick=quick, seed=seed, tasks=tasks, count=count,
                           console=console)  # fmt: skip
        console.print(f"bench {name}{' --quick' if quick else ''}: groups {ctx.groups}, "
                      f"seed {seed}")  # fmt: skip
        measured = await benchmark.measure(ctx)
    env = env.model_copy(update={"load_avg_end": load_now()})
    result = BenchResult(
        benchmark=name, quick=quick, seed=seed, started_at=started.isoformat(timespec="seconds"),
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        duration_s=round(clock.now() - t0, 1), environment=env,
        parameters=measured.parameters, rows=measured.rows, summary=measured.summary,
    )  # fmt: skip
    path = result.write(output_dir)
    console.print(f"wrote {path}")
    document_result(result, docs, console)
    return result


def document_result(result: BenchResult, docs: Path, console: Console) -> None:
    """Write ``result``'s plot next to ``docs`` and its generated section into it."""
    benchmark = CATALOG[result.benchmark]
    png: Path | None = None
    if benchmark.plot is not None:
        png = docs.parent / f"bench-{result.benchmark}{'-quick' if result.quick else ''}.png"
        env = result.environment
        title = (f"{result.benchmark}, seed {result.seed}, {env.model}, {env.machine}, "
                 f"load {env.load_avg_start}")  # fmt: skip
        benchmark.plot(result.rows, png, title)
    section = render_section(result, benchmark.tables(result), png.name if png else None)
    text = docs.read_text(encoding="utf-8") if docs.exists() else "# Benchmarks\n"
    docs.write_text(replace_section(text, section), encoding="utf-8")
    console.print(f"updated {docs}" + (f" and {png}" if png else ""))
