"""``configs``: paper 2's table on our pool (tokens, latency, accuracy of every
static config, no deadline) and the penalty-form router's choice as lambda_T
and lambda_L move, evaluated on those same measured outcomes.

With the default accuracy model the router's choice does not depend on the
query, so its curve is exactly the measured figures of the config it picks at
each (lambda_T, lambda_L): no second run is needed and no noise separates the
router's points from the static rows.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from agentrt.pool._endpoint import PLAIN_GROUP, SPEC_GROUP
from agentrt.pool._pool import Backend
from agentrt.tasks import Task, answer_key, answer_spec_for, suite
from agentrt.tracing import ChatSpans
from agentrt.tts._accuracy import AccuracyModel
from agentrt.tts._config import TTSConfig
from agentrt.tts._executor import CallModels, TTSExecutor, estimate_prompt_tokens
from agentrt.tts._latency import LatencyModel
from agentrt.tts._length import LengthModel
from agentrt.tts._planner import PlanInputs, SearchSpace, plan_with_penalty
from benchmarks.oracle import Outcome
from benchmarks.registry import BenchContext, Benchmark, Measured, Tables
from benchmarks.results import BenchResult
from benchmarks.tables import markdown_table

__all__ = [
    "BENCHMARK",
    "ConfigsPlan",
    "config_rows",
    "router_curve",
    "run_configs",
    "table_configs",
]


@dataclass(frozen=True)
class ConfigsPlan:
    tasks: int = 40
    ns: tuple[int, ...] = (2, 4, 8, 16)
    max_tokens: int = 64
    slice_s: float = 60.0
    lambdas_tokens: tuple[float, ...] = (0.0, 1e-4, 3e-4, 1e-3)
    lambdas_latency_s: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1)

    @classmethod
    def quick(cls) -> ConfigsPlan:
        return cls(tasks=8, ns=(2, 4, 8))


def table_configs(plan: ConfigsPlan, groups: Sequence[str]) -> dict[str, TTSConfig]:
    """single and majority@N on each group, labelled ``name/group``."""
    configs: dict[str, TTSConfig] = {}
    for group in (g for g in (PLAIN_GROUP, SPEC_GROUP) if g in groups):
        configs[f"single/{group}"] = TTSConfig("single", 1, group, plan.max_tokens)
        for n in plan.ns:
            configs[f"majority@{n}/{group}"] = TTSConfig("majority", n, group, plan.max_tokens, 0.7)
    return configs


async def run_configs(
    backend: Backend,
    plan: ConfigsPlan,
    tasks: Sequence[Task],
    latency: Mapping[str, LatencyModel],
    seed: int,
) -> list[Outcome]:
    """Every config on every task, in a seeded shuffled order per task."""
    configs = table_configs(plan, tuple(latency))
    models = CallModels(latency=dict(latency))
    rng = random.Random(seed)
    outcomes = []
    for i, task in enumerate(tasks):
        names = list(configs)
        rng.shuffle(names)
        for name in names:
            executor = TTSExecutor(
                backend, models=models, run_seed=seed * 10_007 + i, observer=ChatSpans()
            )
            result = await executor.run(
                [{"role": "user", "content": task.prompt}], slice_s=plan.slice_s,
                config=configs[name], answer_spec=answer_spec_for(task),
            )  # fmt: skip
            correct = result.answer is not None and result.answer.key == answer_key(task)
            outcomes.append(Outcome(name, i, correct, result.latency_s, result.completion_tokens))
    return outcomes


def config_rows(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """Per config: mean tokens, mean and p90 latency, accuracy (paper 2's table)."""
    rows = []
    for name in dict.fromkeys(o.candidate for o in outcomes):
        at = [o for o in outcomes if o.candidate == name]
        latencies = sorted(o.latency_s for o in at)
        rows.append({
            "config": name,
            "tokens": round(statistics.mean(o.tokens for o in at), 1),
            "latency_s": round(statistics.mean(latencies), 3),
            "p90_latency_s": round(latencies[min(len(at) - 1, int(0.9 * len(at)))], 3),
            "accuracy": round(sum(o.correct for o in at) / len(at), 3),
            "tasks": len(at),
        })  # fmt: skip
    return sorted(rows, key=lambda r: (r["config"].split("/")[1], r["tokens"]))


def router_curve(
    rows: Sequence[Mapping[str, Any]],
    plan: ConfigsPlan,
    latency: Mapping[str, LatencyModel],
    length: LengthModel,
    prompt: str,
) -> list[dict[str, Any]]:
    """The router's pick at each (lambda_T, lambda_L) and that config's measured figures."""
    by_label = {r["config"]: r for r in rows}
    configs = table_configs(plan, tuple(latency))
    label_of = {c: name for name, c in configs.items()}
    space = SearchSpace(strategies=("single", "majority"), n_choices=(1, *plan.ns),
                        groups=tuple(latency), max_tokens_choices=(plan.max_tokens,))  # fmt: skip
    inputs = PlanInputs(
        slice_s=plan.slice_s, prompt_tokens=estimate_prompt_tokens([{"content": prompt}]),
        latency_models=latency, length_model=length, accuracy_model=AccuracyModel(), space=space,
    )  # fmt: skip
    curve = []
    for lt in plan.lambdas_tokens:
        for ll in plan.lambdas_latency_s:
            chosen = plan_with_penalty(inputs, lambda_tokens=lt, lambda_latency_s=ll).config
            name = label_of.get(chosen) if chosen is not None else None
            measured = by_label.get(name or "", {})
            curve.append({
                "lambda_tokens": lt, "lambda_latency_s": ll, "config": name,
                "tokens": measured.get("tokens"), "latency_s": measured.get("latency_s"),
                "accuracy": measured.get("accuracy"),
            })  # fmt: skip
    return curve


async def _measure(ctx: BenchContext) -> Measured:
    plan = ConfigsPlan.quick() if ctx.quick else ConfigsPlan()
    if ctx.count is not None:
        plan = replace(plan, tasks=ctx.count)
    scored = suite(ctx.tasks, ctx.seed, plan.tasks)
    latency = ctx.latency_models()
    outcomes = await run_configs(ctx.pool, plan, scored, latency, ctx.seed)
    rows = config_rows(outcomes)
    single = [o.tokens for o in outcomes if o.candidate.startswith("single/")]
    length = LengthModel.from_samples(max(1, t) for t in single)
    parameters = {"tasks": str(ctx.tasks), "count": plan.tasks, "ns": list(plan.ns),
                  "max_tokens": plan.max_tokens, "slice_s": plan.slice_s,
                  "lambdas_tokens": list(plan.lambdas_tokens),
                  "lambdas_latency_s": list(plan.lambdas_latency_s)}  # fmt: skip
    summary = {"router": router_curve(rows, plan, latency, length, scored[0].prompt),
               "outcomes": [o.__dict__ for o in outcomes]}  # fmt: skip
    return Measured(parameters, rows, summary)


def _tables(result: BenchResult) -> Tables:
    return [
        ("every static config, no deadline (paper 2's table)", markdown_table(result.rows)),
        ("the penalty router's pick as lambda_T (per token) and lambda_L (per s) move",
         markdown_table(result.summary["router"])),
    ]  # fmt: skip


BENCHMARK = Benchmark(
    "configs", "paper 2's table: tokens, latency, accuracy of every static config; router curve",
    _measure, _tables,
)  # fmt: skip
