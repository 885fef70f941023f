"""``load``: many concurrent graph runs with deadlines on one event loop.

At each level N, N workers each run ``graphs/math.py`` ``rounds`` times under
one deadline D, all on this process's event loop. Worker k starts its r-th
run at ``(r + k/N) * D``: starts are spread evenly, so about N runs are in
flight at any time rather than N starting in the same instant, and the
offered load is N runs per D whether runs use their whole deadline or
degrade early (back-to-back runs would start more runs the faster they
fail). A
sampler reads the event loop's lag, the process's resident memory, its
threads and open sockets every ``sample_s``, and every garbage collection's
pause. The process freezes what it loaded (``gc.freeze()``) before the first
level, as a service should after start-up. Per level: the share of runs
inside the deadline and inside it plus the margin, overshoot quantiles, runs
per second, the degraded share, the peak memory growth over the level's
start and per run in flight, the memory left after the level, the most
threads and sockets seen, and the answers-lost and spans-lost audits of
:mod:`benchmarks.audit`. Past what the pool can serve, runs degrade; they
must still end by their deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

from agentrt.core._clock import Clock, MonotonicClock
from agentrt.core._stats import quantile
from agentrt.langgraph._loading import LoadedGraph, load_graph
from agentrt.langgraph._runner import RunEvent, RunObserver, RunResult
from agentrt.langgraph._runtime import Runtime
from agentrt.tasks import suite
from agentrt.tracing._setup import (
    TracingSettings,
    configure_tracing,
    current_tracing,
    flush_traces_async,
)
from benchmarks.audit import (
    AnswerAudit,
    RunLedger,
    SpanAudit,
    audit_answers,
    audit_spans,
    deadline_stats,
    spans_by_trace,
    trace_of_runs,
)
from benchmarks.chaos import ledger_of, read_trace_dir
from benchmarks.registry import BenchContext, Benchmark, Measured, Tables
from benchmarks.results import BenchResult
from benchmarks.tables import markdown_table

__all__ = ["BENCHMARK", "LoadPlan", "Sample", "level_row", "open_sockets", "process_status"]

GRAPH = "graphs/math.py:graph"


@dataclass(frozen=True)
class LoadPlan:
    levels: tuple[int, ...] = (10, 50, 100, 200, 500)
    deadline_s: float = 4.0
    rounds: int = 3
    """Runs each worker makes back to back."""
    margin_s: float = 0.05
    sample_s: float = 0.05
    graph: str = GRAPH
    tracing: bool = True
    """JSONL tracing on, as ``agentrt run`` has it by default."""
    gc_freeze: bool = True
    """``gc.freeze()`` once the graph and pool are loaded, as a service running many
    runs should after start-up: collections then scan only what the runs made
    (a full collection of the loaded libraries stops the loop for ~0.1-0.4 s)."""

    @classmethod
    def quick(cls) -> LoadPlan:
        return cls(levels=(10, 50, 100), rounds=2)


@dataclass(frozen=True)
class Sample:
    """One reading of the process while a level runs."""

    lag_s: float
    rss_bytes: int
    threads: int
    sockets: int
    in_flight: int


def process_status() -> tuple[int, int]:
    """(resident bytes, OS threads) of this process."""
    process = psutil.Process()
    with process.oneshot():
        return process.memory_info().rss, process.num_threads()


def open_sockets() -> int:
    """Sockets this process holds open (``/proc/self/fd``; 0 where unreadable).

    Not ``psutil``: it has no socket-only fd count, and its ``net_connections()``
    also parses the host's ``/proc/net`` tables, ~49 ms against ~6 ms here for 400
    loopback TCP sockets (AMD EPYC, 2 cores), inside the sampler that measures the
    event loop's lag.
    """
    count = 0
    try:
        for name in os.listdir("/proc/self/fd"):
            try:
                count += os.readlink(f"/proc/self/fd/{name}").startswith("socket:")
            except OSError:
                continue
    except OSError:
        return 0
    return count


@dataclass
class _Level:
    samples: list[Sample] = field(default_factory=list)
    ledgers: list[RunLedger] = field(default_factory=list)
    answered: int = 0
    in_flight: int = 0
    gc_pauses: list[float] = field(default_factory=list)


@contextlib.contextmanager
def _gc_pauses(into: list[float], clock: Clock) -> Iterator[None]:
    """Record how long each garbage collection stops the process inside the block."""
    started: list[float] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[:] = [clock.now()]
        elif started:
            into.append(clock.now() - started[0])

    gc.callbacks.append(callback)
    try:
        yield
    finally:
        gc.callbacks.remove(callback)


async def _sample(level: _Level, clock: Clock, every_s: float) -> None:
    sockets = 0
    for count in itertools.count():
        before = clock.now()
        await clock.sleep(every_s)
        lag = max(0.0, clock.now() - before - every_s)
        rss, threads = process_status()
        if count % 5 == 0:  # listing the sockets costs a readlink per open file
            sockets = open_sockets()
        level.samples.append(Sample(lag, rss, threads, sockets, level.in_flight))


async def _worker(
    worker: int, level: _Level, plan: LoadPlan, loaded: LoadedGraph, runtime: Runtime,
    tasks: Sequence[Any], clock: Clock, seed: int, workers: int, origin: float,
) -> None:  # fmt: skip

    for r in range(plan.rounds):
        # Run r of this worker starts at its slot, whenever the last one ended:
        # N workers offer N runs per deadline, however fast runs degrade.
        await clock.sleep(max(0.0, origin + plan.deadline_s * (r + worker / workers) - clock.now()))
        number = worker * plan.rounds + r
        events: list[RunEvent] = []
        result: RunResult | None = None
        raised: BaseException | None = None
        level.in_flight += 1
        started = clock.now()
        try:
            result = await runtime.run(
                loaded.graph, loaded.module.input_for(tasks[number]), deadline=plan.deadline_s,
                graph_path=loaded.path, profile=loaded.optional("PROFILE"),
                run_seed=seed * 10_007 + number,
                observer=RunObserver(on_event=events.append, task_seed=number),
            )  # fmt: skip
        except Exception as exc:  # counted as an escaped exception
            raised = exc
        finally:
            level.in_flight -= 1
        elapsed = clock.now() - started
        level.ledgers.append(
            ledger_of(number, loaded.name, plan.deadline_s, elapsed, result, events, raised)
        )
        if result is not None and loaded.module.answer_of(result.state) is not None:
            level.answered += 1


def level_row(
    workers: int, ledgers: Sequence[RunLedger], samples: Sequence[Sample], *,
    wall_s: float, cpu_s: float, rss_before: int, rss_after: int, answered: int,
    margin_s: float, spans: SpanAudit, answers: AnswerAudit, gc_pauses: Sequence[float] = (),
) -> dict[str, Any]:  # fmt: skip
    """One level's row of the table (pure)."""
    stats = deadline_stats(((r.elapsed_s, r.deadline_s) for r in ledgers), margin_s)
    runs = max(1, len(ledgers))
    peak = max((s.rss_bytes for s in samples), default=rss_before)
    growth = max(0, peak - rss_before)
    mib = 1024 * 1024
    return {
        "concurrent": workers,
        "runs": len(ledgers),
        "inside": round(stats.inside, 3),
        f"inside +{margin_s * 1000:.0f} ms": round(stats.inside_margin, 3),
        "overshoot p50 ms": round(stats.overshoot_p50_ms, 1),
        "p99 ms": round(stats.overshoot_p99_ms, 1),
        "max ms": round(stats.overshoot_max_ms, 1),
        "loop lag p99 ms": round(1000 * quantile([s.lag_s for s in samples], 0.99, default=0.0), 1),
        "GC pause max ms": round(1000 * max(gc_pauses, default=0.0), 1),
        "runs/s": round(len(ledgers) / wall_s, 2) if wall_s > 0 else 0.0,
        "client CPU ms/run": round(1000 * cpu_s / runs, 1),
        "degraded": round(sum(r.degraded for r in ledgers) / runs, 3),
        "answered": round(answered / runs, 3),
        "calls/run": round(sum(len(r.calls) for r in ledgers) / runs, 2),
        "RSS start MiB": round(rss_before / mib, 1),
        "peak growth MiB": round(growth / mib, 1),
        "KiB per run in flight": round(growth / 1024 / max(1, workers), 1),
        "left after MiB": round((rss_after - rss_before) / mib, 1),
        "threads max": max((s.threads for s in samples), default=0),
        "sockets max": max((s.sockets for s in samples), default=0),
        "answers lost": answers.lost,
        "answers late": answers.late,
        "spans lost": spans.lost + spans.left_open,
        "exceptions": sum(r.raised is not None for r in ledgers),
    }


async def _level(
    workers: int, plan: LoadPlan, loaded: LoadedGraph, runtime: Runtime, seed: int,
    traces_dir: Path,
) -> tuple[dict[str, Any], list[str]]:  # fmt: skip
    clock = MonotonicClock()
    tasks = suite(str(loaded.module.TASK_SUITE), seed, workers * plan.rounds)
    gc.collect()
    rss_before, _ = process_status()
    level = _Level()
    sampler = asyncio.create_task(_sample(level, clock, plan.sample_s))
    started, cpu_started = clock.now(), time.process_time()
    try:
        with _gc_pauses(level.gc_pauses, clock):
            await asyncio.gather(*(
                _worker(w, level, plan, loaded, runtime, tasks, clock, seed, workers, started)
                for w in range(workers)
            ))  # fmt: skip
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    wall, cpu = clock.now() - started, time.process_time() - cpu_started
    await runtime.settle(timeout_s=10.0)  # graphs cut at their deadline end their spans
    await flush_traces_async()
    span_audit, answer_audit = SpanAudit(), AnswerAudit()
    if plan.tracing:
        traces = spans_by_trace(read_trace_dir(traces_dir))
        by_number = trace_of_runs(traces)
        for ledger in level.ledgers:
            trace_id = ledger.trace_id or by_number.get(ledger.number)
            mine = traces.get(trace_id, []) if trace_id is not None else []
            span_audit += audit_spans(ledger, mine)
            answer_audit += audit_answers(ledger, mine)
    gc.collect()
    rss_after, _ = process_status()
    row = level_row(
        workers, level.ledgers, level.samples, wall_s=wall, cpu_s=cpu, rss_before=rss_before,
        rss_after=rss_after, answered=level.answered, margin_s=plan.margin_s,
        spans=span_audit, answers=answer_audit, gc_pauses=level.gc_pauses,
    )  # fmt: skip
    raised = [r.raised for r in level.ledgers if r.raised is not None]
    return row, raised


async def _measure(ctx: BenchContext) -> Measured:
    plan = LoadPlan.quick() if ctx.quick else LoadPlan()
    if ctx.count is not None:
        plan = replace(plan, rounds=ctx.count)
    loaded = load_graph(plan.graph)
    # One runtime for every level, as one service would have: what it learns lasts.
    runtime = Runtime(pool=ctx.pool, latency=ctx.latency_models())
    rows: list[dict[str, Any]] = []
    exceptions: list[str] = []
    previous = current_tracing()
    if plan.gc_freeze:
        gc.collect()
        gc.freeze()
    try:
        for workers in plan.levels:
            with tempfile.TemporaryDirectory(prefix="agentrt-load-") as tmp:
                tracing = None
                if plan.tracing:
                    settings = TracingSettings(exporters=("jsonl",), traces_dir=Path(tmp))
                    tracing = configure_tracing(settings)
                try:
                    row, raised = await _level(workers, plan, loaded, runtime, ctx.seed,
                                               Path(tmp))  # fmt: skip
                finally:
                    if tracing is not None:
                        tracing.shutdown()
            ctx.console.print(f"load: {workers} concurrent: {row}")
            rows.append(row)
            exceptions.extend(f"{workers} concurrent: {r}" for r in raised[:10])
    finally:
        if plan.gc_freeze:
            gc.unfreeze()
        if previous is not None:
            configure_tracing(previous.settings)
    limits = {e.spec.url: e.spec.group for e in ctx.pool.endpoints}
    parameters = {
        "graph": plan.graph, "levels": list(plan.levels), "deadline_s": plan.deadline_s,
        "rounds": plan.rounds, "count": plan.rounds, "margin_s": plan.margin_s,
        "tracing": plan.tracing, "gc_freeze": plan.gc_freeze, "endpoints": limits,
        "sample_s": plan.sample_s,
    }  # fmt: skip
    return Measured(parameters, rows, {"exceptions": exceptions})


def _tables(result: BenchResult) -> Tables:
    first = result.rows[0] if result.rows else {}
    margin = [k for k in first if k.startswith("inside +")]
    late = ["answers late"] if "answers late" in first else []  # older results lack it
    deadline_cols = ["concurrent", "runs", "inside", *margin, "overshoot p50 ms", "p99 ms",
                     "max ms", "loop lag p99 ms", "GC pause max ms", "runs/s",
                     "client CPU ms/run", "degraded", "answered", "calls/run", "answers lost",
                     *late, "spans lost", "exceptions"]  # fmt: skip
    resource_cols = ["concurrent", "RSS start MiB", "peak growth MiB", "KiB per run in flight",
                     "left after MiB", "threads max", "sockets max"]  # fmt: skip
    return [
        (f"Concurrent runs of {result.parameters.get('graph')} under a "
         f"{result.parameters.get('deadline_s')} s deadline, one event loop",
         markdown_table(result.rows, deadline_cols)),
        ("Process resources at each level (memory growth over the level's start; "
         "left after: after the level, garbage collected)",
         markdown_table(result.rows, resource_cols)),
    ]  # fmt: skip


BENCHMARK = Benchmark(
    "load",
    "10 to 500 concurrent graphs/math.py runs under a 4 s deadline on one event loop",
    _measure,
    _tables,
    pool=(2, 1),
)
