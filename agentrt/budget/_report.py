"""What a run's budget went to: allocated vs used, per call and per node."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["BudgetReport", "CallRecord", "NodeRecord"]


@dataclass(frozen=True)
class CallRecord:
    """One LLM call: the slice it was given and what it used (None: not finished)."""

    index: int
    node: str
    call_site: str | None
    slice_s: float
    predicted_min_s: float
    status: str
    used_s: float | None
    tokens: int | None


@dataclass(frozen=True)
class NodeRecord:
    """One node over the run: rounds, calls, seconds allocated and used.

    ``busy_s`` is the time between its visits' start and finish, summed.
    """

    node: str
    rounds: int
    calls: int
    allocated_s: float
    used_s: float
    busy_s: float


@dataclass(frozen=True)
class BudgetReport:
    """A snapshot of one run's budget, for the run table and for tuning."""

    budget_s: float
    elapsed_s: float
    remaining_s: float
    policy: str
    tokens_used: int
    token_cap: int | None
    degraded: bool
    calls: tuple[CallRecord, ...]
    nodes: tuple[NodeRecord, ...]

    def call_rows(self) -> list[dict[str, Any]]:
        """The calls as plain dicts (one row each), for tables and JSON."""
        return [asdict(call) for call in self.calls]

    def node_rows(self) -> list[dict[str, Any]]:
        """The nodes as plain dicts (one row each), for tables and JSON."""
        return [asdict(node) for node in self.nodes]
