"""Drive a compiled LangGraph graph under one end-to-end wall-clock budget.

:meth:`agentrt.Runtime.run` hands :func:`drive_run` the run's parts (an
executor on its pool, the profile with this run's deadline, the graph's
topology, the event loop's lag monitor); the run creates its
:class:`~agentrt.core._deadline.Deadline` and :class:`~agentrt.budget.BudgetManager`
and makes them ambient (contextvars, which LangGraph copies into every task).
It streams the graph with ``stream_mode=["values", "tasks"]`` to keep the last
consistent state and each node's start and end (plus the modes its observer
asks to hear, ``RunObserver.stream_modes``), and enforces the deadline with
LangGraph's own levers: ``RunControl.request_drain`` at the soft instant (the
run stops cleanly at the next superstep boundary) and cancellation of the run
at the hard instant (in-flight LLM streams close, which aborts them in vLLM).

Both timers are armed early by the event loop's recent lag (:mod:`agentrt.core._lag`),
so a loop congested by many runs still returns them by their deadline. At the
hard instant the result returns at once: the cut graph is cancelled and
unwinds in the background (its streams close within a few turns of the event
loop), so on a congested loop the unwinding, several turns long, does not add
to the overshoot; the runtime keeps it until it has unwound
(:meth:`agentrt.Runtime.settle`).

Past the deadline, ``on_expiry = "degrade"`` returns the last consistent state
plus the results of tasks that finished in the cut superstep, flagged;
``"raise"`` raises :class:`RunDeadlineExceeded`, which carries the same result.

Once the graph has started, every failure becomes a result: a node that
raised (an endpoint's rejection, a graph's recursion limit, a bug in the
node), the graph's own error — each is caught here and returned as the
last consistent state, every call's result, ``degraded=True`` and a reason
that names what failed (``error`` says the exception). ``on_error="raise"``
raises :class:`RunFailed` carrying that result instead. Only cancellation of
the caller (a ``BaseException``) passes through.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from langgraph.errors import GraphDrained
from langgraph.runtime import RunControl

from agentrt.budget._manager import BudgetManager
from agentrt.budget._profile import BudgetProfile
from agentrt.budget._report import BudgetReport
from agentrt.budget._topology import GraphTopology
from agentrt.core._clock import timeout_after
from agentrt.core._deadline import Deadline
from agentrt.core._errors import BudgetRefused, DeadlineExceeded, RunError
from agentrt.core._lag import LoopLag
from agentrt.core._log import log_dropped
from agentrt.core._redact import truncate_redacted
from agentrt.langgraph._loading import graph_key
from agentrt.langgraph._scope import CallRecord, RunScope, run_scope
from agentrt.tracing._spans import WorkflowSpan, workflow_span
from agentrt.tts._answers import AnswerSpec
from agentrt.tts._executor import TTSExecutor

__all__ = [
    "ON_ERROR",
    "RunDeadlineExceeded",
    "RunEvent",
    "RunFailed",
    "RunObserver",
    "RunResult",
    "drive_run",
    "sync_nodes",
]

CUT_SLACK_S = 0.001
"""A deadline timer that would fire this close to its instant fires now."""
ON_ERROR = ("degrade", "raise")
"""What a run does when its graph fails: return the result flagged, or raise
:class:`RunFailed` carrying it."""
ERROR_TEXT_LIMIT = 500
"""Characters of a failure's message kept in ``RunResult.reason``/``error`` (redacted first)."""


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
    """Which latency calibration the run planned with, when its runtime chose it (the
    pool's fingerprint cache, one measured now, or the prior); None when the runtime
    was given ``latency=``, ``endpoints=`` or a pool."""
    error: str | None = None
    """What failed, when the graph raised (``"EndpointRejected: ..."``, redacted);
    ``None`` for a run that finished or was cut by its deadline."""
    failed_nodes: tuple[str, ...] = ()
    """Node tasks that raised (their writes are lost; the others' are kept)."""

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


class RunFailed(RunError):
    """A run that did not finish cleanly, raised because it was asked to
    (``on_error="raise"``; :class:`RunDeadlineExceeded` for ``on_expiry="raise"``).

    ``result`` holds everything the run had computed by then: one type to catch
    for every way a run can end short, with nothing lost.
    """

    def __init__(self, result: RunResult, message: str | None = None) -> None:
        self.result = result
        RunError.__init__(self, message or f"run {result.run_id} failed: {result.reason}")


class RunDeadlineExceeded(DeadlineExceeded, RunFailed):
    """The run's deadline passed and its profile says ``on_expiry = "raise"``.

    ``result`` holds everything the run had computed by then.
    """

    def __init__(self, result: RunResult) -> None:
        self.scope = "run"
        self.deadline_s = result.deadline_s
        self.elapsed_s = result.elapsed_s
        expired = DeadlineExceeded("run", result.deadline_s, result.elapsed_s)
        RunFailed.__init__(self, result, f"{expired}: {result.reason}")


@dataclass
class _Progress:
    state: Any
    running: dict[str, str] = field(default_factory=dict)  # task id -> node
    finished: list[tuple[str, Any]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # nodes whose task raised


@dataclass(frozen=True)
class RunObserver:
    """Hooks into one run, for live displays and labelled runs (benchmarks, tuning).

    ``on_event`` hears each node task start and finish; ``judge(state)`` says
    whether the final state is right (recorded on the run's span as
    ``agentrt.run.correct``); ``task_seed`` names the seeded task the run solves
    (``agentrt.run.task_seed``). ``on_chunk(mode, chunk)`` hears every chunk the
    graph streams in one of ``stream_modes`` (LangGraph's own: ``"values"``,
    ``"updates"``, ``"custom"``, ``"messages"``, ...), as ``graph.astream`` yields
    it (``agentrt serve`` forwards them to its clients).
    """

    on_event: Callable[[RunEvent], None] | None = None
    judge: Callable[[Any], bool] | None = None
    task_seed: int | None = None
    stream_modes: tuple[str, ...] = ()
    on_chunk: Callable[[str, Any], None] | None = None


async def drive_run(
    graph: Any,
    input: Any,
    *,
    executor: TTSExecutor,
    profile: BudgetProfile,
    topology: GraphTopology,
    lag: LoopLag,
    policy: str | None = None,
    config: Mapping[str, Any] | None = None,
    context: Any = None,
    answer_spec: AnswerSpec | None = None,
    graph_path: str | None = None,
    observer: RunObserver | None = None,
    profile_name: str | Path | None = None,
    on_cut: Callable[[asyncio.Task[None]], None] | None = None,
    on_error: str = "degrade",
) -> RunResult:
    """Run ``graph`` under ``profile``'s deadline (already set for this run) with
    ``executor`` serving its LLM calls; :class:`~agentrt.Runtime` builds the parts.
    ``on_cut`` is handed a graph cut at the hard deadline, still unwinding;
    ``on_error="raise"`` raises :class:`RunFailed` for a graph that failed."""
    observer = observer or RunObserver()
    spec = profile.spec
    hard = Deadline.after(spec.deadline_s, clock=executor.clock, soft_margin_s=spec.reserve_s)
    manager = BudgetManager(hard, profile, topology, policy)
    scope = RunScope(
        manager, executor, asyncio.get_running_loop(), answer_spec,
        graph_name=str(graph_path or getattr(graph, "name", None) or "graph"),
    )  # fmt: skip
    with workflow_span(
        graph_key(scope.graph_name), deadline=hard, task_seed=observer.task_seed,
        profile=None if profile_name is None else str(profile_name),
    ) as traced:  # fmt: skip
        try:
            result = await _drive(
                graph, input, config, context, scope, observer, traced, lag, on_cut, on_error,
            )  # fmt: skip
        except RunFailed as exc:
            _record_outcome(traced, exc.result)
            exc.result = replace(exc.result, trace_file=traced.trace_file, trace_id=traced.trace_id)
            raise
        correct = _judge(observer, result)
        _record_outcome(traced, result, correct)
        return replace(result, trace_file=traced.trace_file, trace_id=traced.trace_id)


def _judge(observer: RunObserver, result: RunResult) -> bool | None:
    """The observer's verdict on the final state; a judge that fails says nothing."""
    if observer.judge is None:
        return None
    try:
        return observer.judge(result.state)
    except Exception as exc:  # a labelling hook must not cost the run its result
        log_dropped("run judge failed", exc)
        return None


def _record_outcome(traced: WorkflowSpan, result: RunResult, correct: bool | None = None) -> None:
    """The run's outcome on its workflow span: the span's elapsed time and
    deadline figures are the result's own, computed once."""
    traced.set_outcome(
        correct=correct,
        degraded=result.degraded,
        report=result.report,
        elapsed_s=result.elapsed_s,
        deadline_met=result.deadline_met,
        error=result.error,
    )


async def _drive(
    graph: Any,
    input: Any,
    config: Mapping[str, Any] | None,
    context: Any,
    scope: RunScope,
    observer: RunObserver,
    traced: WorkflowSpan,
    lag: LoopLag,
    on_cut: Callable[[asyncio.Task[None]], None] | None,
    on_error: str = "degrade",
) -> RunResult:
    manager = scope.manager
    deadline = manager.deadline
    control = RunControl()
    progress = _Progress(state=input)
    reason: str | None = None
    refusal: Exception | None = None
    failure: Exception | None = None
    run_id = str(uuid.uuid4())
    run_config = {**(config or {}), "run_id": run_id}
    with run_scope(scope), lag.measuring():
        drain = asyncio.create_task(_drain_at_soft_deadline(deadline, control, lag))
        streaming = asyncio.create_task(
            _stream(graph, input, run_config, context, control, progress, manager, observer,
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
        except Exception as exc:  # a node, the graph or LangGraph failed: keep what the run had
            failure = exc
            reason = _failure_reason(exc, progress.failed)
        finally:
            drain.cancel()
            if not streaming.done():  # cut: cancel the graph, do not wait for it to unwind
                streaming.cancel()
                if on_cut is not None:
                    on_cut(streaming)
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
        error=None if failure is None else _error_text(failure),
        failed_nodes=tuple(progress.failed),
    )
    if result.uncancelled:
        result = replace(
            result,
            reason=f"{result.reason}; sync nodes {list(result.uncancelled)} could not be cancelled",
        )
    if manager.profile.spec.on_expiry == "raise" and (refusal is not None or deadline.expired):
        raise RunDeadlineExceeded(result) from refusal
    if failure is not None and on_error == "raise":
        raise RunFailed(result) from failure
    return result


def _error_text(exc: BaseException) -> str:
    """``Type: message``, redacted and then cut (a key is never half-shown)."""
    return truncate_redacted(f"{type(exc).__name__}: {exc}", ERROR_TEXT_LIMIT)


def _failure_reason(exc: BaseException, failed: list[str]) -> str:
    where = f"node {failed[-1]!r}" if failed else "the graph"
    return f"{where} failed: {_error_text(exc)}"


async def _stream(
    graph: Any, input: Any, run_config: Mapping[str, Any], context: Any, control: RunControl,
    progress: _Progress, manager: BudgetManager, observer: RunObserver, traced: WorkflowSpan,
) -> None:  # fmt: skip
    own = ("values", "tasks")
    forwarded = observer.stream_modes if observer.on_chunk is not None else ()
    modes = [*own, *(m for m in dict.fromkeys(forwarded) if m not in own)]
    stream = graph.astream(input, run_config, context=context, stream_mode=modes, control=control)
    async for mode, chunk in stream:
        _observe(mode, chunk, progress, manager, observer.on_event, traced)
        if mode in forwarded:
            _forward(observer, mode, chunk)


def _forward(observer: RunObserver, mode: str, chunk: Any) -> None:
    """Hand a streamed chunk to the observer; a failing hook costs the run nothing."""
    assert observer.on_chunk is not None
    try:
        observer.on_chunk(mode, chunk)
    except Exception as exc:  # a streaming hook must not cost the run its result
        log_dropped("run chunk hook failed", exc)


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
        raised = chunk.get("error")
        error = None if raised is None else truncate_redacted(repr(raised), ERROR_TEXT_LIMIT)
        traced.node_finished(node, visit, error=error)
        if error is None:
            progress.finished.append((node, chunk.get("result")))
        else:
            progress.failed.append(node)
        kind = "node_finished"
    if on_event is not None:
        try:
            on_event(RunEvent(kind, node, task_id, deadline.elapsed(), deadline.remaining(), error))
        except Exception as exc:  # a display hook must not cost the run its result
            log_dropped("run event hook failed", exc)


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


def _runs_in_thread(bound: Any) -> bool:
    """A LangGraph ``RunnableCallable`` whose async path is its sync function in an
    executor (``functools.partial(run_in_executor, None, func)``), or that has none."""
    if getattr(bound, "func", None) is None:
        return False
    afunc = getattr(bound, "afunc", None)
    if afunc is None:
        return True
    wrapped = getattr(afunc, "func", None)
    return isinstance(afunc, functools.partial) and getattr(wrapped, "__name__", "") == (
        "run_in_executor"
    )


def sync_nodes(graph: Any) -> tuple[str, ...]:
    """The graph's nodes that run as plain (sync) functions in a worker thread under
    ``ainvoke``: a sync function and no async one (``ToolNode`` and the prebuilt
    agents' nodes have both, and run on the loop)."""
    names = []
    for name, node in getattr(graph, "nodes", {}).items():
        bound = getattr(node, "bound", None)
        if not name.startswith("__") and _runs_in_thread(bound):
            names.append(name)
    return tuple(sorted(names))
