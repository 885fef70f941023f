"""The public namespace is exactly what it says (as httpx tests its own)."""

from __future__ import annotations

import agentrt

EXPECTED = {
    "AgentrtError", "BudgetManager", "BudgetProfile", "BudgetRefused", "BudgetSpec",
    "ChatRequest", "Clock", "ConfigurationError", "Deadline", "DeadlineExceeded",
    "EndpointPool", "EndpointSpec", "FakeClock", "LocalPool", "MonotonicClock", "Result",
    "RunDeadlineExceeded", "RunError", "RunResult", "TTSChatModel", "TTSConfig", "TTSExecutor",
    "current_deadline", "deadline_scope", "get_budget", "load_graph", "load_profile", "run",
    "run_sync",
}  # fmt: skip


def test_all_is_sorted_and_exact() -> None:
    assert agentrt.__all__ == sorted(agentrt.__all__)
    assert set(agentrt.__all__) == EXPECTED


def test_every_name_resolves_and_is_documented() -> None:
    for name in agentrt.__all__:
        value = getattr(agentrt, name)
        assert value.__doc__, f"agentrt.{name} has no docstring"
