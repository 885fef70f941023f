"""``policies``: the multi-step graphs under tight deadlines with each budget split
policy: end-to-end accuracy and the share of runs inside the deadline.

Every graph of ``graphs/`` (math: a chain of dependent calls; mapreduce: one
parallel ``Send`` fan-out; calculator: an agent loop of unknown length) runs
each of its seeded tasks once per (deadline, policy), through ``agentrt.run``
with the graph's own profile and only the policy changed. The jobs of one task
run back to back in a seeded shuffled order, so load drift on a shared machine
hits every policy alike. A run that ends past the deadline plus the margin
counts as wrong.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from agentrt.core._clock import MonotonicClock
from agentrt.pool._pool import EndpointPool
from agentrt.tasks import answer_key, suite
from agentrt.tts._latency import LatencyModel
from benchmarks.registry import BenchContext, Benchmark, Measured, Tables
from benchmarks.results import BenchResult
from benchmarks.tables import markdown_table

__all__ = [
    "BENCHMARK",
    "POLICIES",
    "PoliciesPlan",
    "PolicyRun",
    "best_policies",
    "interleaved_jobs",
    "plot_policies",
    "policy_rows",
    "run_policies",
    "stopped_by_deadline",
]

POLICIES = (
    "equal",
    "proportional",
    "critical_path",
    "marginal_utility",
    "marginal_utility|critical_path",
)
"""The split policies compared; the last is the smaller slice of the two (docs/budgets.md)."""

GRAPHS: dict[str, tuple[float, ...]] = {
    "graphs/math.py:graph": (4.0, 6.0),
    "graphs/mapreduce.py:graph": (2.5, 4.0),
    "graphs/calculator.py:graph": (5.0, 8.0),
}
"""Each graph and its two tight deadlines (s) on the local CPU pool, well under the
profiles' own (8, 6 and 10 s): the first is about where runs with the default
policy (critical_path) first finish with no call cut, on the loaded shared
machine (one shorter step had every call cut); the second is 1.5x that."""


@dataclass(frozen=True)
class PoliciesPlan:
    graphs: tuple[tuple[str, tuple[float, ...]], ...] = tuple(GRAPHS.items())
    policies: tuple[str, ...] = POLICIES
    tasks: int = 10
    margin_s: float = 0.1

    @classmethod
    def quick(cls) -> PoliciesPlan:
        return cls(tasks=2)


@dataclass(frozen=True)
class PolicyRun:
    """One run of one graph on one task under one deadline and policy."""

    graph: str
    deadline_s: float
    policy: str
    task: int
    correct: bool
    elapsed_s: float
    degraded: bool
    calls: int
    tokens: int
    branches: float = 0.0
    """Mean branches (N) per LLM call; 0 when the run made none."""
    stopped: bool = False
    """The deadline stopped the graph (drained at the soft instant or cut at the
    hard one) before it reached its end."""
    note: str = ""


def stopped_by_deadline(reason: str | None) -> bool:
    """Whether a run's ``reason`` says the deadline stopped the graph (drain or cut)."""
    return reason is not None and reason.startswith(("drained", "hard deadline"))


def graph_label(path: str) -> str:
    """``graphs/math.py:graph`` -> ``math``."""
    return Path(path.split(":")[0]).stem


def interleaved_jobs(
    deadlines_s: Sequence[float], policies: Sequence[str], rng: random.Random
) -> list[tuple[float, str]]:
    """Every (deadline, policy) pair of one task, in an order shuffled by ``rng``."""
    jobs = [(d, p) for d in deadlines_s for p in policies]
    rng.shuffle(jobs)
    return jobs


def policy_rows(
    runs: Sequence[PolicyRun], margin_s: float, policies: Sequence[str] = POLICIES
) -> list[dict[str, Any]]:
    """Per graph (first-seen order), deadline and policy (``policies`` order, then
    any other): accuracy counting a run past ``deadline + margin_s`` as wrong,
    share of runs inside it, share degraded, mean LLM calls, completion tokens,
    branches per call and elapsed time."""
    groups: dict[tuple[str, float, str], list[PolicyRun]] = {}
    for run in runs:
        groups.setdefault((run.graph, run.deadline_s, run.policy), []).append(run)
    graph_order = list(dict.fromkeys(r.graph for r in runs))
    policy_order = list(dict.fromkeys([*policies, *(r.policy for r in runs)]))
    rows = []
    for graph, deadline_s, policy in sorted(
        groups, key=lambda k: (graph_order.index(k[0]), k[1], policy_order.index(k[2]))
    ):
        at = groups[graph, deadline_s, policy]
        inside = [r.elapsed_s <= deadline_s + margin_s for r in at]
        rows.append({
            "graph": graph_label(graph),
            "deadline_s": deadline_s,
            "policy": policy,
            "accuracy": round(sum(r.correct and ok for r, ok in zip(at, inside, strict=True))
                              / len(at), 3),
            "inside": round(sum(inside) / len(at), 3),
            "degraded": round(sum(r.degraded for r in at) / len(at), 3),
            "stopped": round(sum(r.stopped for r in at) / len(at), 3),
            "llm_calls": round(statistics.mean(r.calls for r in at), 2),
            "tokens": round(statistics.mean(r.tokens for r in at), 1),
            "branches": round(statistics.mean(r.branches for r in at), 2),
            "elapsed_s": round(statistics.mean(r.elapsed_s for r in at), 3),
            "tasks": len(at),
        })  # fmt: skip
    return rows


def best_policies(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per graph and deadline: the most accurate policies (ties listed together) and
    the spread between the best and the worst accuracy."""
    out = []
    keys = dict.fromkeys((r["graph"], r["deadline_s"]) for r in rows)
    for graph, deadline_s in keys:
        at = [r for r in rows if r["graph"] == graph and r["deadline_s"] == deadline_s]
        top = max(r["accuracy"] for r in at)
        out.append({
            "graph": graph,
            "deadline_s": deadline_s,
            "best": ", ".join(r["policy"] for r in at if r["accuracy"] == top),
            "best_accuracy": top,
            "spread": round(top - min(r["accuracy"] for r in at), 3),
            "min_inside": min(r["inside"] for r in at),
            "tasks": at[0]["tasks"],
        })  # fmt: skip
    return out


def _run_figures(result: Any) -> tuple[int, int, float]:
    calls = result.calls
    tokens = sum(c.result.completion_tokens for c in calls)
    widths = [c.result.config.n for c in calls if c.result.config is not None]
    return len(calls), tokens, (statistics.mean(widths) if widths else 0.0)


async def run_policies(
    pool: EndpointPool,
    plan: PoliciesPlan,
    latency: Mapping[str, LatencyModel],
    seed: int,
    progress: Callable[[str], None] | None = None,
) -> list[PolicyRun]:
    """Every graph, task, deadline and policy; one task's jobs interleaved (seeded)."""
    import agentrt
    from agentrt.langgraph._loading import load_graph

    runtime = agentrt.Runtime(pool=pool, latency=latency)
    clock = MonotonicClock()
    rng = random.Random(seed)
    runs: list[PolicyRun] = []
    for path, deadlines in plan.graphs:
        loaded = load_graph(path)
        module = loaded.module
        tasks = suite(module.TASK_SUITE, seed, plan.tasks)
        for i, task in enumerate(tasks):
            for deadline_s, policy in interleaved_jobs(deadlines, plan.policies, rng):
                started = clock.now()
                try:
                    result = await runtime.run(
                        loaded.graph, module.input_for(task), deadline=deadline_s,
                        policy=policy, graph_path=path, profile=module.PROFILE,
                        run_seed=seed * 10_007 + i,
                    )  # fmt: skip
                except Exception as exc:  # a failed run is wrong (and says why)
                    elapsed = clock.now() - started
                    runs.append(PolicyRun(path, deadline_s, policy, i, False, elapsed, True, 0, 0,
                                          note=f"failed: {type(exc).__name__}: {exc}"))  # fmt: skip
                    continue
                answer = module.answer_of(result.state)
                calls, tokens, branches = _run_figures(result)
                runs.append(PolicyRun(
                    path, deadline_s, policy, i, answer == answer_key(task), result.elapsed_s,
                    result.degraded, calls, tokens, round(branches, 2),
                    stopped=stopped_by_deadline(result.reason),
                    note=f"answer {answer!r}, expected {answer_key(task)!r}; {result.reason}",
                ))  # fmt: skip
                if progress is not None:
                    r = runs[-1]
                    progress(f"{graph_label(path)} task {i} {deadline_s:g}s {policy}: "
                             f"{'right' if r.correct else 'wrong'}, {r.elapsed_s:.2f}s, "
                             f"{r.calls} calls")  # fmt: skip
    return runs


async def _measure(ctx: BenchContext) -> Measured:
    plan = PoliciesPlan.quick() if ctx.quick else PoliciesPlan()
    if ctx.count is not None:
        plan = replace(plan, tasks=ctx.count)

    def progress(line: str) -> None:
        ctx.console.print(line, highlight=False)

    runs = await run_policies(ctx.pool, plan, ctx.latency_models(), ctx.seed, progress)
    rows = policy_rows(runs, plan.margin_s, plan.policies)
    parameters = {
        "graphs": {graph_label(g): list(d) for g, d in plan.graphs},
        "policies": list(plan.policies),
        "count": plan.tasks,
        "margin_s": plan.margin_s,
        "task_suites": "each graph's TASK_SUITE, seeded with the run's seed",
        "profiles": "each graph's PROFILE (budgets/*.toml), only the policy changed",
    }
    summary = {"best": best_policies(rows), "runs": [asdict(r) for r in runs]}
    return Measured(parameters, rows, summary)


def _tables(result: BenchResult) -> Tables:
    margin = result.parameters.get("margin_s", 0.1)
    return [
        (f"per graph, deadline and policy: accuracy (a run past deadline + {margin} s is "
         "wrong), share of runs inside deadline + margin, share degraded (any call cut, "
         "refused or failed over, or the run stopped), share stopped by the deadline before "
         "the graph's end, mean LLM calls, completion tokens and branches per call",
         markdown_table(result.rows)),
        ("the most accurate policies at each graph and deadline",
         markdown_table(result.summary.get("best", []))),
    ]  # fmt: skip


def plot_policies(rows: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Accuracy (bars) and share inside the deadline (dots) per policy, one panel
    per graph, deadlines side by side."""
    from benchmarks.plots import pyplot, save_figure

    plt = pyplot()
    graphs = list(dict.fromkeys(r["graph"] for r in rows))
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    fig, axes = plt.subplots(1, len(graphs), figsize=(4.2 * len(graphs), 4.2), squeeze=False)
    width = 0.8 / max(1, len(policies))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, graph in zip(axes[0], graphs, strict=True):
        deadlines = sorted({r["deadline_s"] for r in rows if r["graph"] == graph})
        for j, policy in enumerate(policies):
            at = {r["deadline_s"]: r for r in rows if r["graph"] == graph and r["policy"] == policy}
            xs = [k + (j - (len(policies) - 1) / 2) * width for k in range(len(deadlines))]
            color = colors[j % len(colors)]
            ax.bar(xs, [at[d]["accuracy"] if d in at else 0 for d in deadlines], width,
                   color=color, label=policy)  # fmt: skip
            ax.plot(xs, [at[d]["inside"] if d in at else 0 for d in deadlines], "o",
                    color="black", markersize=3)  # fmt: skip
        ax.set_xticks(range(len(deadlines)), [f"{d:g} s" for d in deadlines])
        ax.set_ylim(0, 1.05)
        ax.set_title(graph, fontsize=9)
        ax.set_xlabel("deadline")
        ax.grid(True, axis="y", alpha=0.3)
    axes[0][0].set_ylabel("accuracy (bars); share inside deadline (dots)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(policies), fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return save_figure(fig, path)


BENCHMARK = Benchmark(
    "policies", "the multi-step graphs under tight deadlines with each budget split policy",
    _measure, _tables, plot_policies,
)  # fmt: skip
