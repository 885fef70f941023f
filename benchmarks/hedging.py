"""``hedging``: tail latency under a straggling server, hedging off vs on, interleaved.

Two endpoints are two :class:`~benchmarks.faults.FaultProxy` in front of the
local plain servers (the first and the second, or the one twice). The first
one straggles: on a seeded ``straggle_fraction`` of calls it holds the request
``straggle_s`` before passing it on. Listed first and idle between calls, it
gets every call's primary request, so those calls straggle unless hedged.
Each call runs twice in a row, once with an executor that does not hedge and
once with one that does (default :class:`~agentrt.tts._hedging.HedgePolicy`),
alternating which goes first, on the same task, seed and straggle: a paired
comparison of p50/p95/p99/max latency, the share of calls hedged and the
tokens spent.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agentrt.core._errors import ConfigurationError
from agentrt.core._stats import quantile
from agentrt.pool._endpoint import PLAIN_GROUP, EndpointSpec
from agentrt.pool._pool import EndpointPool
from agentrt.tasks._arithmetic import single_step_addition
from agentrt.tracing import ChatSpans
from agentrt.tts._config import StrategyName, TTSConfig
from agentrt.tts._executor import CallModels, TTSExecutor
from agentrt.tts._hedging import HedgePolicy
from agentrt.tts._latency import LatencyModel
from agentrt.tts._result import Result
from benchmarks.faults import FaultProxy
from benchmarks.plots import pyplot, save_figure
from benchmarks.registry import BenchContext, Benchmark, Measured, Tables
from benchmarks.results import BenchResult
from benchmarks.tables import markdown_table

__all__ = [
    "BENCHMARK",
    "HedgingPlan",
    "mode_rows",
    "plot_hedging",
    "run_hedging",
    "straggle_schedule",
]

MODES = ("off", "on")


@dataclass(frozen=True)
class HedgingPlan:
    """``calls`` per mode; the straggler holds a ``straggle_fraction`` of requests
    ``straggle_s``; every call runs ``config`` within ``slice_s``."""

    calls: int = 250
    straggle_fraction: float = 0.04
    straggle_s: float = 2.0
    strategy: StrategyName = "majority"
    n: int = 4
    max_tokens: int = 16
    slice_s: float = 10.0
    warmup: int = 3

    @classmethod
    def quick(cls) -> HedgingPlan:
        return cls(calls=50)

    @property
    def config(self) -> TTSConfig:
        return TTSConfig(self.strategy, self.n, max_tokens=self.max_tokens, temperature=0.7)


def straggle_schedule(seed: int, calls: int, fraction: float) -> list[bool]:
    """Which calls the straggler holds back: a seeded draw per call."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigurationError(f"straggle_fraction must be in [0, 1], got {fraction!r}")
    rng = random.Random(f"hedging-{seed}")
    return [rng.random() < fraction for _ in range(calls)]


@dataclass(frozen=True)
class CallRecord:
    """One measured call of one mode."""

    index: int
    mode: str
    straggled: bool
    latency_s: float
    hedged: bool
    hedge_won: bool
    tokens: int
    degraded: bool
    correct: bool
    reason: str | None = None


def mode_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per mode: latency quantiles, hedge rate, tokens, and the straggled calls' median."""
    out = []
    for mode in MODES:
        at = [r for r in rows if r["mode"] == mode]
        if not at:
            continue
        latencies = [r["latency_s"] for r in at]
        straggled = [r["latency_s"] for r in at if r["straggled"]]
        tokens = sum(r["tokens"] for r in at)
        out.append({
            "hedging": mode,
            "calls": len(at),
            "p50_s": round(quantile(latencies, 0.50), 3),
            "p95_s": round(quantile(latencies, 0.95), 3),
            "p99_s": round(quantile(latencies, 0.99), 3),
            "max_s": round(max(latencies), 3),
            "mean_s": round(statistics.fmean(latencies), 3),
            "straggled": len(straggled),
            "straggled_median_s": round(statistics.median(straggled), 3) if straggled else None,
            "hedge_rate": round(sum(r["hedged"] for r in at) / len(at), 3),
            "hedged_straggled": sum(r["hedged"] for r in at if r["straggled"]),
            "hedges_won": sum(r["hedge_won"] for r in at),
            "tokens": tokens,
            "tokens_per_call": round(tokens / len(at), 1),
            "degraded": sum(r["degraded"] for r in at),
            "accuracy": round(sum(r["correct"] for r in at) / len(at), 3),
        })  # fmt: skip
    return out


def _two_plain(pool: EndpointPool) -> tuple[EndpointSpec, EndpointSpec]:
    plain = [e.spec for e in pool.endpoints if e.spec.group == PLAIN_GROUP and e.served_model]
    if not plain:
        raise ConfigurationError("the hedging benchmark needs a healthy plain endpoint")
    return plain[0], plain[1 % len(plain)]


async def run_hedging(
    pool: EndpointPool, plan: HedgingPlan, seed: int, latency: LatencyModel
) -> list[CallRecord]:
    """Every call in both modes, back to back, on a straggler + a healthy proxy."""
    first, second = _two_plain(pool)
    schedule = straggle_schedule(seed, plan.calls, plan.straggle_fraction)
    tasks = single_step_addition(seed, plan.warmup + plan.calls)
    models = CallModels(latency={PLAIN_GROUP: latency})
    records: list[CallRecord] = []
    async with (
        FaultProxy(*first.address) as straggler,
        FaultProxy(*second.address) as healthy,
        EndpointPool(
            [first.model_copy(update={"url": straggler.url}),
             second.model_copy(update={"url": healthy.url})],
            health_interval_s=0,
        ) as proxied,
    ):  # fmt: skip
        executors = {
            "off": TTSExecutor(
                proxied, models=models, run_seed=seed, hedge=None, observer=ChatSpans()
            ),
            "on": TTSExecutor(
                proxied, models=models, run_seed=seed, hedge=HedgePolicy(), observer=ChatSpans()
            ),
        }
        for task in tasks[: plan.warmup]:
            for executor in executors.values():
                await _call(executor, task.prompt, plan)
        for i, task in enumerate(tasks[plan.warmup :]):
            order = MODES if i % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                straggler.delay_s = plan.straggle_s if schedule[i] else 0.0
                try:
                    result = await _call(executors[mode], task.prompt, plan)
                finally:
                    straggler.delay_s = 0.0
                answer = result.answer.key if result.answer is not None else None
                records.append(
                    CallRecord(
                        index=i, mode=mode, straggled=schedule[i],
                        latency_s=round(result.latency_s, 4), hedged=result.hedged,
                        hedge_won=result.hedge_won, tokens=result.completion_tokens,
                        degraded=result.degraded, correct=answer == task.answer,
                        reason=result.degraded_reason,
                    )
                )  # fmt: skip
    return records


async def _call(executor: TTSExecutor, prompt: str, plan: HedgingPlan) -> Result:
    messages = [{"role": "user", "content": prompt}]
    return await executor.run(messages, slice_s=plan.slice_s, config=plan.config)


def plot_hedging(rows: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Latency CDF per mode, the tail (top 10% of calls) on the right."""
    plt = pyplot()
    fig, (whole, tail) = plt.subplots(1, 2, figsize=(10, 4))
    for mode in MODES:
        latencies = sorted(r["latency_s"] for r in rows if r["mode"] == mode)
        if not latencies:
            continue
        shares = [(i + 1) / len(latencies) for i in range(len(latencies))]
        label = f"hedging {mode}"
        whole.plot(latencies, shares, label=label, drawstyle="steps-post")
        tail.plot(latencies, shares, label=label, drawstyle="steps-post")
    whole.set_ylabel("share of calls done")
    tail.set_ylim(0.9, 1.001)
    for ax in (whole, tail):
        ax.set_xlabel("call latency (s)")
        ax.grid(True, alpha=0.3)
        ax.legend()
    tail.set_title("the tail", fontsize=9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


async def _measure(ctx: BenchContext) -> Measured:
    plan = HedgingPlan.quick() if ctx.quick else HedgingPlan()
    latency = ctx.latency_models()[PLAIN_GROUP]
    records = await run_hedging(ctx.pool, plan, ctx.seed, latency)
    rows = [asdict(r) for r in records]
    modes = {r["hedging"]: r for r in mode_rows(rows)}
    off, on = modes["off"], modes["on"]
    policy = HedgePolicy()
    return Measured(
        parameters={**asdict(plan), "policy": asdict(policy)},
        rows=rows,
        summary={
            "modes": list(modes.values()),
            "p99_off_over_on": round(off["p99_s"] / on["p99_s"], 2) if on["p99_s"] else None,
            "extra_tokens_pct": round(100 * (on["tokens"] / off["tokens"] - 1), 1)
            if off["tokens"]
            else None,
        },
    )


def _tables(result: BenchResult) -> Tables:
    p = result.parameters
    caption = (
        f"latency of {p['calls']} calls per mode ({p['strategy']} n={p['n']}, "
        f"max_tokens {p['max_tokens']}); the straggler holds {p['straggle_fraction']:.0%} of "
        f"requests {p['straggle_s']} s; hedge at p{p['policy']['trigger_quantile'] * 100:g}, "
        f"bucket {p['policy']['budget_ratio']:.0%} of calls, burst {p['policy']['burst']:g}"
    )
    summary = result.summary
    lines = (
        f"p99 off / on: {summary.get('p99_off_over_on')}; extra tokens with hedging: "
        f"{summary.get('extra_tokens_pct')}%\n"
    )
    return [(caption, markdown_table(mode_rows(result.rows))), ("hedging's price", lines)]


BENCHMARK = Benchmark(
    "hedging", "p50/p95/p99 latency under a straggling endpoint, hedging off vs on, interleaved",
    _measure, _tables, plot=plot_hedging, pool=(2, 0),
)  # fmt: skip
