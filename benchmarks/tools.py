"""``tools``: does voting over actions pay? The agent graph's first model call (which
tool, with which arguments) on its seeded tasks, scored by exact match against
the task's expected call, for a single greedy call, fixed-N majority voting and
agentrt's planner, each under the same deadline, interleaved task by task so
load drifts hit every method alike.

Every method goes through the public path a user takes:
``TTSChatModel(...).bind_tools(graphs/agent.py's TOOLS).ainvoke(...)``; the
fixed methods pin the config (``config=TTSConfig(...)``), agentrt plans it
within the deadline. A reply is *right* when it holds exactly one tool call and
``call_is_right`` accepts it (the calculator accepts any expression of the same
value); *valid* when its calls name a bound tool with schema-valid arguments.
The call is forced (``tool_choice="any"``), as graphs/agent.py forces its first
turn: left to choose, SmolLM2 never calls a tool.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from agentrt.core._errors import AgentrtError
from agentrt.langgraph import Runtime, TTSChatModel, load_graph
from agentrt.tasks._task import Task
from agentrt.tasks._tools import call_is_right, tool_use_tasks
from agentrt.tts import TTSConfig
from benchmarks.registry import BenchContext, Benchmark, Measured, Tables
from benchmarks.results import BenchResult
from benchmarks.tables import markdown_table

__all__ = ["BENCHMARK", "METHODS", "ToolsPlan", "tools_summary"]

METHODS: dict[str, TTSConfig | None] = {
    "greedy": TTSConfig(strategy="single", n=1, max_tokens=64, temperature=0.0),
    "majority-4": TTSConfig(strategy="majority", n=4, max_tokens=64, temperature=0.8),
    "majority-8": TTSConfig(strategy="majority", n=8, max_tokens=64, temperature=0.8),
    "agentrt": None,
}
"""What each method runs: a fixed config, or ``None`` (agentrt plans within the deadline)."""


@dataclass(frozen=True)
class ToolsPlan:
    tasks: int = 24
    deadlines_s: tuple[float, ...] = (3.0, 6.0, 12.0)  # ~30-token call: ~2 s AMX, ~5 s AVX2

    @classmethod
    def quick(cls) -> ToolsPlan:
        return cls(tasks=6, deadlines_s=(6.0, 12.0))


@dataclass(frozen=True)
class Outcome:
    """One method's reply to one task under one deadline."""

    task: str
    tool: str
    method: str
    deadline_s: float
    right: bool
    tool_called: bool
    valid: bool
    latency_s: float
    degraded: bool
    config: str | None
    error: str | None = None


async def _ask(
    model: TTSChatModel, tools: Sequence[Any], system: str, task: Task
) -> tuple[AIMessage | None, str | None]:
    try:
        reply = await model.bind_tools(tools, tool_choice="any").ainvoke(
            [SystemMessage(system), HumanMessage(task.prompt)]
        )
    except AgentrtError as exc:  # a refused call is a wrong answer, and said so
        return None, f"{type(exc).__name__}: {exc}"
    assert isinstance(reply, AIMessage)
    return reply, None


def _outcome(
    task: Task, method: str, deadline_s: float, reply: AIMessage | None, error: str | None,
    latency_s: float,
) -> Outcome:  # fmt: skip
    calls = [] if reply is None else reply.tool_calls
    meta = {} if reply is None else reply.response_metadata.get("agentrt", {})
    right = len(calls) == 1 and call_is_right(task, calls[0]["name"], calls[0]["args"])
    valid = reply is not None and not reply.invalid_tool_calls
    return Outcome(
        task=task.id, tool=str(task.meta.get("tool")), method=method, deadline_s=deadline_s,
        right=right, tool_called=bool(calls), valid=valid, latency_s=latency_s,
        degraded=bool(meta.get("degraded")), config=meta.get("config"), error=error,
    )  # fmt: skip


async def run_tools(ctx: BenchContext, plan: ToolsPlan) -> list[Outcome]:
    agent = load_graph("graphs/agent.py:graph").module
    tools, system = agent.TOOLS, agent.SYSTEM_PROMPT
    tasks = tool_use_tasks(ctx.seed, plan.tasks)
    runtime = Runtime(pool=ctx.pool, latency=ctx.latency_models())
    out: list[Outcome] = []
    for deadline_s in plan.deadlines_s:
        for i, task in enumerate(tasks):
            names = list(METHODS)
            order = names[i % len(names) :] + names[: i % len(names)]  # rotate who goes first
            for method in order:
                model = TTSChatModel(runtime=runtime, config=METHODS[method], slice_s=deadline_s,
                                     call_site="agent", tool_calling="constrained")  # fmt: skip
                started = time.perf_counter()
                reply, error = await _ask(model, tools, system, task)
                elapsed = time.perf_counter() - started
                out.append(_outcome(task, method, deadline_s, reply, error, elapsed))
    return out


def tools_rows(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """Per deadline and method: right %, tool chosen %, valid %, latency, overshoot."""
    rows: list[dict[str, Any]] = []
    for deadline_s in sorted({o.deadline_s for o in outcomes}):
        for method in METHODS:
            cell = [o for o in outcomes if o.deadline_s == deadline_s and o.method == method]
            if not cell:
                continue
            latencies = [o.latency_s for o in cell]
            rows.append({
                "deadline_s": deadline_s,
                "method": method,
                "tasks": len(cell),
                "right_pct": round(100 * sum(o.right for o in cell) / len(cell), 1),
                "tool_called_pct": round(100 * sum(o.tool_called for o in cell) / len(cell), 1),
                "valid_pct": round(100 * sum(o.valid for o in cell) / len(cell), 1),
                "median_latency_s": round(statistics.median(latencies), 3),
                "max_latency_s": round(max(latencies), 3),
                "past_deadline": sum(o.latency_s > deadline_s for o in cell),
                "degraded": sum(o.degraded for o in cell),
                "errors": sum(o.error is not None for o in cell),
            })  # fmt: skip
    return rows


def by_tool_rows(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """Right % per tool and method, all deadlines together."""
    rows: list[dict[str, Any]] = []
    for tool in sorted({o.tool for o in outcomes}):
        row: dict[str, Any] = {"tool": tool}
        for method in METHODS:
            cell = [o for o in outcomes if o.tool == tool and o.method == method]
            row[method] = round(100 * sum(o.right for o in cell) / len(cell), 1) if cell else None
        rows.append(row)
    return rows


def tools_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Where voting over actions pays: each deadline's best method and its gain over greedy."""
    summary: dict[str, Any] = {}
    for deadline_s in sorted({r["deadline_s"] for r in rows}):
        cell = {r["method"]: r for r in rows if r["deadline_s"] == deadline_s}
        best = max(cell.values(), key=lambda r: (r["right_pct"], -r["median_latency_s"]))
        greedy = cell.get("greedy", {}).get("right_pct")
        summary[f"{deadline_s:g}s"] = {
            "best": best["method"],
            "best_right_pct": best["right_pct"],
            "greedy_right_pct": greedy,
            "agentrt_right_pct": cell.get("agentrt", {}).get("right_pct"),
            "agentrt_past_deadline": cell.get("agentrt", {}).get("past_deadline"),
        }
    return summary


async def _measure(ctx: BenchContext) -> Measured:
    plan = ToolsPlan.quick() if ctx.quick else ToolsPlan()
    outcomes = await run_tools(ctx, plan)
    rows = tools_rows(outcomes)
    parameters = {
        "tasks": plan.tasks, "deadlines_s": list(plan.deadlines_s), "suite": "agent",
        "tool_calling": "constrained", "methods": {m: None if c is None else c.label
                                                    for m, c in METHODS.items()},
    }  # fmt: skip
    summary = {"by_deadline": tools_summary(rows), "by_tool": by_tool_rows(outcomes),
               "outcomes": [o.__dict__ for o in outcomes]}  # fmt: skip
    return Measured(parameters, rows, summary)


def _tables(result: BenchResult) -> Tables:
    return [
        ("right tool and arguments (exact match) by deadline and method",
         markdown_table(result.rows)),
        ("right % per tool, all deadlines", markdown_table(result.summary["by_tool"])),
    ]  # fmt: skip


BENCHMARK = Benchmark(
    "tools", "right tool and arguments vs N and deadline: greedy, fixed-N majority, agentrt",
    _measure, _tables, pool=(1, 0),
)  # fmt: skip
