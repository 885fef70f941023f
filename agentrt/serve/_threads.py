"""Threads and runs a server knows of, and how each is shown on the wire.

A thread's *state* lives in the checkpointer (shared by every worker when it is
PostgreSQL); what lives here, per worker, is the bookkeeping around it: when a
thread was made, its metadata, the graph it is bound to, the run in flight on
it, and the runs themselves (their task, their status, agentrt's outcome). A
thread another worker made is found through its latest checkpoint, whose
metadata names its graph.

Finished runs are kept (the latest :data:`KEEP_FINISHED_RUNS`) so a client can
join or read one after it ended.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agentrt.budget._report import BudgetReport
from agentrt.core._clock import wall_time_ns
from agentrt.langgraph._runner import RunResult
from agentrt.serve._deadlines import RunDeadline
from agentrt.serve._encoding import jsonable
from agentrt.serve._protocol import RequestRefused

__all__ = [
    "KEEP_FINISHED_RUNS",
    "RunRecord",
    "RunRegistry",
    "RunStatus",
    "ThreadRecord",
    "interrupts_of",
    "now_iso",
    "outcome_of",
    "run_status",
    "state_view",
]

KEEP_FINISHED_RUNS = 10_000
"""Finished runs a worker remembers (oldest forgotten first)."""

RunStatus = Literal["pending", "running", "success", "error", "timeout", "interrupted"]
ThreadStatus = Literal["idle", "busy", "interrupted", "error"]

_CUT_REASONS = ("hard deadline", "drained at the soft deadline")
"""How the runner's ``reason`` begins when the deadline stopped the graph."""


def now_iso() -> str:
    """The wall-clock time now, ISO 8601 in UTC (for records only, never for deadlines)."""
    return dt.datetime.fromtimestamp(wall_time_ns() / 1e9, tz=dt.UTC).isoformat()


def run_status(result: RunResult | None, *, cancelled: bool = False) -> RunStatus:
    """The Agent Protocol status of a finished run: ``interrupted`` when it was
    cancelled, ``error`` when its graph failed, ``timeout`` when its deadline
    stopped the graph before the end (cut or drained: a thread run resumes from
    there), else ``success`` (``degraded`` in agentrt's outcome says whether
    every LLM call got what it planned)."""
    if cancelled or result is None:
        return "interrupted"
    if result.error is not None:
        return "error"
    if result.cut or (result.reason or "").startswith(_CUT_REASONS):
        return "timeout"
    return "success"


def outcome_of(
    result: RunResult | None, status: RunStatus, deadline: RunDeadline, reason: str | None = None
) -> dict[str, Any]:
    """agentrt's outcome of a run, as JSON: what the final ``agentrt/outcome`` event,
    the ``agentrt-*`` headers and ``GET .../runs/{id}`` report. ``deadline_s`` is the
    deadline the request set (``deadline_source`` says where), ``budget_s`` what was
    left of it when the graph started, ``elapsed_s`` how long the graph ran."""
    if result is None:
        return {
            "status": status, "degraded": True, "reason": reason or "cancelled",
            "deadline_s": deadline.seconds, "deadline_source": deadline.source,
            "budget_s": None, "elapsed_s": None, "error": None, "cut": [], "calls": 0,
            "report": None, "agentrt_run_id": None, "trace_id": None,
        }  # fmt: skip
    report = result.report
    return {
        "status": status,
        "degraded": result.degraded,
        "reason": result.reason,
        "deadline_s": deadline.seconds,
        "deadline_source": deadline.source,
        "budget_s": result.deadline_s,
        "elapsed_s": result.elapsed_s,
        "error": result.error,
        "cut": list(result.cut),
        "calls": len(result.calls),
        "report": _report_view(report),
        "agentrt_run_id": result.run_id,
        "trace_id": result.trace_id if (result.trace_id or "").strip("0") else None,
    }


def _report_view(report: BudgetReport) -> dict[str, Any]:
    """A run's budget report as JSON: its totals, and a row per call and per node."""
    totals = ("budget_s", "elapsed_s", "remaining_s", "policy", "tokens_used", "token_cap",
              "degraded")  # fmt: skip
    return {
        **{name: jsonable(getattr(report, name)) for name in totals},
        "calls": jsonable(report.call_rows()),
        "nodes": jsonable(report.node_rows()),
    }


@dataclass
class RunRecord:
    """One run: where it runs, its task while it runs, and how it ended."""

    run_id: str
    thread_id: str
    assistant_id: str
    deadline: RunDeadline
    metadata: dict[str, Any]
    stateless: bool
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    status: RunStatus = "pending"
    task: asyncio.Task[RunResult | None] | None = None
    result: RunResult | None = None
    outcome: dict[str, Any] | None = None
    last_values: Any = None
    """The last state the graph streamed: a cancelled run's join returns it."""
    ends_by: float = 0.0
    """The instant on the server's clock by which the run must be over (its deadline)."""
    cancel_reason: str | None = None

    @property
    def done(self) -> bool:
        return self.status not in ("pending", "running")

    def finish(
        self, result: RunResult | None, *, cancelled: bool, reason: str | None, failed: bool = False
    ) -> None:
        """The run ended: with ``result``, or none (``cancelled``, or ``failed`` to start)."""
        self.result = result
        self.status = "error" if failed else run_status(result, cancelled=cancelled)
        self.outcome = outcome_of(result, self.status, self.deadline, reason)
        self.updated_at = now_iso()
        if result is not None:
            self.last_values = result.state

    def values(self) -> Any:
        """The run's final (or, cancelled, last streamed) state, as JSON."""
        return jsonable(self.last_values if self.last_values is not None else {})

    def view(self) -> dict[str, Any]:
        """The run as the Agent Protocol's ``Run``, plus ``agentrt`` (its outcome)."""
        return {
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "assistant_id": self.assistant_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "status": self.status,
            "metadata": jsonable(self.metadata),
            "multitask_strategy": "reject",
            "kwargs": {"deadline_s": self.deadline.seconds},
            "agentrt": self.outcome,
        }


@dataclass
class ThreadRecord:
    """One thread's bookkeeping (its state is in the checkpointer)."""

    thread_id: str
    metadata: dict[str, Any] = field(default_factory=dict)
    graph_id: str | None = None
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    running: str | None = None
    last_status: RunStatus | None = None
    last_cut: bool = False

    @property
    def status(self) -> ThreadStatus:
        if self.running is not None:
            return "busy"
        return "error" if self.last_status == "error" else "idle"

    def check_idle(self) -> None:
        """A 409 while another run of this thread is running."""
        if self.running is not None:
            raise RequestRefused(
                409,
                f"thread {self.thread_id!r} is busy with run {self.running!r}; "
                "wait for it (join) or cancel it first",
                field="thread_id",
                value=self.thread_id,
            )

    def view(self, values: Any = None, interrupts: Any = None) -> dict[str, Any]:
        """The thread as the Agent Protocol's ``Thread``."""
        return {
            "thread_id": self.thread_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "metadata": jsonable(self.metadata),
            "status": "interrupted" if interrupts and self.status == "idle" else self.status,
            "values": values,
            "interrupts": interrupts or {},
        }


class RunRegistry:
    """The threads and runs of one worker; a thread runs one run at a time."""

    def __init__(self, keep_finished: int = KEEP_FINISHED_RUNS) -> None:
        self.threads: dict[str, ThreadRecord] = {}
        self._runs: OrderedDict[str, RunRecord] = OrderedDict()
        self._keep = keep_finished

    # -- threads --------------------------------------------------------------------

    def new_thread(
        self, thread_id: str | None = None, metadata: dict[str, Any] | None = None
    ) -> ThreadRecord:
        record = ThreadRecord(thread_id or str(uuid.uuid4()), dict(metadata or {}))
        record.graph_id = _graph_of(record.metadata)
        self.threads[record.thread_id] = record
        return record

    def thread(self, thread_id: str) -> ThreadRecord | None:
        return self.threads.get(thread_id)

    def forget_thread(self, thread_id: str) -> None:
        self.threads.pop(thread_id, None)

    def bind(self, thread: ThreadRecord, assistant: str) -> None:
        """Bind ``thread`` to the graph it first runs; another graph is a 409."""
        if thread.graph_id is None:
            thread.graph_id = assistant
            thread.metadata.setdefault("graph_id", assistant)
        elif thread.graph_id != assistant:
            raise RequestRefused(
                409,
                f"thread {thread.thread_id!r} holds the state of graph {thread.graph_id!r}, "
                f"not {assistant!r}; start a new thread for it",
                field="assistant_id",
                value=assistant,
            )

    # -- runs -----------------------------------------------------------------------

    def start(self, run: RunRecord, thread: ThreadRecord | None) -> None:
        """Record ``run`` as running (on ``thread``: a busy thread is a 409)."""
        if thread is not None:
            thread.check_idle()
            thread.running = run.run_id
            thread.updated_at = now_iso()
        run.status = "running"
        self._runs[run.run_id] = run
        self._forget_old()

    def finished(self, run: RunRecord) -> None:
        thread = self.threads.get(run.thread_id)
        if thread is not None and thread.running == run.run_id:
            thread.running = None
            thread.last_status = run.status
            thread.last_cut = bool(run.result is not None and run.result.cut)
            thread.updated_at = now_iso()

    def run(self, thread_id: str, run_id: str) -> RunRecord:
        """The run ``run_id`` on ``thread_id``, else a 404 naming it."""
        run = self._runs.get(run_id)
        if run is None or run.thread_id != thread_id:
            raise RequestRefused(
                404, f"run {run_id!r} not found on thread {thread_id!r}", field="run_id",
                value=run_id,
            )  # fmt: skip
        return run

    def runs(self) -> list[RunRecord]:
        """Every run remembered, oldest first."""
        return list(self._runs.values())

    def runs_of(self, thread_id: str) -> list[RunRecord]:
        return [r for r in reversed(self._runs.values()) if r.thread_id == thread_id]

    def in_flight(self) -> list[RunRecord]:
        return [r for r in self._runs.values() if not r.done]

    def _forget_old(self) -> None:
        excess = len(self._runs) - self._keep
        if excess <= 0:
            return
        for run_id in [r for r, run in self._runs.items() if run.done][:excess]:
            del self._runs[run_id]


def _graph_of(metadata: dict[str, Any]) -> str | None:
    graph = metadata.get("graph_id")
    return graph if isinstance(graph, str) else None


def interrupts_of(snapshot: Any) -> dict[str, Any]:
    """The interrupts a snapshot's tasks wait on, by task id (a ``Thread``'s ``interrupts``)."""
    out: dict[str, Any] = {}
    for task in snapshot.tasks:
        if task.interrupts:
            out[task.id] = jsonable(task.interrupts)
    return out


def _checkpoint_view(config: Mapping[str, Any] | None, thread_id: str) -> dict[str, Any]:
    configurable = (config or {}).get("configurable", {})
    return {
        "thread_id": configurable.get("thread_id", thread_id),
        "checkpoint_ns": configurable.get("checkpoint_ns", ""),
        "checkpoint_id": configurable.get("checkpoint_id"),
        "checkpoint_map": configurable.get("checkpoint_map"),
    }


def state_view(thread: ThreadRecord, snapshot: Any) -> dict[str, Any]:
    """A LangGraph ``StateSnapshot`` as the Agent Protocol's ``ThreadState`` (the
    empty state of a thread that has not run yet for ``None``)."""
    if snapshot is None:
        return {
            "values": {}, "next": [], "checkpoint": _checkpoint_view(None, thread.thread_id),
            "metadata": {}, "created_at": None, "parent_checkpoint": None, "tasks": [],
            "interrupts": [],
        }  # fmt: skip
    tasks = [
        {
            "id": task.id,
            "name": task.name,
            "error": None if task.error is None else f"{type(task.error).__name__}: {task.error}",
            "interrupts": jsonable(task.interrupts),
            "checkpoint": None,
            "state": None,
            "result": jsonable(task.result),
        }
        for task in snapshot.tasks
    ]
    parent = snapshot.parent_config
    return {
        "values": jsonable(snapshot.values),
        "next": list(snapshot.next),
        "checkpoint": _checkpoint_view(snapshot.config, thread.thread_id),
        "metadata": jsonable(snapshot.metadata or {}),
        "created_at": snapshot.created_at,
        "parent_checkpoint": _checkpoint_view(parent, thread.thread_id) if parent else None,
        "tasks": tasks,
        "interrupts": jsonable(snapshot.interrupts),
    }
