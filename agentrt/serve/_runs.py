"""Running a request's graph on the worker's Runtime, under the request's deadline.

:meth:`RunService.start` decides everything before the run starts: the graph
(with the checkpointer for a thread run), the deadline (:func:`run_deadline`,
counted from when the request arrived), admission (the in-flight cap, and
whether the deadline can be met at all), the config (``thread_id``, the run's
metadata) and the context (``deadline_s`` taken out). The run itself is an
asyncio task around :meth:`agentrt.Runtime.run`, which returns by its deadline
whatever happens; cancelling the task (a cancel request, a client that left)
cancels the graph. Every wait on a run here is bounded by its deadline plus
:data:`GUARD_S`, so no response outlives it even if something below misbehaved.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command

from agentrt.core._clock import Clock, current_clock, timeout_after
from agentrt.core._log import log_dropped
from agentrt.core._redact import truncate_redacted
from agentrt.langgraph._runner import RunObserver, RunResult
from agentrt.langgraph._runtime import Runtime
from agentrt.serve._admission import Admission
from agentrt.serve._deadlines import MAX_DEADLINE_S, run_deadline
from agentrt.serve._graphs import GraphCatalog
from agentrt.serve._protocol import CommandBody, RequestRefused, RunCreate
from agentrt.serve._streaming import EventQueue
from agentrt.serve._threads import RunRecord, RunRegistry, ThreadRecord
from agentrt.tracing import RecentRuns

__all__ = ["GUARD_S", "SETTLE_S", "RunService", "StartedRun", "outcome_headers"]

GUARD_S = 0.5
"""Seconds past a run's deadline after which the server stops waiting for it and
cancels it (the Runtime returns by its deadline: this only guards against a bug);
a cancelled run is waited for as long again at most."""
SETTLE_S = 0.1
"""How long a thread run waits for the thread's previous, cut run to finish
unwinding (its last writes land) before it starts: part of its own deadline."""
STATE_READ_S = 2.0
"""At most this long reading a thread's state for a response (a slow database)."""
RESERVED_CONFIGURABLE = ("thread_id", "checkpoint_id", "checkpoint_ns", "checkpoint_map")
"""Keys of ``config.configurable`` the server sets itself."""
REASON_HEADER_LIMIT = 300


@dataclass
class StartedRun:
    """A run that has started: its record, its events (streamed runs) and what a
    client that disconnects does to it."""

    record: RunRecord
    events: EventQueue | None
    on_disconnect: Literal["cancel", "continue"]


class RunService:
    """Starts, waits for and cancels the runs of one worker."""

    def __init__(
        self,
        runtime: Runtime,
        catalog: GraphCatalog,
        registry: RunRegistry,
        admission: Admission,
        saver: BaseCheckpointSaver[Any],
        *,
        max_deadline_s: float = MAX_DEADLINE_S,
        clock: Clock | None = None,
        recent: RecentRuns | None = None,
    ) -> None:
        self.runtime = runtime
        self.catalog = catalog
        self.registry = registry
        self.admission = admission
        self.saver = saver
        self.max_deadline_s = max_deadline_s
        self.clock = clock or runtime.clock or current_clock()
        self.recent = recent
        """Where each run's spans are kept, under its run id (the runs page's waterfalls)."""

    # -- threads ------------------------------------------------------------------

    async def find_thread(
        self, thread_id: str, within_s: float = STATE_READ_S
    ) -> ThreadRecord | None:
        """The thread ``thread_id``: known here, or found in the checkpointer (made by
        another worker sharing it; its latest checkpoint names its graph)."""
        known = self.registry.thread(thread_id)
        if known is not None:
            return known
        config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        async with self._reading(f"looking up thread {thread_id!r}", within_s):
            found = await self.saver.aget_tuple(config)  # type: ignore[arg-type]
        if found is None:
            return None
        graph = found.metadata.get("graph_id") if found.metadata else None
        record = self.registry.new_thread(thread_id, {"graph_id": graph} if graph else {})
        created = found.checkpoint.get("ts")
        if isinstance(created, str):
            record.created_at = record.updated_at = created
        return record

    async def thread(self, thread_id: str) -> ThreadRecord:
        """The thread ``thread_id``, else a 404 naming it."""
        found = await self.find_thread(thread_id)
        if found is None:
            raise RequestRefused(404, f"thread {thread_id!r} not found", field="thread_id",
                                 value=thread_id)  # fmt: skip
        return found

    async def state(
        self, thread: ThreadRecord, checkpoint_id: str | None = None, within_s: float = STATE_READ_S
    ) -> Any:
        """The thread's LangGraph state snapshot (None before its first run)."""
        if thread.graph_id is None:
            return None
        graph = self.catalog.threaded(thread.graph_id)
        configurable = {"thread_id": thread.thread_id, "checkpoint_ns": ""}
        if checkpoint_id:
            configurable["checkpoint_id"] = checkpoint_id
        async with self._reading(f"reading the state of thread {thread.thread_id!r}", within_s):
            return await graph.aget_state({"configurable": configurable})

    async def history(
        self, thread: ThreadRecord, *, limit: int, before: str | None = None,
        within_s: float = STATE_READ_S,
    ) -> list[Any]:  # fmt: skip
        """The thread's state snapshots, newest first: at most ``limit``, those
        before checkpoint ``before`` when given (empty before its first run)."""
        if thread.graph_id is None:
            return []
        graph = self.catalog.threaded(thread.graph_id)
        config = {"configurable": {"thread_id": thread.thread_id, "checkpoint_ns": ""}}
        older = None
        if before is not None:
            older = {"configurable": {**config["configurable"], "checkpoint_id": before}}
        async with self._reading(f"reading the history of thread {thread.thread_id!r}", within_s):
            return [s async for s in graph.aget_state_history(config, limit=limit, before=older)]

    @contextlib.asynccontextmanager
    async def _reading(self, what: str, within_s: float) -> AsyncIterator[None]:
        """A read of the checkpointer, given at most ``within_s``: past it, a 504."""
        limit_s = max(0.0, min(within_s, STATE_READ_S))
        try:
            async with timeout_after(limit_s, clock=self.clock):
                yield
        except TimeoutError:
            raise RequestRefused(504, f"{what} took over {limit_s:.3f}s") from None

    # -- runs ---------------------------------------------------------------------

    async def start(
        self,
        body: RunCreate,
        *,
        thread_id: str | None,
        header: str | None,
        received_at: float,
        stream: bool,
    ) -> StartedRun:
        """Check, admit and start a run; a :class:`RequestRefused` says why not."""
        served = self.catalog.get(body.assistant_id)
        name = served.name
        deadline = run_deadline(
            header=header,
            context=body.context,
            configurable=body.configurable,
            profile_deadline_s=self.catalog.profile(name).spec.deadline_s,
            max_deadline_s=self.max_deadline_s,
        )
        ends_by = received_at + deadline.seconds
        thread = await self._thread_for(body, thread_id, ends_by - self.clock.now())
        run_id = str(uuid.uuid4())
        if thread is not None:
            self.registry.bind(thread, name)
            thread.check_idle()
            graph = self.catalog.threaded(name)
            start_nodes = await self._resumes_at(thread, body, ends_by - self.clock.now())
        else:
            graph, start_nodes = served.graph, None
        left_s = ends_by - self.clock.now()
        self.admission.check_deadline(
            name, left_s, self.catalog.minimum_s(name, start_nodes), self.runtime.slowdown()
        )
        self.admission.enter()
        try:
            if thread is not None and thread.last_cut:
                await self.runtime.settle(min(SETTLE_S, left_s / 10))
            record = RunRecord(
                run_id=run_id,
                thread_id=thread.thread_id if thread is not None else str(uuid.uuid4()),
                assistant_id=name,
                deadline=deadline,
                metadata=dict(body.metadata or {}),
                stateless=thread is None,
                ends_by=ends_by,
            )
            events = EventQueue(body.stream_modes) if stream else None
            config = _config(body, name, record)
            self.registry.start(record, thread)
        except BaseException:
            self.admission.leave()
            raise
        record.task = asyncio.create_task(
            self._execute(record, graph, body, config, events),
            name=f"agentrt-serve-run-{run_id}",
            context=self.recent.context_for(run_id) if self.recent is not None else None,
        )
        return StartedRun(record, events, body.on_disconnect or "cancel")

    async def _thread_for(
        self, body: RunCreate, thread_id: str | None, within_s: float
    ) -> ThreadRecord | None:
        if thread_id is None:
            return None
        found = await self.find_thread(thread_id, within_s)
        if found is not None:
            return found
        if body.if_not_exists == "create":
            return self.registry.new_thread(thread_id)
        raise RequestRefused(
            404,
            f"thread {thread_id!r} not found; create it first (POST /threads) or send "
            "if_not_exists='create'",
            field="thread_id",
            value=thread_id,
        )

    async def _resumes_at(
        self, thread: ThreadRecord, body: RunCreate, within_s: float
    ) -> tuple[str, ...] | None:
        """The nodes a thread run without input goes on from (its state's ``next``)."""
        if body.input is not None or body.command is not None or thread.graph_id is None:
            return None
        try:
            snapshot = await self.state(thread, body.checkpoint_id, within_s)
        except Exception as exc:  # the admission estimate falls back to the whole graph
            log_dropped("reading a thread's next nodes failed", exc)
            return None
        return tuple(snapshot.next) if snapshot is not None and snapshot.next else None

    async def _execute(
        self,
        record: RunRecord,
        graph: Any,
        body: RunCreate,
        config: dict[str, Any],
        events: EventQueue | None,
    ) -> RunResult | None:
        def on_chunk(mode: str, chunk: Any) -> None:
            if mode == "values":
                record.last_values = chunk
            if events is not None:
                events.chunk(mode, chunk)

        modes = ("values", *(events.modes if events is not None else ()))
        result: RunResult | None = None
        cancelled, reason = False, None
        try:
            result = await self.runtime.run(
                graph,
                _input(body),
                deadline=max(1e-3, record.ends_by - self.clock.now()),
                config=config,
                context=_context(body.context),
                profile=self.catalog.get(record.assistant_id).profile,
                graph_path=self.catalog.get(record.assistant_id).path,
                observer=RunObserver(stream_modes=tuple(dict.fromkeys(modes)), on_chunk=on_chunk),
            )
            return result
        except asyncio.CancelledError:
            cancelled, reason = True, record.cancel_reason or "cancelled"
            raise
        except Exception as exc:  # refused before the graph started (a configuration error)
            reason = truncate_redacted(f"{type(exc).__name__}: {exc}", 500)
            log_dropped(f"run {record.run_id} could not start", exc)
            return None
        finally:
            failed = result is None and not cancelled
            record.finish(result, cancelled=cancelled, reason=reason, failed=failed)
            self.registry.finished(record)
            self.admission.leave()
            if events is not None:
                events.close()

    async def wait(self, started: StartedRun, disconnected: asyncio.Future[None] | None) -> None:
        """Wait until the run ends (by its deadline plus :data:`GUARD_S` at most); a
        client that disconnects first cancels it (unless ``on_disconnect="continue"``)."""
        task = started.record.task
        assert task is not None
        waiting: set[asyncio.Future[Any]] = {task}
        if disconnected is not None:
            waiting.add(disconnected)
        left_s = started.record.ends_by + GUARD_S - self.clock.now()
        with contextlib.suppress(TimeoutError):
            async with timeout_after(left_s, clock=self.clock):
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return
        if disconnected is not None and disconnected.done():
            if started.on_disconnect == "cancel":
                await self.cancel(started.record, "the client disconnected")
            return
        await self.cancel(started.record, f"the server's guard ({GUARD_S:g}s past the deadline)")

    async def join(self, record: RunRecord) -> None:
        """Wait for a run to end (bounded by its deadline plus :data:`GUARD_S`)."""
        task = record.task
        if task is None or task.done():
            return
        await self.wait(StartedRun(record, None, "continue"), None)

    async def cancel(self, record: RunRecord, reason: str, *, wait: bool = True) -> None:
        """Cancel a run in flight (its graph is cancelled); ``wait`` for it to end."""
        task = record.task
        if task is None or task.done():
            return
        record.cancel_reason = reason
        task.cancel()
        if wait:
            with contextlib.suppress(TimeoutError):
                async with timeout_after(GUARD_S, clock=self.clock):
                    await asyncio.wait({task})

    async def shutdown(self) -> None:
        """Cancel every run still in flight (the server is stopping)."""
        for record in self.registry.in_flight():
            await self.cancel(record, "the server is shutting down", wait=False)
        tasks = [r.task for r in self.registry.in_flight() if r.task is not None]
        if tasks:
            with contextlib.suppress(TimeoutError):
                async with timeout_after(GUARD_S, clock=self.clock):
                    await asyncio.wait(tasks)


def outcome_headers(record: RunRecord) -> dict[str, str]:
    """agentrt's outcome of a finished run as ``agentrt-*`` response headers."""
    outcome = record.outcome or {}
    headers = {
        "agentrt-run-id": record.run_id,
        "agentrt-run-status": record.status,
        "agentrt-degraded": "true" if outcome.get("degraded", True) else "false",
        "agentrt-deadline-s": f"{record.deadline.seconds:.3f}",
        "agentrt-deadline-source": record.deadline.source,
    }
    elapsed = outcome.get("elapsed_s")
    if isinstance(elapsed, float):
        headers["agentrt-elapsed-s"] = f"{elapsed:.3f}"
    reason = outcome.get("reason")
    if reason:
        headers["agentrt-reason"] = _header_text(str(reason))
    return headers


def _header_text(text: str) -> str:
    """``text`` fit for a header value: one line of ASCII, cut."""
    flat = " ".join(text.split()).encode("ascii", "backslashreplace").decode("ascii")
    return truncate_redacted(flat, REASON_HEADER_LIMIT)


def _input(body: RunCreate) -> Any:
    command = body.command
    if command is None:
        return body.input
    return _command(command)


def _command(command: CommandBody) -> Command[Any]:
    update: Any = command.update
    goto: Any = command.goto if command.goto is not None else ()
    return Command(resume=command.resume, update=update, goto=goto)


def _context(context: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The graph's context: the request's, less agentrt's ``deadline_s``."""
    if context is None:
        return None
    return {k: v for k, v in context.items() if k != "deadline_s"}


def _config(body: RunCreate, name: str, record: RunRecord) -> dict[str, Any]:
    """The run's LangGraph config: the request's ``configurable`` (less what the
    server sets), ``tags`` and ``recursion_limit``; the thread; metadata that names
    the graph (its checkpoints then say which graph a thread belongs to)."""
    given = body.config or {}
    configurable = {k: v for k, v in body.configurable.items() if k not in RESERVED_CONFIGURABLE}
    if not record.stateless:
        configurable["thread_id"] = record.thread_id
        if body.checkpoint_id:
            configurable["checkpoint_id"] = body.checkpoint_id
    given_metadata = given.get("metadata")
    metadata = {
        **(given_metadata if isinstance(given_metadata, dict) else {}),
        **record.metadata,
        "graph_id": name,
        "assistant_id": name,
        "run_id": record.run_id,
        "thread_id": record.thread_id,
    }
    config: dict[str, Any] = {"configurable": configurable, "metadata": metadata}
    for key in ("tags", "recursion_limit"):
        if key in given:
            config[key] = given[key]
    return config
