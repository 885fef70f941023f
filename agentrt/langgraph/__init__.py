"""Running LangGraph graphs under a deadline, and the budgeted TTS chat model."""

from agentrt.langgraph._chat_model import TTSChatModel
from agentrt.langgraph._loading import LoadedGraph, load_graph
from agentrt.langgraph._runner import RunDeadlineExceeded, RunEvent, RunResult, run, run_sync
from agentrt.langgraph._scope import Budget, RunScope, current_run, get_budget

__all__ = [
    "Budget",
    "LoadedGraph",
    "RunDeadlineExceeded",
    "RunEvent",
    "RunResult",
    "RunScope",
    "TTSChatModel",
    "current_run",
    "get_budget",
    "load_graph",
    "run",
    "run_sync",
]
