"""Tool calls inside the run's budget: each tool gets what the run can spare.

A tool may take the run's soft remaining time less a typical model call, kept
for the agent's answer turn (:func:`tool_timeout_s`). A tool still running
at its share is stopped and the model receives an error ``ToolMessage``
saying so, instead of the run failing or waiting past its deadline; a tool
that raises becomes an error ``ToolMessage`` naming the error (redacted).

One implementation, two ways in:

- :class:`ToolBudget`, a ``langchain.agents`` middleware:
  ``create_agent(model, tools, middleware=[ToolBudget()])``;
- :func:`budget_tool_calls` (and :func:`budget_tool_calls_sync`), LangGraph
  ``ToolNode`` wrappers: ``ToolNode(tools, awrap_tool_call=budget_tool_calls)``.

An async tool is cancelled at its share. A sync tool runs in a worker thread
(LangChain's executor under ``ainvoke``, its own thread under
:func:`budget_tool_calls_sync`), and a thread cannot be cancelled: it is
abandoned, runs on until it returns, and its result is dropped.

Each call is an ``execute_tool {name}`` span under its node's span; a
cancelled one carries the ``agentrt.tool.cancelled`` event (and
``error.type = deadline_exceeded``), and the ``agentrt`` logger says so at
INFO.
"""

from __future__ import annotations

import contextvars
import math
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from langchain.agents.middleware import AgentMiddleware
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.tools.simple import Tool
from langchain_core.tools.structured import StructuredTool
from langgraph.errors import GraphBubbleUp
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from agentrt.budget._profile import BudgetProfile
from agentrt.core._clock import current_clock, timeout_after
from agentrt.core._log import logger
from agentrt.core._redact import truncate_redacted
from agentrt.langgraph._scope import Budget, get_budget, task_identity
from agentrt.tracing._attributes import AGENTRT, ERROR_TYPE
from agentrt.tracing._spans import node_context, record_error, tool_span

__all__ = [
    "TOOL_CANCELLED_EVENT",
    "ToolBudget",
    "budget_tool_calls",
    "budget_tool_calls_sync",
    "final_call_s",
    "tool_timeout_s",
]

TOOL_CANCELLED_EVENT = "agentrt.tool.cancelled"
"""The span event of a tool call stopped at its share of the budget."""
TOOL_TIMEOUT_S = "agentrt.tool.timeout_s"
TOOL_ABANDONED = "agentrt.tool.abandoned"
ERROR_TEXT_LIMIT = 300
"""Characters of a tool's error message the model is shown (redacted first)."""

ToolResult = ToolMessage | Command[Any]
SyncHandler = Callable[[ToolCallRequest], ToolResult]
AsyncHandler = Callable[[ToolCallRequest], Awaitable[ToolResult]]


# -- the share ----------------------------------------------------------------------


def final_call_s(profile: BudgetProfile) -> float:
    """The time kept back for the agent's final model call: a typical call of the
    profile's LLM nodes (``calls_per_visit > 0``, the default node among them):
    the largest ``p50_s``, 0 when it has none.

    After a tool returns, the model still has to turn its result into the
    answer. Keeping only the minimum back would leave that call a slice the
    planner refuses; a typical call's time leaves it one it can plan in.
    """
    nodes = [*profile.nodes.values(), profile.default_node]
    return max((s.p50_s for s in nodes if s.calls_per_visit > 0), default=0.0)


def tool_timeout_s(budget: Budget | None) -> float | None:
    """The seconds a tool may take now: the run's soft remaining time less
    :func:`final_call_s` of its profile, never below 0; ``math.inf`` in a run
    without a deadline, ``None`` outside a run."""
    if budget is None:
        return None
    remaining = budget.soft_remaining_s
    if remaining == math.inf:
        return math.inf
    return max(0.0, remaining - final_call_s(budget.manager.profile))


# -- what the model is told -----------------------------------------------------------


def _call_of(request: ToolCallRequest) -> tuple[str, str]:
    call = request.tool_call
    return str(call.get("name", "tool")), str(call.get("id") or "")


def _cancelled_message(request: ToolCallRequest, share_s: float) -> ToolMessage:
    name, call_id = _call_of(request)
    return ToolMessage(
        content=(
            f"tool {name!r} was cancelled: it ran past its share of the run's budget "
            f"({share_s:.2f} s)"
        ),
        tool_call_id=call_id,
        name=name,
        status="error",
    )


def _failed_message(request: ToolCallRequest, error: Exception) -> ToolMessage:
    name, call_id = _call_of(request)
    detail = truncate_redacted(str(error), ERROR_TEXT_LIMIT)
    what = type(error).__name__ + (f": {detail}" if detail else "")
    return ToolMessage(
        content=f"tool {name!r} failed: {what}",
        tool_call_id=call_id,
        name=name,
        status="error",
    )


def _runs_in_thread(tool: BaseTool | None) -> bool:
    """Whether ``ainvoke`` runs this tool's sync function in a worker thread."""
    if tool is None:
        return False
    if isinstance(tool, StructuredTool | Tool):
        return tool.coroutine is None
    return type(tool)._arun is BaseTool._arun


def _record_cancel(
    span: trace.Span, request: ToolCallRequest, share_s: float, *, abandoned: bool
) -> None:
    name, _ = _call_of(request)
    span.add_event(TOOL_CANCELLED_EVENT, {TOOL_TIMEOUT_S: share_s, TOOL_ABANDONED: abandoned})
    span.set_attribute(ERROR_TYPE, "deadline_exceeded")
    span.set_status(Status(StatusCode.ERROR, f"ran past its share ({share_s:.2f} s)"))
    how = "abandoned in its thread (a thread cannot be cancelled)" if abandoned else "cancelled"
    logger.info("tool %r %s at its share of the run's budget (%.2f s)", name, how, share_s)


@contextmanager
def _call_span(request: ToolCallRequest, budget: Budget | None) -> Iterator[trace.Span]:
    """The call's ``execute_tool`` span, under its node's span when the run has
    one; ``agentrt.tool.duration_s`` is measured on the run's clock."""
    node, visit, _ = task_identity()
    name, call_id = _call_of(request)
    clock = budget.deadline.clock if budget is not None else current_clock()
    started = clock.now()
    with (
        node_context(visit, node),
        tool_span(name, call_id=call_id or None, arguments=request.tool_call.get("args")) as span,
    ):
        try:
            yield span.span
        finally:
            span.span.set_attribute(AGENTRT.TOOL_DURATION_S, clock.now() - started)


# -- the wrappers ---------------------------------------------------------------------


async def budget_tool_calls(request: ToolCallRequest, execute: AsyncHandler) -> ToolResult:
    """Run one tool call within :func:`tool_timeout_s` of the run's budget (async).

    A ``ToolNode`` ``awrap_tool_call`` wrapper. At its share the call is
    cancelled (a sync tool in a worker thread is abandoned) and the model gets
    an error ``ToolMessage``; with no time left the tool is not started. A tool
    that raises gives an error ``ToolMessage`` naming the error. Interrupts and
    cancellation from outside pass through.
    """
    budget = get_budget()
    share_s = tool_timeout_s(budget)
    with _call_span(request, budget) as span:
        if share_s is not None and share_s <= 0:
            _record_cancel(span, request, share_s, abandoned=False)
            return _cancelled_message(request, share_s)
        try:
            if budget is None or share_s is None or share_s == math.inf:
                return await execute(request)
            scope = timeout_after(share_s, clock=budget.deadline.clock)
            try:
                async with scope:
                    return await execute(request)
            except TimeoutError:
                if not scope.expired():
                    raise  # the tool's own timeout: a failure like any other
                _record_cancel(span, request, share_s, abandoned=_runs_in_thread(request.tool))
                return _cancelled_message(request, share_s)
        except GraphBubbleUp:
            raise
        except Exception as error:
            record_error(span, error)  # error.type, status, event: redacted
            return _failed_message(request, error)


class _Outcome:
    """What a tool's worker thread hands back."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: ToolResult | None = None
        self.error: BaseException | None = None


def _run_in_thread(request: ToolCallRequest, execute: SyncHandler, share_s: float) -> _Outcome:
    outcome = _Outcome()
    context = contextvars.copy_context()

    def work() -> None:
        try:
            outcome.result = context.run(execute, request)
        except BaseException as error:  # handed to the caller, who re-raises it
            outcome.error = error
        finally:
            outcome.done.set()

    name, _ = _call_of(request)
    threading.Thread(target=work, name=f"agentrt-tool-{name}", daemon=True).start()
    # A thread cannot wait on the run's clock: this waits on the real one.
    outcome.done.wait(share_s)
    return outcome


def budget_tool_calls_sync(request: ToolCallRequest, execute: SyncHandler) -> ToolResult:
    """Run one tool call within :func:`tool_timeout_s` of the run's budget (sync).

    A ``ToolNode`` ``wrap_tool_call`` wrapper, for graphs run with ``invoke``.
    Inside a run with a deadline the tool runs in its own daemon thread and
    is abandoned at its share (the wait is on the real clock, not the run's);
    otherwise, and for errors, as :func:`budget_tool_calls`.
    """
    budget = get_budget()
    share_s = tool_timeout_s(budget)
    with _call_span(request, budget) as span:
        if share_s is not None and share_s <= 0:
            _record_cancel(span, request, share_s, abandoned=False)
            return _cancelled_message(request, share_s)
        try:
            if share_s is None or share_s == math.inf:
                return execute(request)
            outcome = _run_in_thread(request, execute, share_s)
            if not outcome.done.is_set():
                _record_cancel(span, request, share_s, abandoned=True)
                return _cancelled_message(request, share_s)
            if outcome.error is not None:
                raise outcome.error
            assert outcome.result is not None
            return outcome.result
        except GraphBubbleUp:
            raise
        except Exception as error:
            record_error(span, error)  # error.type, status, event: redacted
            return _failed_message(request, error)


class ToolBudget(AgentMiddleware[Any, Any, Any]):
    """``create_agent`` middleware that runs every tool call inside the run's budget.

    Each call may take :func:`tool_timeout_s` (the run's soft remaining time
    less the final model call's minimum); past it the call is cancelled (an
    async tool) or abandoned (a sync tool in a thread, which cannot be
    cancelled) and the model gets ``tool 'NAME' was cancelled: ...`` as an
    error ``ToolMessage``. A tool that raises becomes an error ``ToolMessage``
    too (``create_agent``'s ``ToolNode`` only turns bad arguments into one).
    Outside an agentrt run tools run unbounded; errors are still reported.
    """

    def wrap_tool_call(self, request: ToolCallRequest, handler: SyncHandler) -> ToolResult:
        return budget_tool_calls_sync(request, handler)

    async def awrap_tool_call(self, request: ToolCallRequest, handler: AsyncHandler) -> ToolResult:
        return await budget_tool_calls(request, handler)
