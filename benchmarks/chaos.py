"""``chaos``: hundreds of graph runs under random faults, audited.

Every endpoint of the pool is put behind a :class:`~benchmarks.faults.FaultProxy`
and a seeded schedule switches faults on and off on each proxy while the runs
go on: added latency, a stall that later resumes, connections cut a few
hundred bytes into the response, every open connection reset at once, and
bursts of 503s. The three graphs (math, map-reduce, calculator) run seeded
tasks under deadlines drawn from 2-8 s, ``concurrency`` at a time, traced to
JSONL in a temporary folder. The result says how many runs ended inside
their deadline (and the margin), the overshoot quantiles, and the audits of
:mod:`benchmarks.audit`: answers lost, answers not carried into the
state, spans lost or left open, and exceptions that escaped ``agentrt.run``
(all must be 0).
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agentrt.core._clock import Clock, MonotonicClock
from agentrt.langgraph._loading import LoadedGraph, load_graph
from agentrt.langgraph._runner import RunEvent, RunObserver, RunResult
from agentrt.langgraph._runtime import Runtime
from agentrt.pool._endpoint import EndpointSpec
from agentrt.pool._pool import EndpointPool
from agentrt.tasks import Task, suite
from agentrt.tracing._setup import (
    TracingSettings,
    configure_tracing,
    current_tracing,
    flush_traces_async,
)
from agentrt.tts._latency import LatencyModel
from benchmarks.audit import (
    AnswerAudit,
    CallEntry,
    RunLedger,
    SpanAudit,
    audit_answers,
    audit_spans,
    deadline_stats,
    spans_by_trace,
    trace_of_runs,
)
from benchmarks.faults import FaultProxy
from benchmarks.registry import BenchContext, Benchmark, Measured, Tables
from benchmarks.results import BenchResult
from benchmarks.tables import markdown_table

__all__ = [
    "BENCHMARK",
    "FAULT_KINDS",
    "ChaosPlan",
    "ChaosRun",
    "Fault",
    "chaos_rows",
    "fault_schedule",
    "faults_during",
    "ledger_of",
    "read_trace_dir",
    "run_chaos",
    "timeline",
]

GRAPHS = ("graphs/math.py:graph", "graphs/mapreduce.py:graph", "graphs/calculator.py:graph")
FAULT_KINDS = ("delay", "stall", "cut", "reset", "reject")
"""``delay``: each request waits ``amount`` s before going upstream; ``stall``: no
bytes either way until the fault ends; ``cut``: each connection is closed after
``amount`` more response bytes; ``reset``: every open connection is aborted at
once (no duration); ``reject``: every request is answered HTTP ``amount`` (503)."""


@dataclass(frozen=True)
class ChaosPlan:
    runs: int = 240
    concurrency: int = 8
    deadline_min_s: float = 2.0
    deadline_max_s: float = 8.0
    margin_s: float = 0.05
    mean_gap_s: float = 2.0
    """Mean healthy time between two faults on one proxy (exponential)."""
    graphs: tuple[str, ...] = GRAPHS

    @classmethod
    def quick(cls) -> ChaosPlan:
        return cls(runs=40)


@dataclass(frozen=True)
class Fault:
    """One fault on one proxy, from ``at_s`` (seconds after the start) for ``duration_s``."""

    at_s: float
    proxy: int
    kind: str
    duration_s: float
    amount: float = 0.0


def _fault(rng: random.Random, at_s: float, proxy: int, kinds: Sequence[str]) -> Fault:
    kind = rng.choice(list(kinds))
    if kind == "reset":
        return Fault(at_s, proxy, kind, 0.0)
    duration = round(rng.uniform(0.5, 4.0), 3)
    amount = {
        "delay": round(rng.uniform(0.1, 1.0), 3),
        "stall": 0.0,
        "cut": float(rng.randint(300, 6000)),
        "reject": 503.0,
    }[kind]
    return Fault(at_s, proxy, kind, duration, amount)


def fault_schedule(
    seed: int,
    proxies: int,
    horizon_s: float,
    *,
    mean_gap_s: float = 2.0,
    kinds: Sequence[str] = FAULT_KINDS,
) -> list[Fault]:
    """A seeded schedule of faults up to ``horizon_s``: on each proxy one fault at
    a time, separated by exponential healthy gaps of mean ``mean_gap_s`` (pure)."""
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; known: {list(FAULT_KINDS)}")
    faults: list[Fault] = []
    for proxy in range(proxies):
        rng = random.Random(seed * 1_000_003 + proxy)
        at = rng.uniform(0.0, mean_gap_s)
        while at < horizon_s:
            fault = _fault(rng, round(at, 3), proxy, kinds)
            faults.append(fault)
            at += fault.duration_s + rng.expovariate(1.0 / mean_gap_s)
    return sorted(faults, key=lambda f: (f.at_s, f.proxy))


def timeline(faults: Sequence[Fault]) -> list[tuple[float, bool, Fault]]:
    """``(at_s, switch_on, fault)`` for every fault's start and end, in time
    order; at one instant ends come before starts (pure)."""
    events = [(f.at_s, True, f) for f in faults]
    events += [(f.at_s + f.duration_s, False, f) for f in faults if f.duration_s > 0]
    return sorted(events, key=lambda e: (e[0], e[1], e[2].proxy))


def faults_during(faults: Sequence[Fault], start_s: float, end_s: float) -> set[str]:
    """The kinds of fault active at some instant in ``[start_s, end_s]`` (pure)."""
    return {f.kind for f in faults if f.at_s <= end_s and f.at_s + f.duration_s >= start_s}


def _switch(proxy: FaultProxy, fault: Fault, on: bool) -> None:
    if fault.kind == "delay":
        proxy.delay_s = fault.amount if on else 0.0
    elif fault.kind == "stall":
        if on:
            proxy.stall()
        else:
            proxy.resume()
    elif fault.kind == "cut":
        if on:
            proxy.cut_after(int(fault.amount))
        else:
            proxy.cut_after_bytes = None
    elif fault.kind == "reset":
        proxy.cut()
    else:
        proxy.reject_status = int(fault.amount) if on else None


async def _inject(faults: Sequence[Fault], proxies: Sequence[FaultProxy], clock: Clock) -> None:
    started = clock.now()
    for at_s, on, fault in timeline(faults):
        await clock.sleep(max(0.0, started + at_s - clock.now()))
        _switch(proxies[fault.proxy], fault, on)


@dataclass(frozen=True)
class ChaosRun:
    """One run of the chaos benchmark: what it was and how it ended."""

    ledger: RunLedger
    started_s: float
    """Seconds after the first run started."""
    task: int
    faults: tuple[str, ...]
    reason: str | None
    started_at: float = 0.0
    """When it started on the benchmark's monotonic clock (``time.monotonic``)."""


def ledger_of(
    number: int, graph: str, deadline_s: float, elapsed_s: float,
    result: RunResult | None, events: Sequence[RunEvent], raised: BaseException | None,
) -> RunLedger:  # fmt: skip
    """The audit's view of one run (pure): its calls, node tasks seen, writes."""
    started = sum(1 for e in events if e.kind == "node_started")
    if result is None:
        what = f"{type(raised).__name__}: {raised}"[:300] if raised else "no result"
        return RunLedger(number, graph, deadline_s, elapsed_s, raised=what,
                         nodes_started=started)  # fmt: skip
    calls = tuple(
        CallEntry(c.allocation.index, c.allocation.visit,
                  None if c.result.answer is None else c.result.answer.key)
        for c in result.calls
    )  # fmt: skip
    finished = [
        f"{e.node}:{e.task_id}" for e in events if e.kind == "node_finished" and not e.error
    ]
    writes = tuple(
        (visit, write) for visit, (_, write) in zip(finished, result.finished_tasks, strict=False)
    )
    return RunLedger(
        number, graph, deadline_s, elapsed_s, degraded=result.degraded,
        trace_id=result.trace_id, calls=calls, nodes_started=started, writes=writes,
    )  # fmt: skip


def read_trace_dir(directory: Path) -> list[dict[str, Any]]:
    """Every span record in the JSONL files under ``directory``."""
    spans = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                spans.append(json.loads(line))
    return spans


@dataclass(frozen=True)
class _Job:
    number: int
    loaded: LoadedGraph
    task_index: int
    task: Task
    deadline_s: float


def _jobs(plan: ChaosPlan, seed: int) -> list[_Job]:
    rng = random.Random(seed)
    loaded = [load_graph(g) for g in plan.graphs]
    per_graph = -(-plan.runs // len(loaded))
    tasks = [suite(str(g.module.TASK_SUITE), seed, per_graph) for g in loaded]
    jobs = []
    for number in range(plan.runs):
        g = number % len(loaded)
        deadline = round(rng.uniform(plan.deadline_min_s, plan.deadline_max_s), 1)
        index = number // len(loaded)
        jobs.append(_Job(number, loaded[g], index, tasks[g][index], deadline))
    return jobs


async def _one(
    job: _Job, runtime: Runtime, seed: int, clock: Clock, origin: float,
) -> tuple[RunLedger, float, str | None]:  # fmt: skip
    events: list[RunEvent] = []
    result: RunResult | None = None
    raised: BaseException | None = None
    started = clock.now()
    try:
        result = await runtime.run(
            job.loaded.graph, job.loaded.module.input_for(job.task), deadline=job.deadline_s,
            graph_path=job.loaded.path, profile=job.loaded.optional("PROFILE"),
            run_seed=seed * 10_007 + job.number,
            observer=RunObserver(on_event=events.append, task_seed=job.number),
        )  # fmt: skip
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        raised = exc
    except Exception as exc:  # an escaped exception is a finding, not a crash
        raised = exc
    elapsed = clock.now() - started
    ledger = ledger_of(job.number, job.loaded.name, job.deadline_s, elapsed, result, events,
                       raised)  # fmt: skip
    reason = result.reason if result is not None else f"raised {raised!r}"[:200]
    return ledger, started - origin, reason


async def run_chaos(
    specs: Sequence[EndpointSpec], plan: ChaosPlan, latency: Mapping[str, LatencyModel],
    seed: int, traces_dir: Path,
) -> tuple[list[ChaosRun], list[Fault], list[dict[str, Any]]]:  # fmt: skip
    """Run the plan against ``specs`` behind fault proxies; returns the runs, the
    fault schedule and every span exported (tracing to ``traces_dir``)."""
    clock = MonotonicClock()
    jobs = _jobs(plan, seed)
    mean_deadline = (plan.deadline_min_s + plan.deadline_max_s) / 2
    horizon = 2 * plan.runs * mean_deadline / plan.concurrency + 30
    previous = current_tracing()
    tracing = configure_tracing(TracingSettings(exporters=("jsonl",), traces_dir=traces_dir))
    proxies = [FaultProxy(*spec.address) for spec in specs]
    done: list[tuple[RunLedger, float, str | None]] = []
    try:
        for proxy in proxies:
            await proxy.__aenter__()
        faults = fault_schedule(seed, len(proxies), horizon, mean_gap_s=plan.mean_gap_s)
        proxied = [s.model_copy(update={"url": p.url}) for s, p in zip(specs, proxies, strict=True)]
        async with EndpointPool(proxied) as pool:
            runtime = Runtime(pool=pool, latency=latency)
            queue: asyncio.Queue[_Job] = asyncio.Queue()
            for job in jobs:
                queue.put_nowait(job)
            origin = clock.now()
            injector = asyncio.create_task(_inject(faults, proxies, clock))

            async def worker() -> None:
                while not queue.empty():
                    done.append(await _one(queue.get_nowait(), runtime, seed, clock, origin))

            try:
                await asyncio.gather(*(worker() for _ in range(plan.concurrency)))
            finally:
                injector.cancel()
                await asyncio.gather(injector, return_exceptions=True)
            await runtime.settle(timeout_s=10.0)  # graphs cut at their deadline end their spans
        await flush_traces_async()
    finally:
        for proxy in proxies:
            await proxy.aclose()
        tracing.shutdown()
        if previous is not None:
            configure_tracing(previous.settings)
    runs = [
        ChaosRun(ledger, start, jobs[ledger.number].task_index,
                 tuple(sorted(faults_during(faults, start, start + ledger.elapsed_s))), reason,
                 started_at=origin + start)
        for ledger, start, reason in sorted(done, key=lambda d: d[0].number)
    ]  # fmt: skip
    return runs, faults, read_trace_dir(traces_dir)


def chaos_rows(
    runs: Sequence[ChaosRun], spans: Sequence[Mapping[str, Any]], margin_s: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows per graph (and all), and rows per fault kind active during a run (pure)."""
    traces = spans_by_trace(spans)
    by_number = trace_of_runs(traces)
    audits: dict[int, tuple[SpanAudit, AnswerAudit]] = {}
    for run in runs:
        ledger = run.ledger
        trace_id = ledger.trace_id or by_number.get(ledger.number)
        mine = traces.get(trace_id, []) if trace_id is not None else []
        audits[ledger.number] = (audit_spans(ledger, mine), audit_answers(ledger, mine))

    def row(key: str, label: str, group: Sequence[ChaosRun]) -> dict[str, Any]:
        stats = deadline_stats(((r.ledger.elapsed_s, r.ledger.deadline_s) for r in group),
                               margin_s)  # fmt: skip
        span = sum((audits[r.ledger.number][0] for r in group), SpanAudit())
        answer = sum((audits[r.ledger.number][1] for r in group), AnswerAudit())
        n = max(1, len(group))
        return {
            key: label,
            "runs": len(group),
            "inside": round(stats.inside, 3),
            f"inside +{margin_s * 1000:.0f} ms": round(stats.inside_margin, 3),
            "overshoot p50 ms": round(stats.overshoot_p50_ms, 1),
            "p99 ms": round(stats.overshoot_p99_ms, 1),
            "max ms": round(stats.overshoot_max_ms, 1),
            "degraded": round(sum(r.ledger.degraded for r in group) / n, 3),
            "answers": answer.produced,
            "answers lost": answer.lost,
            "answers late": answer.late,
            "not carried": answer.not_carried,
            "spans expected": span.expected,
            "spans lost": span.lost,
            "left open": span.left_open,
            "exceptions": sum(r.ledger.raised is not None for r in group),
        }

    graphs = sorted({r.ledger.graph for r in runs})
    by_graph = [row("graph", g, [r for r in runs if r.ledger.graph == g]) for g in graphs]
    by_graph.append(row("graph", "all", runs))
    by_fault = [
        row("fault during run", kind, [r for r in runs if kind in r.faults]) for kind in FAULT_KINDS
    ]
    by_fault.append(row("fault during run", "none", [r for r in runs if not r.faults]))
    return by_graph, by_fault


async def _measure(ctx: BenchContext) -> Measured:
    plan = ChaosPlan.quick() if ctx.quick else ChaosPlan()
    if ctx.count is not None:
        plan = replace(plan, runs=ctx.count)
    specs = [e.spec for e in ctx.pool.endpoints]
    with tempfile.TemporaryDirectory(prefix="agentrt-chaos-") as tmp:
        runs, faults, spans = await run_chaos(specs, plan, ctx.latency_models(), ctx.seed,
                                              Path(tmp))  # fmt: skip
    by_graph, by_fault = chaos_rows(runs, spans, plan.margin_s)
    parameters = {
        "graphs": list(plan.graphs), "count": plan.runs, "concurrency": plan.concurrency,
        "deadlines_s": [plan.deadline_min_s, plan.deadline_max_s], "margin_s": plan.margin_s,
        "mean_gap_s": plan.mean_gap_s, "endpoints": len(specs), "faults": len(faults),
        "fault_kinds": list(FAULT_KINDS),
    }  # fmt: skip
    rows = [{"table": "graph", **r} for r in by_graph] + [{"table": "fault", **r} for r in by_fault]
    summary = {
        "all": by_graph[-1],
        "faults": [f.__dict__ for f in faults if f.at_s <= max(
            (r.started_s + r.ledger.elapsed_s for r in runs), default=0.0)],
        "runs": [
            {"number": r.ledger.number, "graph": r.ledger.graph, "task": r.task,
             "deadline_s": r.ledger.deadline_s, "elapsed_s": round(r.ledger.elapsed_s, 4),
             "started_s": round(r.started_s, 3), "degraded": r.ledger.degraded,
             "raised": r.ledger.raised, "calls": len(r.ledger.calls),
             "faults": list(r.faults), "reason": r.reason}
            for r in runs
        ],
    }  # fmt: skip
    return Measured(parameters, rows, summary)


def _tables(result: BenchResult) -> Tables:
    def strip(table: str) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "table"} for r in result.rows
                if r.get("table") == table]  # fmt: skip

    by_graph = strip("graph")
    by_fault = [{k: v for k, v in r.items() if not k.startswith("spans") and k != "left open"}
                for r in strip("fault")]  # fmt: skip
    return [
        ("Runs under random faults, by graph (answers lost, spans lost, exceptions must be 0)",
         markdown_table(by_graph)),
        ("The same runs by the fault active at some point during the run (a run can count "
         "under several)", markdown_table(by_fault)),
    ]  # fmt: skip


BENCHMARK = Benchmark(
    "chaos",
    "math, map-reduce and calculator graphs under seeded random faults on every endpoint",
    _measure,
    _tables,
    pool=(2, 1),
)
