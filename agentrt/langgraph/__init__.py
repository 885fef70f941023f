"""Running LangGraph graphs under a deadline, and the budgeted TTS chat model.

:class:`Runtime` owns the pool and what is learned about it; :func:`run` and
:func:`run_sync` run on the process-default one.
"""

from agentrt.langgraph._chat_model import TTSChatModel
from agentrt.langgraph._loading import LoadedGraph, load_graph
from agentrt.langgraph._runner import (
    RunDeadlineExceeded,
    RunEvent,
    RunFailed,
    RunObserver,
    RunResult,
)
from agentrt.langgraph._runtime import (
    PoolKnowledge,
    PoolState,
    Runtime,
    default_runtime,
    run,
    run_sync,
)
from agentrt.langgraph._scope import Budget, RunScope, current_run, get_budget
from agentrt.langgraph._tools import (
    ToolBudget,
    budget_tool_calls,
    budget_tool_calls_sync,
    tool_timeout_s,
)

__all__ = [
    "Budget",
    "LoadedGraph",
    "PoolKnowledge",
    "PoolState",
    "RunDeadlineExceeded",
    "RunEvent",
    "RunFailed",
    "RunObserver",
    "RunResult",
    "RunScope",
    "Runtime",
    "TTSChatModel",
    "ToolBudget",
    "budget_tool_calls",
    "budget_tool_calls_sync",
    "current_run",
    "default_runtime",
    "get_budget",
    "load_graph",
    "run",
    "run_sync",
    "tool_timeout_s",
]
