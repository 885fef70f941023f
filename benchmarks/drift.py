"""``drift``: a server that gets three times slower halfway through a run, with the
latency models learned online vs frozen at their calibration.

Frontier-style addition tasks, each one call planned inside a fixed slice, on
the first plain server reached through a :class:`~benchmarks.faults.FaultProxy`.
Before the task at the halfway mark the proxy's ``slowdown`` goes to
``plan.slowdown``: every response reaches the client that many times later
(TTFT and per-token time alike). Two candidates run every task, in a seeded
order per task so the drift hits both alike, with the same calibrated latency
models as their prior: ``online`` corrects them with one
:class:`~agentrt.tts.OnlineLatency` and learns the call site's output lengths
with one :class:`~agentrt.tts.OnlineLength`, shared across its calls (what a
:class:`~agentrt.Runtime` does), ``frozen`` never does. Hedging is off (one
endpoint: nowhere to hedge to).

Per candidate and phase (before / after the slow-down) and per window of
tasks: the share of calls that finished inside their slice (the executor
returns by the slice's end whatever happens, so "inside" means the slice did
not cut the call's branches), the shares cut, refused by the planner (it ran
its cheapest fallback) and degraded, accuracy, and the absolute percentage
error of the predicted latency (the plan's mean, the point estimate) against
the actual one, median and p90. A call the slice cuts ends near the slice
whatever it would have taken: its APE is censored (a planner that predicts
the slice looks exact while every call overruns), so the APE median over the
calls the slice did not cut is given beside it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from agentrt.core._errors import ConfigurationError
from agentrt.core._stats import quantile
from agentrt.pool._endpoint import PLAIN_GROUP, EndpointSpec
from agentrt.pool._pool import EndpointPool
from agentrt.tasks import Task, answer_key, answer_spec_for
from agentrt.tts._executor import CallModels, TTSExecutor
from agentrt.tts._latency import LatencyModel
from agentrt.tts._length import LengthModel
from agentrt.tts._length_online import OnlineLength
from agentrt.tts._online import OnlineLatency
from agentrt.tts._planner import SearchSpace
from agentrt.tts._result import Result
from benchmarks.faults import FaultProxy
from benchmarks.frontier import scored_and_length
from benchmarks.oracle import absolute_percentage_error
from benchmarks.plots import pyplot, save_figure
from benchmarks.registry import BenchContext, Benchmark, Measured, Tables
from benchmarks.results import BenchResult
from benchmarks.tables import markdown_table

__all__ = [
    "BENCHMARK",
    "CANDIDATES",
    "DriftCall",
    "DriftPlan",
    "absolute_percentage_error",
    "call_orders",
    "drift_summary",
    "phase_of",
    "phase_rows",
    "plot_drift",
    "run_drift",
    "summarise_calls",
    "window_rows",
]

CANDIDATES = ("online", "frozen")
PHASES = ("before", "after")
CUT_MARK = "slice ended"
"""How the executor's ``degraded_reason`` says the slice cut unfinished branches."""
REFUSED_MARK = "refused by the planner"
"""How it says nothing fitted the slice and the cheapest fallback ran."""


@dataclass(frozen=True)
class DriftPlan:
    """``tasks`` tasks, each one call per candidate inside ``slice_s``; from task
    ``tasks // 2`` on, responses come ``slowdown`` times slower."""

    tasks: int = 40
    slice_s: float = 2.0
    slowdown: float = 3.0
    ns: tuple[int, ...] = (2, 4, 8)
    max_tokens_choices: tuple[int, ...] = (64,)
    sla_quantile: float = 0.95
    warmup_tasks: int = 6
    window: int = 5

    @classmethod
    def quick(cls) -> DriftPlan:
        return cls(tasks=20, warmup_tasks=4, window=5)

    def __post_init__(self) -> None:
        if self.tasks < 2:
            raise ConfigurationError(f"DriftPlan.tasks must be >= 2, got {self.tasks}")
        if self.window < 1:
            raise ConfigurationError(f"DriftPlan.window must be >= 1, got {self.window}")
        if not self.max_tokens_choices:
            raise ConfigurationError("DriftPlan.max_tokens_choices must not be empty")

    @property
    def max_tokens(self) -> int:
        return max(self.max_tokens_choices)

    @property
    def switch_at(self) -> int:
        """The first task run slowed down."""
        return self.tasks // 2

    def space(self) -> SearchSpace:
        return SearchSpace(
            strategies=("single", "majority"), n_choices=(1, *self.ns), groups=(PLAIN_GROUP,),
            max_tokens_choices=self.max_tokens_choices,
        )  # fmt: skip


@dataclass(frozen=True)
class DriftCall:
    """One call of one candidate: what it planned, predicted and took."""

    task: int
    candidate: str
    phase: str
    slowdown: float
    slice_s: float
    latency_s: float
    predicted_latency_s: float | None
    config: str | None
    n: int
    correct: bool
    degraded: bool
    cut: bool
    refused: bool = False
    ttft_factor: float | None = None
    per_token_factor: float | None = None
    reason: str | None = None


def phase_of(task: int, switch_at: int) -> str:
    """``before`` the slow-down or ``after`` it (from task ``switch_at`` on)."""
    return "before" if task < switch_at else "after"


def call_orders(seed: int, tasks: int) -> list[tuple[str, ...]]:
    """Per task, the order the candidates run in: a seeded shuffle each time."""
    rng = random.Random(f"drift-{seed}")
    orders = []
    for _ in range(tasks):
        order = list(CANDIDATES)
        rng.shuffle(order)
        orders.append(tuple(order))
    return orders


def _share(flags: Sequence[bool]) -> float | None:
    return round(sum(flags) / len(flags), 3) if flags else None


def _errors(calls: Iterable[Mapping[str, Any]]) -> list[float]:
    return [
        e
        for c in calls
        if (e := absolute_percentage_error(c["predicted_latency_s"], c["latency_s"])) is not None
    ]


def _quantile(values: Sequence[float], q: float) -> float | None:
    return round(quantile(values, q), 3) if values else None


def summarise_calls(calls: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Of some calls (rows of :class:`DriftCall`): the shares inside the slice, cut,
    refused, degraded and correct, the APE median and p90 (and the median over
    the calls not cut), the mean branches planned and the p50 latency."""
    errors = _errors(calls)
    uncut = _errors(c for c in calls if not c["cut"])
    return {
        "calls": len(calls),
        "inside": _share([not c["cut"] and c["latency_s"] <= c["slice_s"] for c in calls]),
        "cut": _share([c["cut"] for c in calls]),
        "refused": _share([c.get("refused", False) for c in calls]),
        "degraded": _share([c["degraded"] for c in calls]),
        "accuracy": _share([c["correct"] for c in calls]),
        "ape_median": _quantile(errors, 0.5),
        "ape_p90": _quantile(errors, 0.9),
        "ape_median_uncut": _quantile(uncut, 0.5),
        "uncut": len(uncut),
        "mean_n": round(sum(c["n"] for c in calls) / len(calls), 2) if calls else None,
        "latency_p50_s": _quantile([c["latency_s"] for c in calls], 0.5),
    }


def phase_rows(calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per candidate and phase, :func:`summarise_calls` (phases with no calls left
    out) and the online correction (TTFT / per-token factors) its last call planned with."""
    out = []
    for candidate in CANDIDATES:
        for phase in PHASES:
            at = sorted((c for c in calls if c["candidate"] == candidate and c["phase"] == phase),
                        key=lambda c: c["task"])  # fmt: skip
            if at:
                last = at[-1]
                factors = (
                    None if last.get("ttft_factor") is None
                    else f"{last['ttft_factor']:.2f}/{last['per_token_factor']:.2f}"
                )  # fmt: skip
                out.append({"candidate": candidate, "phase": phase, **summarise_calls(at),
                            "factors": factors})  # fmt: skip
    return out


def window_rows(calls: Sequence[Mapping[str, Any]], window: int) -> list[dict[str, Any]]:
    """Per candidate and block of ``window`` consecutive tasks: the share inside,
    the APE median, the cut share and the branches planned (how fast each adapts)."""
    if window < 1:
        raise ConfigurationError(f"window must be >= 1, got {window}")
    out = []
    for candidate in CANDIDATES:
        mine = sorted((c for c in calls if c["candidate"] == candidate), key=lambda c: c["task"])
        blocks: dict[int, list[Mapping[str, Any]]] = {}
        for c in mine:
            blocks.setdefault(c["task"] // window, []).append(c)
        for block, at in sorted(blocks.items()):
            s = summarise_calls(at)
            out.append({
                "candidate": candidate, "tasks": f"{block * window}-{block * window + window - 1}",
                "phases": "/".join(dict.fromkeys(c["phase"] for c in at)),
                "inside": s["inside"], "ape_median": s["ape_median"], "cut": s["cut"],
                "mean_n": s["mean_n"],
            })  # fmt: skip
    return out


def drift_summary(phases: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """After the slow-down: online minus frozen on the share inside and the APE
    median, and whether online did better on each."""
    after = {r["candidate"]: r for r in phases if r["phase"] == "after"}
    online, frozen = after.get("online"), after.get("frozen")
    if online is None or frozen is None:
        return {}

    def gap(key: str) -> float | None:
        a, b = online[key], frozen[key]
        return None if a is None or b is None else round(a - b, 3)

    inside_gap, ape_gap = gap("inside"), gap("ape_median")
    return {
        "after_inside_online_minus_frozen": inside_gap,
        "after_cut_online_minus_frozen": gap("cut"),
        "after_accuracy_online_minus_frozen": gap("accuracy"),
        "after_ape_median_online_minus_frozen": ape_gap,
        "after_ape_median_uncut_online_minus_frozen": gap("ape_median_uncut"),
        "online_inside_not_worse_after": inside_gap is not None and inside_gap >= 0,
        "online_ape_lower_after": ape_gap is not None and ape_gap < 0,
    }


def _plain_endpoint(pool: EndpointPool) -> EndpointSpec:
    for endpoint in pool.endpoints:
        if endpoint.spec.group == PLAIN_GROUP and endpoint.served_model:
            return endpoint.spec
    raise ConfigurationError("the drift benchmark needs a healthy plain endpoint")


def _messages(task: Task) -> list[dict[str, Any]]:
    return [{"role": "user", "content": task.prompt}]


def _record(result: Result, task: Task, index: int, candidate: str, plan: DriftPlan,
            slowdown: float) -> DriftCall:  # fmt: skip
    state = result.online
    return DriftCall(
        task=index, candidate=candidate, phase=phase_of(index, plan.switch_at),
        slowdown=slowdown, slice_s=plan.slice_s, latency_s=round(result.latency_s, 4),
        predicted_latency_s=None if result.plan.prediction is None
        else round(result.plan.prediction.latency_mean_s, 4),
        config=result.config.label if result.config else None,
        n=result.config.n if result.config else 0,
        correct=result.answer is not None and result.answer.key == answer_key(task),
        degraded=result.degraded, cut=CUT_MARK in (result.degraded_reason or ""),
        refused=REFUSED_MARK in (result.degraded_reason or ""),
        ttft_factor=None if state is None else round(state.ttft_factor, 3),
        per_token_factor=None if state is None else round(state.per_token_factor, 3),
        reason=result.degraded_reason,
    )  # fmt: skip


async def run_drift(
    pool: EndpointPool,
    plan: DriftPlan,
    tasks: Sequence[Task],
    *,
    latency: LatencyModel,
    length: LengthModel,
    seed: int,
    progress: Callable[[str], None] | None = None,
) -> list[DriftCall]:
    """Both candidates on every task (seeded order) through one proxy that slows
    down from ``plan.switch_at`` on; the raw calls."""
    plan = replace(plan, tasks=len(tasks))
    online, lengths = OnlineLatency(), OnlineLength()
    models = CallModels(latency={PLAIN_GROUP: latency}, length=length)
    spec = _plain_endpoint(pool)
    calls: list[DriftCall] = []
    async with (
        FaultProxy(*spec.address) as proxy,
        EndpointPool([spec.model_copy(update={"url": proxy.url})],
                     health_interval_s=0) as proxied,
    ):  # fmt: skip
        for i, (task, order) in enumerate(zip(tasks, call_orders(seed, len(tasks)), strict=True)):
            if i == plan.switch_at:
                proxy.slowdown = plan.slowdown
                if progress is not None:
                    progress(f"task {i}: responses now {plan.slowdown:g}x slower")
            for candidate in order:
                executor = TTSExecutor(
                    proxied, models=models, space=plan.space(), sla_quantile=plan.sla_quantile,
                    run_seed=seed * 10_007 + i, hedge=None,
                    online=online if candidate == "online" else None,
                    lengths=lengths if candidate == "online" else None,
                )  # fmt: skip
                result = await executor.run(_messages(task), slice_s=plan.slice_s,
                                            answer_spec=answer_spec_for(task),
                                            call_site="addition")  # fmt: skip
                calls.append(_record(result, task, i, candidate, plan, proxy.slowdown))
            if progress is not None:
                progress(f"task {i + 1}/{len(tasks)} done")
    return calls


def plot_drift(rows: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Per candidate, actual (solid) and predicted (dotted) latency by task, the
    slice and the slow-down marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for candidate, color in zip(CANDIDATES, ("tab:blue", "tab:orange"), strict=True):
        at = sorted((r for r in rows if r["candidate"] == candidate), key=lambda r: r["task"])
        ax.plot([r["task"] for r in at], [r["latency_s"] for r in at], "-o", color=color,
                markersize=3, label=f"{candidate}: actual")  # fmt: skip
        ax.plot([r["task"] for r in at], [r["predicted_latency_s"] for r in at], ":",
                color=color, label=f"{candidate}: predicted")  # fmt: skip
    if rows:
        ax.axhline(rows[0]["slice_s"], color="k", linewidth=0.8, label="slice")
        after = [r["task"] for r in rows if r["phase"] == "after"]
        if after:
            ax.axvline(min(after) - 0.5, color="r", linestyle="--", linewidth=0.8,
                       label="slow-down")  # fmt: skip
    ax.set_xlabel("task")
    ax.set_ylabel("call latency (s)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


async def _measure(ctx: BenchContext) -> Measured:
    plan = DriftPlan.quick() if ctx.quick else DriftPlan()
    if ctx.count is not None:
        plan = replace(plan, tasks=ctx.count)
    latency = ctx.latency_models()[PLAIN_GROUP]
    scored, length = await scored_and_length(ctx, plan.tasks, plan.warmup_tasks, plan.max_tokens)
    calls = await run_drift(ctx.pool, plan, scored, latency=latency, length=length,
                            seed=ctx.seed, progress=ctx.console.print)  # fmt: skip
    rows = [asdict(c) for c in calls]
    phases = phase_rows(rows)
    parameters = {
        **asdict(plan), "count": plan.tasks, "switch_at": plan.switch_at,
        "tasks": str(ctx.tasks), "calibration": str(ctx.calibration_file()),
        "length_model_samples": list(length.samples),
    }  # fmt: skip
    return Measured(parameters, rows, {"phases": phases, **drift_summary(phases)})


def _tables(result: BenchResult) -> Tables:
    p = result.parameters
    caps = p.get("max_tokens_choices") or [p.get("max_tokens")]
    caption = (
        f"{p['count']} tasks, one call per candidate each inside a {p['slice_s']} s slice "
        f"(p{p['sla_quantile'] * 100:g}, majority n up to {max(p['ns'])}, max_tokens "
        f"{'/'.join(str(t) for t in caps)}); responses {p['slowdown']:g}x slower from task "
        f"{p['switch_at']} on"
    )
    phases = phase_rows(result.rows)
    s = drift_summary(phases)
    lines = (
        f"after the slow-down, online minus frozen: share inside "
        f"{s.get('after_inside_online_minus_frozen')}, share cut "
        f"{s.get('after_cut_online_minus_frozen')}, accuracy "
        f"{s.get('after_accuracy_online_minus_frozen')}, APE median "
        f"{s.get('after_ape_median_online_minus_frozen')} (over calls not cut: "
        f"{s.get('after_ape_median_uncut_online_minus_frozen')}). `factors`: the online "
        f"TTFT / per-token corrections the phase's last call planned with.\n"
    )
    return [
        (caption, markdown_table(phases)),
        (f"by blocks of {p['window']} tasks", markdown_table(window_rows(result.rows,
                                                                         p["window"]))),
        ("online vs frozen after the slow-down", lines),
    ]  # fmt: skip


BENCHMARK = Benchmark(
    "drift", "a server 3x slower halfway through: latency models learned online vs frozen",
    _measure, _tables, plot=plot_drift, pool=(1, 0),
)  # fmt: skip
