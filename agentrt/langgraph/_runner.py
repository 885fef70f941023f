"""Run a compiled LangGraph graph under one end-to-end wall-clock budget.

``await agentrt.run(graph, input, deadline=8.0)`` creates the run's
:class:`~agentrt.core._deadline.Deadline` and :class:`~agentrt.budget.BudgetManager`
(seeded with ``graph.get_graph()`` and the profile), an executor on the pool,
and makes them ambient (contextvars, which LangGraph copies into every task).
It streams the graph with ``stream_mode=["values", "tasks"]`` to keep the last
consistent state and each node's start and end, and enforces the deadline with
LangGraph's own levers: ``RunControl.request_drain`` at the soft instant (the
run stops cleanly at the next superstep boundary) and cancellation of the run
at the hard instant (in-flight LLM streams close, which aborts them in vLLM).

Both timers are armed early by the event loop's recent lag (:mod:`agentrt.core._lag`),
so a loop congested by many runs still returns them by their deadline. At the
hard instant the result returns at once: the cut graph is cancelled and
unwinds in the background (its streams close within a few turns of the event
loop), so on a congested loop the unwinding, several turns long, does not add
to the overshoot. A run on a pool it opened itself waits for the unwinding
before closing that pool; :func:`settle_cut_runs` waits for all.

Past the deadline, ``on_expiry = "degrade"`` returns the last consistent state
plus the results of tasks that finished in the cut superstep, flagged;
``"raise"`` raises :class:`RunDeadlineExceeded`, which carries the same result.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from langgraph.errors import GraphDrained
from langgraph.runtime import RunControl

from agentrt.budget._manager import BudgetManager
from agentrt.budget._profile import BudgetProfile, load_profile
from agentrt.budget._report import BudgetReport
from agentrt.budget._topology import GraphTopology
from agentrt.core._clock import Clock, current_clock, timeout_after
from agentrt.core._deadline import Deadline
from agentrt.core._errors import BudgetRefused, ConfigurationError, DeadlineExceeded
from agentrt.core._lag import LoopLag, loop_lag
from agentrt.langgraph._loading import graph_key
from agentrt.langgraph._scope import CallRecord, RunScope, run_scope
from agentrt.pool._endpoint import EndpointSpec, greedy_only_groups
from agentrt.pool._local import pool_endpoints
from agentrt.pool._pool import EndpointPool
from agentrt.tracing._chat import ChatSpans
from agentrt.tracing._setup import flush_traces
from agentrt.tracing._spans import WorkflowSpan, workflow_span
from agentrt.tts._answers import AnswerSpec
from agentrt.tts._calibration_store import resolve_latency
from agentrt.tts._executor import CallModels, TTSExecutor
from agentrt.tts._latency import LatencyModel
from agentrt.tts._online import OnlineLatency
from agentrt.tts._planner import SearchSpace

__all__ = [
    "RunDeadlineExceeded",
    "RunEvent",
    "RunResult",
    "run",
    "run_sync",
    "settle_cut_runs",
    "sync_nodes",
]

CUT_SLACK_S = 0.001
"""A deadline timer that would fire this close to its instant fires now."""
UNWIND_WAIT_S = 5.0
"""How long a run on its own pool waits, after returning its result, for a cut
graph to unwind before it closes the pool."""


@dataclass(frozen=True)
class RunEvent:
    """Progress of a run, for live displays: a node task started or finished."""

    kind: str  # "node_started" | "node_finished"
    node: str
    task_id: str
    at_s: float
    remaining_s: float
    error: str | None = None


@dataclass(frozen=True)
class RunResult:
    """What a run produced and how it went.

    ``state`` is the last consistent graph state (after the last complete
    superstep). ``finished_tasks`` holds the writes of every task that
    finished, including those of a superstep the deadline cut, so nothing
    computed is lost. ``cut`` names the tasks still running when it was cut.
    """

    run_id: str
    state: Any
    degraded: bool
    reason: str | None
    deadline_s: float
    elapsed_s: float
    report: BudgetReport
    cut: tuple[str, ...] = ()
    finished_tasks: tuple[tuple[str, Any], ...] = ()
    calls: tuple[CallRecord, ...] = ()
    trace_id: str | None = None
    trace_file: Path | None = None
    sync_nodes: tuple[str, ...] = ()
    """Nodes written as sync functions: they run in worker threads and cannot be
    cancelled at the deadline (a cut one may still be running after return)."""
    calibration: str | None = None
    """Which latency calibration the run planned with, when the run chose it (the
    pool's fingerprint cache, one measured now, or the prior); None when the caller
    passed ``latency=`` or a pool."""

    @property
    def uncancelled(self) -> tuple[str, ...]:
        """Sync nodes that were still running when the run was cut."""
        return tuple(n for n in self.cut if n in self.sync_nodes)

    @property
    def degraded_calls(self) -> int:
        """LLM calls that returned less than planned (cut, refused, failed over)."""
        return sum(1 for c in self.calls if c.result.degraded)

    @property
    def overshoot_s(self) -> float:
        """Seconds past the deadline at return (0 when inside it)."""
        return max(0.0, self.elapsed_s - self.deadline_s)

    @property
    def deadline_met(self) -> bool:
        """Whether the run returned at or before its deadline."""
        return self.overshoot_s == 0


class RunDeadlineExceeded(DeadlineExceeded):
    """The run's deadline passed and its profile says ``on_expiry = "raise"``.

    ``result`` holds everything the run had computed by then.
    """

    def __init__(self, result: RunResult) -> None:
        self.result = result
        super().__init__("run", result.deadline_s, result.elapsed_s)
        self.args = (f"{self.args[0]}: {result.reason}",)


@dataclass
class _Progress:
    state: Any
    running: dict[str, str] = field(default_factory=dict)  # task id -> node
    finished: list[tuple[str, Any]] = field(default_factory=list)


def _resolve_profile(profile: BudgetProfile | str | Path | None) -> BudgetProfile:
    if profile is None:
        return BudgetProfile.default()
    if isinstance(profile, BudgetProfile):
        return profile
    return _load_profile_cached(Path(profile))


_PROFILES: dict[tuple[str, int, int], BudgetProfile] = {}
_TOPOLOGIES: weakref.WeakKeyDictionary[Any, GraphTopology] = weakref.WeakKeyDictionary()


def _load_profile_cached(path: Path) -> BudgetProfile:
    """The profile at ``path``, parsed once per version of the file (its size and
    modification time): many concurrent runs of one graph share one parse."""
    try:
        stat = path.stat()
    except OSError:
        return load_profile(path)  # names the file in its error
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    cached = _PROFILES.get(key)
    if cached is None:
        if len(_PROFILES) >= 64:
            _PROFILES.clear()
        cached = _PROFILES[key] = load_profile(path)
    return cached


def _topology(graph: Any) -> GraphTopology:
    """The graph's topology, drawn once per compiled graph (a compiled graph does
    not change; drawing it costs ~0.4 ms, paid per run before)."""
    try:
        cached = _TOPOLOGIES.get(graph)
    except TypeError:  # not weakly referenceable or not hashable
        return GraphTopology.from_langgraph(graph)
    if cached is None:
        cached = _TOPOLOGIES[graph] = GraphTopology.from_langgraph(graph)
    return cached


def _check_profile_graph(profile: BudgetProfile, graph_path: str | None) -> None:
    if profile.graph is None or graph_path is None:
        return
    if graph_key(profile.graph) != graph_key(graph_path):
        raise ConfigurationError(
            f"the budget profile is for graph {profile.graph!r}, not {graph_path!r}; "
            "pass the profile tuned for this graph (or none)"
        )


@contextlib.asynccontextmanager
async def _pool_for(
    pool: EndpointPool | None, endpoints: list[EndpointSpec] | None
) -> AsyncIterator[EndpointPool]:
    if pool is not None:
        yield pool
        return
    if endpoints:
        async with EndpointPool(endpoints) as opened:
            yield opened
        return
    async with pool_endpoints() as specs, EndpointPool(specs) as opened:
        yield opened


def _executor(
    pool: EndpointPool,
    profile: BudgetProfile,
    latency: Mapping[str, LatencyModel] | None,
    run_seed: int,
) -> TTSExecutor:
    groups = [g for g in pool.groups if latency is None or g in latency]
    if not groups:
        raise ConfigurationError(
            f"no latency model for any endpoint group of the pool {sorted(pool.groups)}"
        )
    models = {
        g: (latency[g] if latency and g in latency else LatencyModel.prior(g)) for g in groups
    }
    spec = profile.spec
    penalised = spec.lambda_tokens > 0 or spec.lambda_latency > 0
    return TTSExecutor(
        pool,
        observer=ChatSpans(),
        models=CallModels(latency=models),
        # Without a verifier, scores are only self-certainty: plan over greedy and voting.
        space=SearchSpace(
            strategies=("single", "majority"),
            groups=tuple(groups),
            max_tokens_choices=(32, 64),
            greedy_only_groups=greedy_only_groups(e.spec for e in pool.endpoints),
        ),
        objective="penalty" if penalised else "deadline",
        sla_quantile=spec.sla_quantile,
        lambda_tokens=spec.lambda_tokens,
        lambda_latency_s=spec.lambda_latency,
        on_refusal="raise" if spec.on_expiry == "raise" else "degrade",
        run_seed=run_seed,
        # Learned from every call of the run: a call past its prediction changes the next plan.
        online=OnlineLatency(),
    )


async def run(
    graph: Any,
    input: Any,
    *,
    deadline: float,
    profile: BudgetProfile | str | Path | None = None,
    config: Mapping[str, Any] | None = None,
    context: Any = None,
    pool: EndpointPool | None = None,
    endpoints: list[EndpointSpec] | None = None,
    latency: Mapping[str, LatencyModel] | None = None,
    policy: str | None = None,
    answer_spec: AnswerSpec | None = None,
    graph_path: str | None = None,
    run_seed: int = 0,
    on_event: Callable[[RunEvent], None] | None = None,
    judge: Callable[[Any], bool] | None = None,
    task_seed: int | None = None,
    clock: Clock | None = None,
) -> RunResult:
    """Run ``graph`` on ``input`` within ``deadline`` seconds, end to end.

    The pool is ``pool``, else ``endpoints``, else ``AGENTRT_ENDPOINTS``, else
    the local CPU pool (started for the run if none is up). Starting a pool
    happens before the deadline starts. The run is traced as an
    ``invoke_workflow {graph}`` span with a ``node {name}`` span per task; for
    labelled runs, ``judge(state)`` says whether the final state is right.
    """
    if not hasattr(graph, "astream") or not hasattr(graph, "get_graph"):
        raise ConfigurationError(
            f"graph must be a compiled LangGraph graph (StateGraph(...).compile()), "
            f"got {type(graph).__name__}"
        )
    resolved = _resolve_profile(profile)
    _check_profile_graph(resolved, graph_path)
    seconds = _check_deadline(deadline)
    # The wrap-up reserve never takes more than a quarter of a short deadline.
    reserve_s = min(resolved.spec.reserve_s, seconds / 4)
    resolved = resolved.with_spec(deadline_s=seconds, reserve_s=reserve_s)
    clock = clock or current_clock()
    topology = _topology(graph)
    cut: list[asyncio.Task[None]] = []
    async with _pool_for(pool, endpoints) as opened, _settled(cut, owned=pool is None):
        calibration = None
        if latency is None and pool is None and not endpoints:
            # The pool is the configured or the local one: its fingerprint's calibration
            # (measured now on an uncalibrated local pool), else the prior.
            choice = await resolve_latency(opened)
            latency, calibration = choice.models, choice.describe()
        executor = _executor(opened, resolved, latency, run_seed)
        spec = resolved.spec
        hard = Deadline.after(spec.deadline_s, clock=clock, soft_margin_s=spec.reserve_s)
        manager = BudgetManager(hard, resolved, topology, policy)
        scope = RunScope(
            manager, executor, asyncio.get_running_loop(), answer_spec,
            graph_name=str(graph_path or getattr(graph, "name", None) or "graph"),
        )  # fmt: skip
        profile_name = None if isinstance(profile, BudgetProfile) else profile
        with workflow_span(
            graph_key(scope.graph_name), deadline=hard, task_seed=task_seed,
            profile=None if profile_name is None else str(profile_name),
        ) as traced:  # fmt: skip
            try:
                result = await _drive(graph, input, config, context, scope, on_event, traced, cut)
            except RunDeadlineExceeded as exc:
                _record_outcome(traced, exc.result)
                raise
            _record_outcome(traced, result, None if judge is None else judge(result.state))
            return replace(
                result, trace_file=traced.trace_file, trace_id=traced.trace_id,
                calibration=calibration,
            )  # fmt: skip


def _record_outcome(traced: WorkflowSpan, result: RunResult, correct: bool | None = None) -> None:
    """The run's outcome on its workflow span: the span's elapsed time and
    deadline figures are the result's own, computed once."""
    traced.set_outcome(
        correct=correct,
        degraded=result.degraded,
        report=result.report,
        elapsed_s=result.elapsed_s,
        deadline_met=result.deadline_met,
    )


@contextlib.asynccontextmanager
async def _settled(cut: list[asyncio.Task[None]], *, owned: bool) -> AsyncIterator[None]:
    """On the way out of a run on its own pool, let a graph cut at the hard
    deadline finish unwinding before the pool closes (and export its spans)."""
    try:
        yield
    finally:
        if owned and cut:
            with contextlib.suppress(TimeoutError):
                async with timeout_after(UNWIND_WAIT_S):
                    await asyncio.wait(cut)
            flush_traces()


def _check_deadline(deadline: float) -> float:
    if isinstance(deadline, bool) or not isinstance(deadline, int | float) or not deadline > 0:
        raise ConfigurationError(f"deadline must be a positive number of seconds, got {deadline!r}")
    return float(deadline)


async def _drive(
    graph: Any,
    input: Any,
    config: Mapping[str, Any] | None,
    context: Any,
    scope: RunScope,
    on_event: Callable[[RunEvent], None] | None,
    traced: WorkflowSpan,
    cut: list[asyncio.Task[None]],
) -> RunResult:
    manager = scope.manager
    deadline = manager.deadline
    control = RunControl()
    progress = _Progress(state=input)
    reason: str | None = None
    refusal: Exception | None = None
    run_id = str(uuid.uuid4())
    run_config = {**(config or {}), "run_id": run_id}
    with run_scope(scope), loop_lag().measuring() as lag:
        drain = asyncio.create_task(_drain_at_soft_deadline(deadline, control, lag))
        streaming = asyncio.create_task(
            _stream(graph, input, run_config, context, control, progress, manager, on_event,
                    traced),
            name=f"agentrt-run-{run_id}",
        )  # fmt: skip
        try:
            early_s = await _finish_or_cut(streaming, deadline, lag)
            if early_s is not None:
                reason = f"hard deadline of {deadline.budget_s:.3f}s reached"
                if early_s >= 0.001:
                    reason += f" (cut {early_s:.3f}s early for the event loop's lag)"
        except TimeoutError:  # a node's own timeout, not the run's deadline
            reason = "a node raised TimeoutError"
        except GraphDrained:
            reason = f"drained at the soft deadline ({manager.profile.spec.reserve_s:.3f}s reserve)"
        except (BudgetRefused, DeadlineExceeded) as exc:  # on_expiry = "raise": a node refused
            reason = f"refused: {exc}"
            refusal = exc
        finally:
            drain.cancel()
            if not streaming.done():  # cut: cancel the graph, do not wait for it to unwind
                streaming.cancel()
                _UNWINDING.add(streaming)
                streaming.add_done_callback(_unwound)
                cut.append(streaming)
    report = manager.report()
    cut_calls = sum(1 for c in scope.calls if c.result.degraded)
    if reason is None and (report.degraded or cut_calls):
        reason = f"{cut_calls} of {len(scope.calls)} LLM calls degraded (cut, refused, failed over)"
    degraded = reason is not None
    result = RunResult(
        run_id=run_id,
        state=progress.state,
        degraded=degraded,
        reason=reason,
        deadline_s=deadline.budget_s,
        elapsed_s=deadline.elapsed(),
        report=report,
        cut=tuple(sorted(progress.running.values())),
        finished_tasks=tuple(progress.finished),
        calls=tuple(scope.calls),
        sync_nodes=sync_nodes(graph),
    )
    if result.uncancelled:
        result = replace(
            result,
            reason=f"{result.reason}; sync nodes {list(result.uncancelled)} could not be cancelled",
        )
    if manager.profile.spec.on_expiry == "raise" and (refusal is not None or deadline.expired):
        raise RunDeadlineExceeded(result) from refusal
    return result


async def _stream(
    graph: Any, input: Any, run_config: Mapping[str, Any], context: Any, control: RunControl,
    progress: _Progress, manager: BudgetManager, on_event: Callable[[RunEvent], None] | None,
    traced: WorkflowSpan,
) -> None:  # fmt: skip
    stream = graph.astream(
        input, run_config, context=context, stream_mode=["values", "tasks"], control=control
    )
    async for mode, chunk in stream:
        _observe(mode, chunk, progress, manager, on_event, traced)


_UNWINDING: set[asyncio.Task[None]] = set()
"""Graphs cut at their hard deadline and still unwinding (kept referenced until done)."""


def _unwound(task: asyncio.Task[None]) -> None:
    _UNWINDING.discard(task)
    if not task.cancelled():
        task.exception()  # a cut graph may end in an error: it is retrieved, not raised


async def settle_cut_runs(timeout_s: float = math.inf) -> None:
    """Wait (up to ``timeout_s``) for graphs cut at their hard deadline to finish
    unwinding: their LLM streams closed, their spans ended."""
    pending = set(_UNWINDING)
    if not pending:
        return
    with contextlib.suppress(TimeoutError):
        async with timeout_after(timeout_s):
            await asyncio.wait(pending)


def _observe(
    mode: str,
    chunk: Any,
    progress: _Progress,
    manager: BudgetManager,
    on_event: Callable[[RunEvent], None] | None,
    traced: WorkflowSpan,
) -> None:
    if mode == "values":
        progress.state = chunk
        return
    if mode != "tasks" or not isinstance(chunk, dict):
        return
    task_id, node = str(chunk.get("id")), str(chunk.get("name"))
    visit = f"{node}:{task_id}"
    deadline = manager.deadline
    if "triggers" in chunk:
        progress.running[task_id] = node
        manager.node_started(node, visit)
        traced.node_started(node, visit)
        kind, error = "node_started", None
    else:
        progress.running.pop(task_id, None)
        manager.node_finished(node, visit)
        error = None if chunk.get("error") is None else repr(chunk.get("error"))
        traced.node_finished(node, visit, error=error)
        if error is None:
            progress.finished.append((node, chunk.get("result")))
        kind = "node_finished"
    if on_event is not None:
        on_event(RunEvent(kind, node, task_id, deadline.elapsed(), deadline.remaining(), error))


async def _finish_or_cut(
    task: asyncio.Task[None], deadline: Deadline, lag: LoopLag
) -> float | None:
    """Wait for the graph until the hard deadline, its timer armed early by the
    loop's recent lag (re-armed if the lag has fallen when it fires). ``None``
    when the graph finished (its exception raised), else how early it was cut."""
    while True:
        if task.done():  # also when it finished just as the timer fired
            task.result()
            return None
        left = deadline.remaining() - lag.margin_s()
        if left <= CUT_SLACK_S:
            return max(0.0, deadline.remaining())
        try:
            async with timeout_after(left, clock=deadline.clock) as timer:
                await asyncio.shield(task)
        except TimeoutError:
            if not timer.expired():  # the graph raised TimeoutError itself
                raise


async def _drain_at_soft_deadline(deadline: Deadline, control: RunControl, lag: LoopLag) -> None:
    """Ask the graph to stop at its next superstep boundary halfway through the
    wrap-up reserve (between the soft and the hard instant).

    Calls are sliced to end by the soft instant; a wrap-up step (``combine``,
    ``finish``) that starts in the first half of the reserve still runs, and the
    second half is for that step and returning. Draining at the soft instant
    itself would stop exactly the runs whose last call used its whole slice,
    just before the step that turns their work into an answer."""
    if deadline.soft_at >= deadline.hard_at:
        return
    drain_at = (deadline.soft_at + deadline.hard_at) / 2
    while (left := drain_at - deadline.clock.now() - lag.margin_s()) > CUT_SLACK_S:
        await deadline.clock.sleep(left)
    control.request_drain("agentrt soft deadline")


def sync_nodes(graph: Any) -> tuple[str, ...]:
    """The graph's nodes written as plain (sync) functions."""
    names = []
    for name, node in getattr(graph, "nodes", {}).items():
        bound = getattr(node, "bound", None)
        if not name.startswith("__") and getattr(bound, "func", None) is not None:
            names.append(name)
    return tuple(sorted(names))


def run_sync(graph: Any, input: Any, *, deadline: float, **options: Any) -> RunResult:
    """The sync twin of :func:`run` (starts its own event loop)."""
    return asyncio.run(run(graph, input, deadline=deadline, **options))
