"""agentrt: run agent workflows under end-to-end deadlines.

A whole LangGraph run gets one wall-clock budget (:func:`run`), split across
the LLM calls the graph will still make (:class:`BudgetManager`); each call is
served by a latency-aware test-time-scaling executor (:class:`TTSExecutor`)
on a pool of vLLM servers (:class:`EndpointPool`), and returns the best answer
it has when its time is up.
"""

from agentrt.budget import BudgetManager, BudgetProfile, BudgetSpec, load_profile
from agentrt.core._clock import Clock, FakeClock, MonotonicClock
from agentrt.core._deadline import Deadline, current_deadline, deadline_scope
from agentrt.core._errors import (
    AgentrtError,
    BudgetRefused,
    ConfigurationError,
    DeadlineExceeded,
    RunError,
)
from agentrt.langgraph import (
    RunDeadlineExceeded,
    RunResult,
    TTSChatModel,
    get_budget,
    load_graph,
    run,
    run_sync,
)
from agentrt.pool import ChatRequest, EndpointPool, EndpointSpec, LocalPool
from agentrt.tts._config import TTSConfig
from agentrt.tts._executor import TTSExecutor
from agentrt.tts._result import Result

__version__ = "0.1.0"

__all__ = [
    "AgentrtError",
    "BudgetManager",
    "BudgetProfile",
    "BudgetRefused",
    "BudgetSpec",
    "ChatRequest",
    "Clock",
    "ConfigurationError",
    "Deadline",
    "DeadlineExceeded",
    "EndpointPool",
    "EndpointSpec",
    "FakeClock",
    "LocalPool",
    "MonotonicClock",
    "Result",
    "RunDeadlineExceeded",
    "RunError",
    "RunResult",
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
