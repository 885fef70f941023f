"""agentrt: run agent workflows under end-to-end deadlines.

A :class:`Runtime` owns a pool of vLLM servers and what is learned about it.
A whole LangGraph run gets one wall-clock budget (:meth:`Runtime.run`, or
:func:`run` on the process-default runtime), split across
the LLM calls the graph will still make; each call is served by a
latency-aware test-time-scaling executor (:class:`TTSExecutor`) on a pool of
vLLM servers (:class:`EndpointPool`), and returns the best answer it has when
its time is up.

The names below are what a LangGraph user reaches for first; each subpackage
(``agentrt.pool``, ``agentrt.tts``, ``agentrt.budget``, ``agentrt.langgraph``,
``agentrt.tracing``, ``agentrt.tuning``, ``agentrt.tasks``) exports the rest.
They load on first use, so ``import agentrt`` itself is cheap and imports no
server client, graph library or command-line dependency.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentrt.budget import BudgetProfile, load_profile
    from agentrt.core import (
        AgentrtError,
        BudgetRefused,
        Clock,
        ConfigurationError,
        Deadline,
        DeadlineExceeded,
        FakeClock,
        RunError,
        current_deadline,
        deadline_scope,
    )
    from agentrt.langgraph import (
        Budget,
        RunDeadlineExceeded,
        RunEvent,
        RunFailed,
        RunObserver,
        RunResult,
        Runtime,
        TTSChatModel,
        get_budget,
        load_graph,
        run,
        run_sync,
    )
    from agentrt.pool import ChatRequest, EndpointPool, EndpointSpec, LocalPool
    from agentrt.tts import AnswerSpec, LastNumber, Result, TTSConfig, TTSExecutor

__version__ = "0.1.0"

_HOME = {
    "agentrt.budget": ("BudgetProfile", "load_profile"),
    "agentrt.core": (
        "AgentrtError", "BudgetRefused", "Clock", "ConfigurationError", "Deadline",
        "DeadlineExceeded", "FakeClock", "RunError", "current_deadline", "deadline_scope",
    ),
    "agentrt.langgraph": (
        "Budget", "RunDeadlineExceeded", "RunEvent", "RunFailed", "RunObserver", "RunResult",
        "Runtime", "TTSChatModel", "get_budget", "load_graph", "run", "run_sync",
    ),
    "agentrt.pool": ("ChatRequest", "EndpointPool", "EndpointSpec", "LocalPool"),
    "agentrt.tts": ("AnswerSpec", "LastNumber", "Result", "TTSConfig", "TTSExecutor"),
}  # fmt: skip
_MODULE_OF = {name: module for module, names in _HOME.items() for name in names}

__all__ = [
    "AgentrtError",
    "AnswerSpec",
    "Budget",
    "BudgetProfile",
    "BudgetRefused",
    "ChatRequest",
    "Clock",
    "ConfigurationError",
    "Deadline",
    "DeadlineExceeded",
    "EndpointPool",
    "EndpointSpec",
    "FakeClock",
    "LastNumber",
    "LocalPool",
    "Result",
    "RunDeadlineExceeded",
    "RunError",
    "RunEvent",
    "RunFailed",
    "RunObserver",
    "RunResult",
    "Runtime",
    "TTSChatModel",
    "TTSConfig",
    "TTSExecutor",
    "current_deadline",
    "deadline_scope",
    "get_budget",
    "load_graph",
    "load_profile",
    "run",
    "run_sync",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'agentrt' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
