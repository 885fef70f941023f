"""``peer``: graphs/math.py run by agentrt against the same graph written in plain
LangGraph with ``langchain-openai`` on the same pool: a fixed N via ``n=``, a
majority vote over the N generations, and LangGraph's ``TimeoutPolicy`` on the
LLM node for the deadline (each step gets the deadline over the expected
number of steps; LangGraph has no run-level deadline). A run that fails or
ends past the deadline plus the margin counts as wrong.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from agentrt.core._clock import MonotonicClock
from agentrt.pool._pool import EndpointPool
from agentrt.tasks import Task, answer_key, suite
from agentrt.tts._latency import LatencyModel
from benchmarks.oracle import Outcome, score
from benchmarks.registry import BenchContext, Benchmark, Measured, Tables
from benchmarks.results import BenchResult
from benchmarks.tables import markdown_table

__all__ = ["BENCHMARK", "PeerPlan", "peer_graph", "run_peer"]

GRAPH = "graphs/math.py:graph"
EXPECTED_STEPS = 3.0


@dataclass(frozen=True)
class PeerPlan:
    deadlines_s: tuple[float, ...] = (4.0, 8.0)
    tasks: int = 16
    n: int = 4
    max_tokens: int = 32
    margin_s: float = 0.1

    @classmethod
    def quick(cls) -> PeerPlan:
        return cls(tasks=4)


def peer_graph(
    base_url: str, model: str, n: int, max_tokens: int, step_timeout_s: float,
    api_key: str | None = None,
) -> Any:  # fmt: skip
    """The math graph in plain LangGraph + ChatOpenAI (imports the optional peer), with
    the server's key (the local pool's servers want one)."""
    from langchain_core.messages import HumanMessage
    from langchain_openai import ChatOpenAI
    from langgraph.graph import StateGraph
    from langgraph.types import TimeoutPolicy

    from agentrt.langgraph._loading import load_graph

    math = load_graph(GRAPH).module
    llm = ChatOpenAI(base_url=f"{base_url}/v1", api_key=api_key or "none", model=model, n=n,
                     temperature=0.7 if n > 1 else 0.0, max_tokens=max_tokens,
                     max_retries=0)  # fmt: skip

    async def solve(state: Any) -> dict[str, Any]:
        results = list(state.get("results", []))
        left = results[-1] if results else str(state["start"])
        op, right = state["operations"][len(results)]
        question = f"What is {left} {op} {right}? {math.ANSWER_FORMAT}"
        generated = await llm.agenerate([[HumanMessage(question)]])
        keys = [k.key for g in generated.generations[0] if (k := math.spec.extract(g.text))]
        results.append(Counter(keys).most_common(1)[0][0] if keys else "?")
        return {"results": results}

    builder = StateGraph(math.MathState)
    builder.add_node("decompose", math.decompose)
    builder.add_node("solve", solve, timeout=TimeoutPolicy(run_timeout=step_timeout_s))
    builder.add_node("combine", math.combine)
    builder.add_node("check", math.check)
    builder.add_edge("__start__", "decompose")
    builder.add_edge("decompose", "solve")
    builder.add_conditional_edges("solve", math.more_steps)
    builder.add_edge("combine", "check")
    builder.add_edge("check", "__end__")
    return builder.compile(name="math-peer")


async def run_peer(
    pool: EndpointPool, plan: PeerPlan, tasks: Sequence[Task],
    latency: Mapping[str, LatencyModel], seed: int,
) -> list[Outcome]:  # fmt: skip
    """agentrt and the peer on every task and deadline, in a seeded order."""
    import agentrt
    from agentrt.langgraph._loading import load_graph

    loaded = load_graph(GRAPH)
    runtime = agentrt.Runtime(pool=pool, latency=latency)
    endpoint = pool.choose("plain")
    clock = MonotonicClock()
    rng = random.Random(seed)
    outcomes = []
    for i, task in enumerate(tasks):
        jobs = [(who, d) for who in ("agentrt", f"langgraph n={plan.n}") for d in plan.deadlines_s]
        rng.shuffle(jobs)
        for who, d in jobs:
            started = clock.now()
            answer: str | None = None
            note: str | None = None
            try:
                if who == "agentrt":
                    result = await runtime.run(
                        loaded.graph, loaded.module.input_for(task), deadline=d,
                        graph_path=GRAPH, profile=loaded.module.PROFILE,
                        run_seed=seed * 10_007 + i,
                    )  # fmt: skip
                    answer = loaded.module.answer_of(result.state)
                else:
                    key = endpoint.spec.api_key
                    graph = peer_graph(endpoint.spec.url, endpoint.served_model or "",
                                       plan.n, plan.max_tokens, d / EXPECTED_STEPS,
                                       key.get_secret_value() if key else None)  # fmt: skip
                    state = await graph.ainvoke(loaded.module.input_for(task))
                    answer = loaded.module.answer_of(state)
            except Exception as exc:  # a failed run (NodeTimeoutError, HTTP error) is wrong
                answer, note = None, f"failed: {type(exc).__name__}"
            elapsed = clock.now() - started
            note = note or f"answer {answer!r}, expected {answer_key(task)!r}"
            outcomes.append(
                Outcome(who, i, answer == answer_key(task), elapsed, deadline_s=d, config=note)
            )
    return outcomes


async def _measure(ctx: BenchContext) -> Measured:
    plan = PeerPlan.quick() if ctx.quick else PeerPlan()
    if ctx.count is not None:
        plan = replace(plan, tasks=ctx.count)
    suite_name = "multi-step" if str(ctx.tasks) == "addition" else ctx.tasks
    scored = suite(suite_name, ctx.seed, plan.tasks)
    outcomes = await run_peer(ctx.pool, plan, scored, ctx.latency_models(), ctx.seed)
    rows = [
        {"deadline_s": d, "runner": who, **{k: round(v, 3) for k, v in sc.items()}}
        for d in plan.deadlines_s
        for who, sc in score(outcomes, d, plan.margin_s).items()
    ]
    parameters = {"graph": GRAPH, "tasks": str(suite_name), "count": plan.tasks,
                  "deadlines_s": list(plan.deadlines_s), "n": plan.n,
                  "max_tokens": plan.max_tokens, "margin_s": plan.margin_s}  # fmt: skip
    return Measured(parameters, rows, {"outcomes": [o.__dict__ for o in outcomes]})


def _tables(result: BenchResult) -> Tables:
    return [("graphs/math.py: agentrt vs plain LangGraph + langchain-openai",
             markdown_table(result.rows))]  # fmt: skip


BENCHMARK = Benchmark(
    "peer", "graphs/math.py: agentrt vs plain LangGraph + langchain-openai with TimeoutPolicy",
    _measure, _tables,
)  # fmt: skip
