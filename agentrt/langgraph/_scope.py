"""The ambient agentrt run: budget, executor and event loop, readable from any node.

:func:`get_budget` is what nodes and tools call: the time left, the deadline
and the slice the next LLM call of this node would get. It works without
plumbing because the run's :class:`RunScope` travels in a contextvar, which
LangGraph copies into every task (async nodes and sync nodes in threads).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from agentrt.budget._allocation import Allocation
from agentrt.budget._manager import BudgetManager, budget_scope
from agentrt.core._deadline import Deadline, deadline_scope
from agentrt.tts._answers import AnswerSpec
from agentrt.tts._executor import TTSExecutor
from agentrt.tts._result import Result

__all__ = [
    "Budget",
    "CallRecord",
    "RunScope",
    "current_run",
    "get_budget",
    "run_scope",
    "task_identity",
]


@dataclass(frozen=True)
class CallRecord:
    """One LLM call of a run: the slice it was given and what the executor did."""

    allocation: Allocation
    result: Result


@dataclass(frozen=True)
class RunScope:
    """One graph run's runtime pieces; ``calls`` fills in as the run goes."""

    manager: BudgetManager
    executor: TTSExecutor
    loop: asyncio.AbstractEventLoop
    answer_spec: AnswerSpec | None = None
    graph_name: str = "graph"
    calls: list[CallRecord] = field(default_factory=list)


_current: contextvars.ContextVar[RunScope | None] = contextvars.ContextVar(
    "agentrt_run", default=None
)


def current_run() -> RunScope | None:
    """The agentrt run this code runs inside, if any."""
    return _current.get()


@contextmanager
def run_scope(scope: RunScope) -> Iterator[RunScope]:
    """Make ``scope`` (and its deadline and budget) ambient inside the block."""
    token = _current.set(scope)
    try:
        with deadline_scope(scope.manager.deadline), budget_scope(scope.manager):
            yield scope
    finally:
        _current.reset(token)


def task_identity() -> tuple[str, str | None, int | None]:
    """``(node, visit, step)`` of the LangGraph task running this code, from its
    config metadata; ``("call", None, None)`` outside a graph."""
    try:
        from langgraph.config import get_config

        metadata: dict[str, Any] = get_config().get("metadata", {}) or {}
    except RuntimeError:
        return "call", None, None
    node = str(metadata.get("langgraph_node") or "call")
    visit = metadata.get("langgraph_checkpoint_ns")
    step = metadata.get("langgraph_step")
    return node, (str(visit) if visit else None), (int(step) if step is not None else None)


@dataclass(frozen=True)
class Budget:
    """What a node or tool sees of the run's budget right now."""

    manager: BudgetManager
    node: str
    visit: str | None

    @property
    def deadline(self) -> Deadline:
        return self.manager.deadline

    @property
    def remaining_s(self) -> float:
        """Seconds until the run's hard deadline."""
        return self.manager.deadline.remaining()

    @property
    def soft_remaining_s(self) -> float:
        """Seconds until the run should start wrapping up."""
        return self.manager.deadline.soft_remaining()

    def slice_s(self) -> float:
        """The slice the next LLM call of this node would be given now (records nothing)."""
        state = self.manager.state_for(self.node, self.visit)
        return max(0.0, self.manager.policy(state))

    def expect_visits(self, node: str, visits: float) -> None:
        """Say how many rounds ``node`` makes in this run in all, once the graph
        knows (``budget.expect_visits("solve", len(steps))``): the budget is then
        split over that many calls instead of the profile's ``expected_visits``."""
        self.manager.expect_visits(node, visits)


def get_budget() -> Budget | None:
    """The budget of the agentrt run around this node or tool, or ``None``."""
    scope = current_run()
    if scope is None:
        return None
    node, visit, _ = task_identity()
    return Budget(scope.manager, node, visit)
