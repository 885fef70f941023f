"""``overhead``: agentrt's whole path for one call (budget manager allocate,
planner, anytime executor, tracing on) against a raw httpx streaming call of
the same request on the same server, in interleaved pairs. The raw call is the
least a user's own client does: stream, decode each chunk, keep the text.

Wall-clock differences on a shared 2-core machine are noisy, so each pair also
records the CPU time the client process spent (``time.process_time``): that is
the part agentrt adds that does not depend on the server.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from agentrt.budget._manager import BudgetManager
from agentrt.budget._profile import load_profile
from agentrt.budget._topology import GraphTopology
from agentrt.core._clock import MonotonicClock
from agentrt.core._deadline import Deadline
from agentrt.pool._endpoint import PLAIN_GROUP
from agentrt.pool._pool import EndpointPool
from agentrt.pool._protocol import ChatRequest
from agentrt.tracing import ChatSpans
from agentrt.tracing._setup import TracingSettings, configure_tracing, shutdown_tracing
from agentrt.tts._executor import CallModels, TTSExecutor
from agentrt.tts._latency import LatencyModel
from agentrt.tts._planner import SearchSpace
from benchmarks.registry import BenchContext, Benchmark, Measured, Tables
from benchmarks.results import BenchResult
from benchmarks.tables import markdown_table

__all__ = ["BENCHMARK", "OverheadPlan", "Pair", "overhead_summary", "run_overhead"]

PROMPT = "List the first ten prime numbers, separated by commas."


@dataclass(frozen=True)
class OverheadPlan:
    pairs: int = 60
    max_tokens: int = 32
    warmup: int = 3

    @classmethod
    def quick(cls) -> OverheadPlan:
        return cls(pairs=15)


@dataclass(frozen=True)
class Pair:
    """One interleaved pair: wall and client-CPU seconds of each path, tokens of each."""

    agentrt_s: float
    raw_s: float
    agentrt_cpu_s: float
    raw_cpu_s: float
    agentrt_tokens: int
    raw_tokens: int
    agentrt_first: bool


async def _raw(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> int:
    """The least a user's own client does: stream, decode each chunk, keep the text."""
    tokens = 0
    text: list[str] = []
    async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or ():
                text.append((choice.get("delta") or {}).get("content") or "")
            if chunk.get("usage"):
                tokens = int(chunk["usage"]["completion_tokens"])
    return tokens


async def run_overhead(
    pool: EndpointPool, plan: OverheadPlan, latency: Mapping[str, LatencyModel], seed: int
) -> list[Pair]:
    """``plan.pairs`` pairs, alternating which path goes first; tracing to a temp dir."""
    endpoint = pool.choose(PLAIN_GROUP)
    # Both paths on the same one server: the pool's routing (and hedging) would
    # otherwise compare two servers, not two clients.
    async with EndpointPool([endpoint.spec]) as one_server:
        return await _pairs(one_server, endpoint.spec.url, endpoint.served_model or "", plan,
                            latency, seed)  # fmt: skip


async def _pairs(
    pool: EndpointPool, url: str, model: str, plan: OverheadPlan,
    latency: Mapping[str, LatencyModel], seed: int,
) -> list[Pair]:  # fmt: skip
    clock = MonotonicClock()
    profile = load_profile("budgets/default.toml")
    space = SearchSpace(strategies=("single",), groups=(PLAIN_GROUP,),
                        max_tokens_choices=(plan.max_tokens,))  # fmt: skip
    models = CallModels(latency={PLAIN_GROUP: latency[PLAIN_GROUP]})
    messages = [{"role": "user", "content": PROMPT}]
    pairs: list[Pair] = []
    with tempfile.TemporaryDirectory() as traces:
        configure_tracing(TracingSettings(exporters=("jsonl",), traces_dir=Path(traces)))
        try:
            key = pool.endpoints[0].spec.api_key  # the local pool's servers want its key
            auth = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}
            async with httpx.AsyncClient(timeout=60.0, headers=auth) as http:
                for i in range(plan.warmup + plan.pairs):
                    run_seed = seed * 10_007 + i
                    # The request the executor sends for this call (its first call's seed).
                    request = ChatRequest(
                        messages=messages, n=1, max_tokens=plan.max_tokens, temperature=0.0,
                        top_p=1.0, seed=run_seed * 1_000_003 + 1,
                    )  # fmt: skip
                    body = request.payload(model, stream=True, vllm=True)

                    async def agentrt_call(run_seed: int = run_seed) -> tuple[float, float, int]:
                        t, c = clock.now(), time.process_time()
                        manager = BudgetManager(Deadline.after(30.0, clock=clock), profile,
                                                GraphTopology.chain(["call"]))  # fmt: skip
                        manager.node_started("call")
                        allocation = manager.allocate("call")
                        executor = TTSExecutor(pool, models=models, space=space, run_seed=run_seed,
                                               clock=clock, observer=ChatSpans())  # fmt: skip
                        result = await executor.run(messages, deadline=allocation.deadline)
                        manager.call_finished(allocation)
                        manager.node_finished("call")
                        return clock.now() - t, time.process_time() - c, result.completion_tokens

                    async def raw_call(body: dict[str, Any] = body) -> tuple[float, float, int]:
                        t, c = clock.now(), time.process_time()
                        tokens = await _raw(http, url, body)
                        return clock.now() - t, time.process_time() - c, tokens

                    first = i % 2 == 0
                    if first:
                        a, r = await agentrt_call(), await raw_call()
                    else:
                        r, a = await raw_call(), await agentrt_call()
                    if i >= plan.warmup:
                        pairs.append(Pair(a[0], r[0], a[1], r[1], a[2], r[2], first))
        finally:
            shutdown_tracing()
    return pairs


def overhead_summary(pairs: Sequence[Pair]) -> dict[str, Any]:
    """Medians of the paired differences and ratios, and the bars (≤ 2 ms, ≤ 3%)."""
    added_ms = statistics.median((p.agentrt_s - p.raw_s) * 1000 for p in pairs)
    ratio = statistics.median(p.agentrt_s / p.raw_s for p in pairs if p.raw_s > 0)
    cpu_ms = statistics.median((p.agentrt_cpu_s - p.raw_cpu_s) * 1000 for p in pairs)
    raw_ms = statistics.median(p.raw_s * 1000 for p in pairs)
    return {
        "pairs": len(pairs),
        "raw_median_ms": round(raw_ms, 1),
        "agentrt_median_ms": round(statistics.median(p.agentrt_s * 1000 for p in pairs), 1),
        "added_median_ms": round(added_ms, 2),
        "ratio_median": round(ratio, 4),
        "added_cpu_median_ms": round(cpu_ms, 2),
        "added_cpu_share": round(cpu_ms / raw_ms, 4) if raw_ms > 0 else None,
        "same_tokens": sum(p.agentrt_tokens == p.raw_tokens for p in pairs),
        "meets_2ms_bar": added_ms <= 2.0,
        "meets_3pct_bar": ratio <= 1.03,
    }


async def _measure(ctx: BenchContext) -> Measured:
    plan = OverheadPlan.quick() if ctx.quick else OverheadPlan()
    pairs = await run_overhead(ctx.pool, plan, ctx.latency_models(), ctx.seed)
    parameters = {"pairs": plan.pairs, "max_tokens": plan.max_tokens, "warmup": plan.warmup,
                  "tracing": "jsonl exporter on", "profile": "budgets/default.toml"}  # fmt: skip
    return Measured(parameters, [p.__dict__ for p in pairs], overhead_summary(pairs))


def _tables(result: BenchResult) -> Tables:
    return [("agentrt's path vs a raw httpx stream, paired medians",
             markdown_table([result.summary]))]  # fmt: skip


BENCHMARK = Benchmark(
    "overhead", "agentrt's path for one call vs a raw httpx stream on the same server",
    _measure, _tables,
)  # fmt: skip
