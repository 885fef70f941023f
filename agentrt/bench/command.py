"""``agentrt bench NAME [--quick]``: run one benchmark against the live pool, write
its JSON under ``benchmarks/results/``, its plot and table into the docs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from agentrt.bench.branches import BranchesPlan, branch_rows, run_branches, speedup_by_n
from agentrt.bench.configs import ConfigsPlan, config_rows, router_curve, run_configs
from agentrt.bench.frontier import FrontierPlan, fit_length, frontier_rows, run_frontier
from agentrt.bench.oracle import score
from agentrt.bench.overhead import OverheadPlan, overhead_summary, run_overhead
from agentrt.bench.peer import GRAPH, PeerPlan, run_peer
from agentrt.bench.plots import plot_branches, plot_frontier
from agentrt.bench.results import BenchResult, environment, load_now
from agentrt.bench.tables import markdown_table, render_section, replace_section
from agentrt.clock import MonotonicClock
from agentrt.errors import ConfigurationError
from agentrt.pool.local import pool_endpoints
from agentrt.pool.pool import EndpointPool
from agentrt.tasks import suite
from agentrt.tts.calibrate import load_latency_models
from agentrt.tts.length import LengthModel

__all__ = ["BENCHMARKS", "bench_command", "document_result"]

BENCHMARKS = ("branches", "frontier", "configs", "overhead", "peer")
CALIBRATION = Path("budgets/calibration/local-pool.toml")


async def bench_command(
    name: str,
    *,
    quick: bool,
    console: Console,
    output_dir: Path = Path("benchmarks/results"),
    docs: Path = Path("docs/BENCHMARKS.md"),
    tasks: str | Path = "addition",
    seed: int = 0,
    count: int | None = None,
) -> BenchResult:
    """Run benchmark ``name`` on the configured pool (else the local one), write
    ``output_dir/NAME[-quick].json``, a PNG next to ``docs`` and its section there.
    ``count`` overrides the number of scored tasks (``frontier``)."""
    if name not in BENCHMARKS:
        raise ConfigurationError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    clock = MonotonicClock()
    started = datetime.now(UTC)
    t0 = clock.now()
    async with (
        pool_endpoints(plain=1, spec=1, announce=console.print) as specs,
        EndpointPool(specs) as pool,
    ):
        model = next((e.served_model for e in pool.endpoints if e.served_model), None) or "unknown"
        env = environment([f"{e.spec.group} {e.spec.url}" for e in pool.endpoints], model)
        groups = sorted(pool.groups)
        console.print(f"bench {name}{' --quick' if quick else ''}: groups {groups}, seed {seed}")
        if name == "branches":
            plan = BranchesPlan.quick() if quick else BranchesPlan()
            measured = await run_branches(pool, plan, seed, groups)
            rows = branch_rows(measured)
            parameters: dict[str, Any] = {"ns": list(plan.ns), "tokens": plan.tokens,
                                          "repeats": plan.repeats}  # fmt: skip
            summary: dict[str, Any] = {"speedup": speedup_by_n(rows)}
        elif name == "configs":
            cplan = ConfigsPlan.quick() if quick else ConfigsPlan()
            if count is not None:
                cplan = replace(cplan, tasks=count)
            scored = suite(tasks, seed, cplan.tasks)
            latency = {g: m for g, m in load_latency_models(CALIBRATION).items() if g in groups}
            outcomes = await run_configs(pool, cplan, scored, latency, seed)
            rows = config_rows(outcomes)
            single = [o.tokens for o in outcomes if o.candidate.startswith("single/")]
            length = LengthModel.from_samples(max(1, t) for t in single)
            parameters = {"tasks": str(tasks), "count": cplan.tasks, "ns": list(cplan.ns),
                          "max_tokens": cplan.max_tokens, "slice_s": cplan.slice_s,
                          "lambdas_tokens": list(cplan.lambdas_tokens),
                          "lambdas_latency_s": list(cplan.lambdas_latency_s)}  # fmt: skip
            summary = {"router": router_curve(rows, cplan, latency, length, scored[0].prompt),
                       "outcomes": [o.__dict__ for o in outcomes]}  # fmt: skip
        elif name == "peer":
            pplan = PeerPlan.quick() if quick else PeerPlan()
            if count is not None:
                pplan = replace(pplan, tasks=count)
            suite_name = "multi-step" if str(tasks) == "addition" else tasks
            scored = suite(suite_name, seed, pplan.tasks)
            latency = {g: m for g, m in load_latency_models(CALIBRATION).items() if g in groups}
            outcomes = await run_peer(pool, pplan, scored, latency, seed)
            rows = [
                {"deadline_s": d, "runner": who, **{k: round(v, 3) for k, v in sc.items()}}
                for d in pplan.deadlines_s
                for who, sc in score(outcomes, d, pplan.margin_s).items()
            ]
            parameters = {"graph": GRAPH, "tasks": str(suite_name), "count": pplan.tasks,
                          "deadlines_s": list(pplan.deadlines_s), "n": pplan.n,
                          "max_tokens": pplan.max_tokens, "margin_s": pplan.margin_s}  # fmt: skip
            summary = {"outcomes": [o.__dict__ for o in outcomes]}
        elif name == "overhead":
            oplan = OverheadPlan.quick() if quick else OverheadPlan()
            pairs = await run_overhead(pool, oplan, load_latency_models(CALIBRATION), seed)
            rows = [p.__dict__ for p in pairs]
            parameters = {"pairs": oplan.pairs, "max_tokens": oplan.max_tokens,
                          "warmup": oplan.warmup, "tracing": "jsonl exporter on",
                          "profile": "budgets/default.toml"}  # fmt: skip
            summary = overhead_summary(pairs)
        else:
            fplan = FrontierPlan.quick() if quick else FrontierPlan()
            if count is not None:
                fplan = replace(fplan, tasks=count)
            latency = load_latency_models(CALIBRATION)
            latency = {g: m for g, m in latency.items() if g in groups}
            warm = suite(tasks, seed + 1, fplan.warmup_tasks) if str(tasks) == "addition" else []
            scored = suite(tasks, seed, fplan.tasks)
            length = await fit_length(pool, warm or scored[: fplan.warmup_tasks],
                                      fplan.max_tokens, seed)  # fmt: skip
            outcomes = await run_frontier(pool, fplan, scored, latency=latency, length=length,
                                          seed=seed, progress=console.print)  # fmt: skip
            rows, bars = frontier_rows(outcomes, fplan)
            parameters = {
                "tasks": str(tasks), "count": fplan.tasks, "deadlines_s": list(fplan.deadlines_s),
                "ns": list(fplan.ns), "max_tokens": fplan.max_tokens, "margin_s": fplan.margin_s,
                "sla_quantile": fplan.sla_quantile, "lambda_tokens": fplan.lambda_tokens,
                "lambda_latency_s": fplan.lambda_latency_s, "calibration": str(CALIBRATION),
                "length_model_samples": list(length.samples),
            }  # fmt: skip
            summary = {"bars": bars, "outcomes": [o.__dict__ for o in outcomes]}
    env = env.model_copy(update={"load_avg_end": load_now()})
    result = BenchResult(
        benchmark=name, quick=quick, seed=seed, started_at=started.isoformat(timespec="seconds"),
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        duration_s=round(clock.now() - t0, 1), environment=env, parameters=parameters,
        rows=rows, summary=summary,
    )  # fmt: skip
    path = result.write(output_dir)
    console.print(f"wrote {path}")
    document_result(result, docs, console)
    return result


def document_result(result: BenchResult, docs: Path, console: Console) -> None:
    """Write ``result``'s plot next to ``docs`` and its generated section into it."""
    stem = f"bench-{result.benchmark}{'-quick' if result.quick else ''}"
    title = (f"{result.benchmark}, seed {result.seed}, {result.environment.model}, "
             f"{result.environment.machine}, load {result.environment.load_avg_start}")  # fmt: skip
    png: Path | None = docs.parent / f"{stem}.png"
    assert png is not None
    if result.benchmark == "branches":
        plot_branches(result.rows, png, title)
        tables = [
            ("per-token time, throughput and latency by N", markdown_table(result.rows)),
            ("speculative speedup by N", markdown_table(result.summary["speedup"])),
        ]
    elif result.benchmark == "configs":
        png = None
        tables = [("every static config, no deadline (paper 2's table)",
                   markdown_table(result.rows)),
                  ("the penalty router's pick as lambda_T (per token) and lambda_L (per s) move",
                   markdown_table(result.summary["router"]))]  # fmt: skip
    elif result.benchmark == "peer":
        png = None
        tables = [("graphs/math.py: agentrt vs plain LangGraph + langchain-openai",
                   markdown_table(result.rows))]  # fmt: skip
    elif result.benchmark == "overhead":
        png = None
        tables = [("agentrt's path vs a raw httpx stream, paired medians",
                   markdown_table([result.summary]))]  # fmt: skip
    else:
        plot_frontier(result.rows, png, title)
        tables = [("accuracy within the deadline (overrun = wrong) and share inside it",
                   markdown_table(result.rows)),
                  ("bars: agentrt vs the best static config in hindsight",
                   markdown_table(result.summary["bars"]))]  # fmt: skip
    section = render_section(result, tables, png.name if png else None)
    text = docs.read_text(encoding="utf-8") if docs.exists() else "# Benchmarks\n"
    docs.write_text(replace_section(text, section), encoding="utf-8")
    console.print(f"updated {docs}" + (f" and {png}" if png else ""))
