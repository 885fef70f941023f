"""``frontier``: accuracy within the deadline, and the share of calls inside it,
for static configs, paper 1's greedy (B, gamma) planner, paper 2's penalty-form
router and agentrt's default (deadline-form) planner, on a seeded task suite.

Candidates run one after another per task, in a seeded shuffled order, so load
drifts hit all of them alike. A static config runs once per task with a slice
just past the largest deadline and is scored at every deadline from its
latency (an overrun is wrong); a planner runs once per task and deadline with
that deadline as its slice. The oracle is the best static config per deadline
in hindsight.

Every executor of the run shares one :class:`~agentrt.tts.OnlineLatency` and
one :class:`~agentrt.tts.OnlineLength`, as the calls of one
:class:`~agentrt.Runtime` do: each call teaches the latency models the next
one plans with (statics included: their streams are evidence too), and the
agentrt and router planners plan with the call site's lengths as learned.
The run also reports the latency-prediction error of the planned calls:
``|predicted mean - actual| / actual``, median and p90, with no offline tune.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from agentrt.core._stats import quantile
from agentrt.pool._endpoint import PLAIN_GROUP, greedy_only_groups
from agentrt.pool._pool import Backend
from agentrt.tasks import Task, answer_key, answer_spec_for, suite
from agentrt.tracing import ChatSpans
from agentrt.tts._accuracy import AccuracyModel
from agentrt.tts._config import TTSConfig
from agentrt.tts._executor import CallModels, TTSExecutor, estimate_prompt_tokens
from agentrt.tts._greedy_search import plan_greedy_parallelism
from agentrt.tts._latency import LatencyModel
from agentrt.tts._length import LengthModel
from agentrt.tts._length_online import OnlineLength
from agentrt.tts._online import OnlineLatency
from agentrt.tts._planner import PlanInputs, SearchSpace
from agentrt.tts._result import Result
from benchmarks.oracle import Outcome, absolute_percentage_error, best_static, score
from benchmarks.plots import plot_frontier
from benchmarks.registry import BenchContext, Benchmark, Measured, Tables
from benchmarks.results import BenchResult
from benchmarks.tables import markdown_table

__all__ = [
    "BENCHMARK",
    "PLANNERS",
    "FrontierPlan",
    "frontier_rows",
    "run_frontier",
    "scored_and_length",
    "static_configs",
]

PLANNERS = ("greedy", "router", "agentrt")
CALL_SITE = "addition"
"""The call site whose output lengths the planners learn (one task suite, one site)."""


@dataclass(frozen=True)
class FrontierPlan:
    deadlines_s: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    tasks: int = 40
    ns: tuple[int, ...] = (2, 4, 8, 16)
    max_tokens: int = 64
    margin_s: float = 0.1
    sla_quantile: float = 0.95
    lambda_tokens: float = 1e-4
    lambda_latency_s: float = 0.02
    warmup_tasks: int = 6

    @classmethod
    def quick(cls) -> FrontierPlan:
        return cls(tasks=8, ns=(2, 4, 8), warmup_tasks=4)

    def space(self, groups: Sequence[str], greedy_only: Sequence[str] = ()) -> SearchSpace:
        return SearchSpace(
            strategies=("single", "majority"), n_choices=(1, *self.ns), groups=tuple(groups),
            max_tokens_choices=(self.max_tokens,), greedy_only_groups=tuple(greedy_only),
        )  # fmt: skip


def static_configs(plan: FrontierPlan, group: str = PLAIN_GROUP) -> dict[str, TTSConfig]:
    """``single`` and ``majority@N`` for each N, on one group."""
    configs = {"single": TTSConfig("single", 1, group, plan.max_tokens)}
    for n in plan.ns:
        configs[f"majority@{n}"] = TTSConfig("majority", n, group, plan.max_tokens, 0.7)
    return configs


@dataclass
class _Context:
    backend: Backend
    plan: FrontierPlan
    latency: Mapping[str, LatencyModel]
    length: LengthModel
    seed: int
    online: OnlineLatency | None = None
    lengths: OnlineLength | None = None

    @property
    def greedy_only(self) -> tuple[str, ...]:
        return greedy_only_groups(e.spec for e in getattr(self.backend, "endpoints", ()))

    def executor(self, task_index: int, **kwargs: Any) -> TTSExecutor:
        models = CallModels(latency=dict(self.latency), length=self.length)
        return TTSExecutor(
            self.backend, models=models,
            space=self.plan.space(tuple(self.latency), self.greedy_only),
            sla_quantile=self.plan.sla_quantile, run_seed=self.seed * 10_007 + task_index,
            **kwargs, observer=ChatSpans(), online=self.online, lengths=self.lengths,
        )  # fmt: skip


def _correct(result: Result, task: Task) -> bool:
    return result.answer is not None and result.answer.key == answer_key(task)


async def _static(ctx: _Context, config: TTSConfig, task: Task, i: int) -> Result:
    slice_s = max(ctx.plan.deadlines_s) + 2 * ctx.plan.margin_s
    return await ctx.executor(i).run(_messages(task), slice_s=slice_s, config=config,
                                     answer_spec=answer_spec_for(task))  # fmt: skip


async def _planned(ctx: _Context, name: str, task: Task, i: int, deadline_s: float) -> Result:
    spec = answer_spec_for(task)
    if name == "agentrt":
        return await ctx.executor(i).run(_messages(task), slice_s=deadline_s, answer_spec=spec,
                                         call_site=CALL_SITE)  # fmt: skip
    if name == "router":
        executor = ctx.executor(
            i, objective="penalty", lambda_tokens=ctx.plan.lambda_tokens,
            lambda_latency_s=ctx.plan.lambda_latency_s,
        )  # fmt: skip
        return await executor.run(_messages(task), slice_s=deadline_s, answer_spec=spec,
                                  call_site=CALL_SITE)  # fmt: skip
    latency = dict(ctx.latency) if ctx.online is None else ctx.online.corrected(ctx.latency)
    inputs = PlanInputs(
        slice_s=deadline_s, prompt_tokens=estimate_prompt_tokens(_messages(task)),
        latency_models=latency, length_model=ctx.length, accuracy_model=AccuracyModel(),
        sla_quantile=ctx.plan.sla_quantile,
        space=ctx.plan.space(tuple(ctx.latency), ctx.greedy_only),
    )  # fmt: skip
    chosen = plan_greedy_parallelism(inputs).config or TTSConfig(
        "single", 1, PLAIN_GROUP, ctx.plan.max_tokens
    )
    return await ctx.executor(i).run(
        _messages(task), slice_s=deadline_s, config=chosen, answer_spec=spec
    )


def _messages(task: Task) -> list[dict[str, Any]]:
    return [{"role": "user", "content": task.prompt}]


async def fit_length(
    backend: Backend, tasks: Sequence[Task], max_tokens: int, seed: int
) -> LengthModel:
    """Output lengths of single samples on warm-up tasks (not the scored ones)."""
    lengths = []
    for i, task in enumerate(tasks):
        executor = TTSExecutor(backend, run_seed=seed * 10_007 + 5_000 + i, observer=ChatSpans())
        result = await executor.run(
            _messages(task), slice_s=30.0,
            config=TTSConfig("majority", 4, PLAIN_GROUP, max_tokens, 0.7),
        )  # fmt: skip
        lengths.append(max(1, result.completion_tokens // max(1, result.branches.finished)))
    return LengthModel.from_samples(lengths)


async def scored_and_length(
    ctx: BenchContext, tasks: int, warmup_tasks: int, max_tokens: int
) -> tuple[list[Task], LengthModel]:
    """The run's seeded tasks and a length model fitted on warm-up tasks: fresh
    ones of the built-in suite (another seed), else the first scored ones."""
    addition = str(ctx.tasks) == "addition"
    warm = suite(ctx.tasks, ctx.seed + 1, warmup_tasks) if addition else []
    scored = suite(ctx.tasks, ctx.seed, tasks)
    length = await fit_length(ctx.pool, warm or scored[:warmup_tasks], max_tokens, ctx.seed)
    return scored, length


async def run_frontier(
    backend: Backend,
    plan: FrontierPlan,
    tasks: Sequence[Task],
    *,
    latency: Mapping[str, LatencyModel],
    length: LengthModel,
    seed: int,
    progress: Callable[[str], None] | None = None,
    online: OnlineLatency | None = None,
    lengths: OnlineLength | None = None,
) -> list[Outcome]:
    """Every candidate on every task (interleaved, seeded order); the raw outcomes.
    ``online`` (shared by every call) corrects ``latency`` as the run goes, and
    ``lengths`` learns the planners' output lengths (their call site's) from every call."""
    ctx = _Context(backend, plan, latency, length, seed, online, lengths)
    statics = static_configs(plan)
    rng = random.Random(seed)
    outcomes: list[Outcome] = []
    for i, task in enumerate(tasks):
        jobs: list[tuple[str, float | None]] = [(name, None) for name in statics]
        jobs += [(name, d) for name in PLANNERS for d in plan.deadlines_s]
        rng.shuffle(jobs)
        for name, deadline_s in jobs:
            models = dict(ctx.latency) if ctx.online is None else ctx.online.corrected(ctx.latency)
            if deadline_s is None:
                result = await _static(ctx, statics[name], task, i)
            else:
                result = await _planned(ctx, name, task, i, deadline_s)
            outcomes.append(Outcome(
                candidate=name, task=i, correct=_correct(result, task),
                latency_s=result.latency_s, tokens=result.completion_tokens,
                deadline_s=deadline_s,
                config=result.config.label if result.config else None,
                predicted_s=_predicted_mean(result),
                cut="slice ended" in (result.degraded_reason or ""),
                model_s=model_latency(result, models, estimate_prompt_tokens(_messages(task))),
            ))  # fmt: skip
        if progress is not None:
            progress(f"task {i + 1}/{len(tasks)} done")
    return outcomes


def _predicted_mean(result: Result) -> float | None:
    prediction = result.plan.prediction
    return None if prediction is None else prediction.latency_mean_s


def model_latency(
    result: Result, models: Mapping[str, LatencyModel], prompt_tokens: int
) -> float | None:
    """For a call of one greedy branch: what ``models`` predict for the tokens it
    generated (None for wider calls: their longest branch is not known here)."""
    config = result.config
    if config is None or config.n != 1 or result.completion_tokens < 1:
        return None
    model = models.get(config.group)
    if model is None:
        return None
    tokens = result.completion_tokens
    exact = LengthModel.from_samples([tokens])
    return model.predict_mean(replace(config, max_tokens=tokens), prompt_tokens, exact)


def _apes(pairs: Sequence[tuple[float, float]]) -> list[float]:
    return sorted(e for p, a in pairs if (e := absolute_percentage_error(p, a)) is not None)


def prediction_error(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """Per planner: the absolute percentage error of its calls' predicted mean
    latency against the actual latency (median and p90), over the run's first
    and second half of tasks and the whole run; calls the slice cut are left out
    (their latency is the slice, not what the config takes) and counted."""
    planned = [o for o in outcomes if o.deadline_s is not None and o.predicted_s is not None]
    if not planned:
        return []
    half = (max(o.task for o in planned) + 1) / 2
    rows = []
    for name in PLANNERS:
        mine = [o for o in planned if o.candidate == name]
        for part, chosen in (("first half", [o for o in mine if o.task < half]),
                             ("second half", [o for o in mine if o.task >= half]),
                             ("all", mine)):  # fmt: skip
            uncut = [o for o in chosen if not o.cut]
            apes = _apes([(o.predicted_s, o.latency_s) for o in uncut if o.predicted_s is not None])
            model = _apes([(o.model_s, o.latency_s) for o in uncut if o.model_s is not None])
            if apes:
                rows.append({
                    "candidate": name, "tasks": part, "calls": len(apes),
                    "cut": sum(o.cut for o in chosen),
                    "ape_median": round(quantile(apes, 0.5), 3),
                    "ape_p90": round(quantile(apes, 0.9), 3),
                    "single_calls": len(model),
                    "model_ape_median": round(quantile(model, 0.5), 3) if model else None,
                    "model_ape_p90": round(quantile(model, 0.9), 3) if model else None,
                })  # fmt: skip
    return rows


def frontier_rows(
    outcomes: Sequence[Outcome], plan: FrontierPlan
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per deadline and candidate: accuracy, share inside, tokens, latency; plus
    per deadline: the oracle and whether agentrt met the bars."""
    statics = list(static_configs(plan))
    rows: list[dict[str, Any]] = []
    bars: list[dict[str, Any]] = []
    for d in plan.deadlines_s:
        scores = score(outcomes, d, plan.margin_s)
        for name in [*statics, *PLANNERS]:
            if name in scores:
                s = scores[name]
                rows.append({
                    "deadline_s": d, "candidate": name, "accuracy": round(s["accuracy"], 3),
                    "inside": round(s["inside"], 3), "tokens": round(s["tokens"], 1),
                    "latency_s": round(s["latency_s"], 3), "tasks": int(s["tasks"]),
                })  # fmt: skip
        oracle = best_static(scores, statics)
        if oracle is not None:
            rows.append({"deadline_s": d, "candidate": f"oracle ({oracle[0]})",
                         "accuracy": round(oracle[1], 3), "inside": None, "tokens": None,
                         "latency_s": None, "tasks": None})  # fmt: skip
        mine = scores.get("agentrt")
        if mine is not None and oracle is not None:
            bars.append({
                "deadline_s": d, "agentrt_accuracy": round(mine["accuracy"], 3),
                "best_static": oracle[0], "best_static_accuracy": round(oracle[1], 3),
                "accuracy_gap": round(mine["accuracy"] - oracle[1], 3),
                "agentrt_inside": round(mine["inside"], 3),
                "meets_accuracy_bar": mine["accuracy"] >= oracle[1],
                "meets_inside_bar": mine["inside"] >= 0.99,
            })  # fmt: skip
    return rows, bars


async def _measure(ctx: BenchContext) -> Measured:
    plan = FrontierPlan.quick() if ctx.quick else FrontierPlan()
    if ctx.count is not None:
        plan = replace(plan, tasks=ctx.count)
    latency = ctx.latency_models()
    scored, length = await scored_and_length(ctx, plan.tasks, plan.warmup_tasks, plan.max_tokens)
    outcomes = await run_frontier(ctx.pool, plan, scored, latency=latency, length=length,
                                  seed=ctx.seed, progress=ctx.console.print,
                                  online=OnlineLatency(), lengths=OnlineLength())  # fmt: skip
    rows, bars = frontier_rows(outcomes, plan)
    parameters = {
        "tasks": str(ctx.tasks), "count": plan.tasks, "deadlines_s": list(plan.deadlines_s),
        "ns": list(plan.ns), "max_tokens": plan.max_tokens, "margin_s": plan.margin_s,
        "sla_quantile": plan.sla_quantile, "lambda_tokens": plan.lambda_tokens,
        "lambda_latency_s": plan.lambda_latency_s, "calibration": str(ctx.calibration_file()),
        "online": True,
        "length_model_samples": list(length.samples),
    }  # fmt: skip
    return Measured(parameters, rows, {"bars": bars, "prediction_error": prediction_error(outcomes),
                                       "outcomes": [o.__dict__ for o in outcomes]})  # fmt: skip


def _tables(result: BenchResult) -> Tables:
    return [
        ("accuracy within the deadline (overrun = wrong) and share inside it",
         markdown_table(result.rows)),
        ("bars: agentrt vs the best static config in hindsight",
         markdown_table(result.summary["bars"])),
        ("latency-prediction error of the planned calls, learned online, no offline tune: "
         "`ape_*` of the plan's predicted mean (output length unknown), `model_ape_*` of the "
         "latency model for the tokens a one-branch call did generate; calls the slice cut "
         "left out",
         markdown_table(result.summary.get("prediction_error", []))),
    ]  # fmt: skip


BENCHMARK = Benchmark(
    "frontier", "accuracy within the deadline: static configs, planners and the oracle",
    _measure, _tables, plot=plot_frontier,
)  # fmt: skip
