"""``branches``: per-token time, throughput and TTFT for N concurrent branches on
the plain and the speculative group, measured interleaved (N, then group, per
repeat), and the speculative speedup at each N (paper 1's competing knobs)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentrt.pool._endpoint import PLAIN_GROUP
from agentrt.pool._pool import EndpointPool
from agentrt.tts._calibrate import SHORT_PROMPT, Measurement, measure
from benchmarks.plots import plot_branches
from benchmarks.registry import BenchContext, Benchmark, Measured, Tables
from benchmarks.results import BenchResult
from benchmarks.tables import markdown_table

__all__ = ["BENCHMARK", "BranchesPlan", "branch_rows", "run_branches", "speedup_by_n"]


@dataclass(frozen=True)
class BranchesPlan:
    ns: tuple[int, ...] = (1, 2, 4, 8, 16)
    tokens: int = 128
    repeats: int = 3

    @classmethod
    def quick(cls) -> BranchesPlan:
        return cls(tokens=48, repeats=1)


async def run_branches(
    pool: EndpointPool, plan: BranchesPlan, seed: int, groups: Sequence[str]
) -> list[Measurement]:
    """Every (repeat, N, group) once, groups alternating so load drifts hit both."""
    for group in groups:  # warm-up: the first request on a server pays one-off costs
        await measure(pool, group, 1, tokens=8, prompt=SHORT_PROMPT, seed=seed)
    out: list[Measurement] = []
    for repeat in range(plan.repeats):
        for n in plan.ns:
            order = groups if (repeat + n) % 2 == 0 else list(reversed(groups))
            for group in order:
                out.append(
                    await measure(pool, group, n, tokens=plan.tokens, prompt=SHORT_PROMPT,
                                  seed=seed + repeat)
                )  # fmt: skip
    return out


def branch_rows(measurements: Sequence[Measurement]) -> list[dict[str, Any]]:
    """Per group and N: medians of per-token time, its ratio to N=1, aggregate
    throughput, TTFT, wall latency, acceptance."""
    rows: list[dict[str, Any]] = []
    for group in sorted({m.group for m in measurements}):
        at_group = [m for m in measurements if m.group == group]
        ns = sorted({m.n for m in at_group})
        base = statistics.median(m.per_token_s for m in at_group if m.n == ns[0])
        for n in ns:
            at = [m for m in at_group if m.n == n]
            per_token = statistics.median(m.per_token_s for m in at)
            rates = [r for m in at if (r := m.acceptance) is not None]
            rows.append({
                "group": group,
                "n": n,
                "per_token_ms": round(per_token * 1000, 2),
                "vs_n1": round(per_token / base, 2),
                "throughput_tok_s": round(statistics.median(m.throughput_tok_s for m in at), 1),
                "ttft_ms": round(statistics.median(m.ttft_s for m in at) * 1000, 1),
                "latency_s": round(statistics.median(m.wall_s for m in at), 3),
                "acceptance": round(statistics.median(rates), 3) if rates else None,
                "samples": len(at),
            })  # fmt: skip
    return rows


def speedup_by_n(rows: Sequence[dict[str, Any]], plain: str = PLAIN_GROUP) -> list[dict[str, Any]]:
    """Per other group and N: plain per-token time over that group's (> 1: faster)."""
    base = {r["n"]: r["per_token_ms"] for r in rows if r["group"] == plain}
    out = []
    for r in rows:
        if r["group"] != plain and r["n"] in base and r["per_token_ms"] > 0:
            out.append({
                "group": r["group"], "n": r["n"],
                "speedup": round(base[r["n"]] / r["per_token_ms"], 2),
                "latency_speedup": round(
                    next(p["latency_s"] for p in rows if p["group"] == plain and p["n"] == r["n"])
                    / r["latency_s"], 2) if r["latency_s"] > 0 else None,
            })  # fmt: skip
    return out


async def _measure(ctx: BenchContext) -> Measured:
    plan = BranchesPlan.quick() if ctx.quick else BranchesPlan()
    rows = branch_rows(await run_branches(ctx.pool, plan, ctx.seed, ctx.groups))
    return Measured(
        parameters={"ns": list(plan.ns), "tokens": plan.tokens, "repeats": plan.repeats},
        rows=rows,
        summary={"speedup": speedup_by_n(rows)},
    )


def _tables(result: BenchResult) -> Tables:
    return [
        ("per-token time, throughput and latency by N", markdown_table(result.rows)),
        ("speculative speedup by N", markdown_table(result.summary["speedup"])),
    ]


BENCHMARK = Benchmark(
    "branches", "per-token time, throughput and latency for N branches, plain vs speculative",
    _measure, _tables, plot=plot_branches,
)  # fmt: skip
