"""Admission: whether a worker takes a run now.

Two checks, both before anything runs. A worker runs at most ``max_in_flight``
runs at once (waiting, streaming and background runs alike): one more is refused
with a 503 and ``Retry-After``, since its deadline would be spent queueing. And a
run whose deadline is shorter than the least time its graph needs (the budget
profile's minimum over the planned path, :func:`agentrt.budget._minimum.minimum_run_s`)
is refused at once with a 504, as gRPC fails a call whose deadline cannot be met,
rather than run to a certain miss. That minimum is for idle servers; at the pool's
current load it is scaled by how much longer a call takes now
(:meth:`agentrt.langgraph.Runtime.slowdown`: the latency model at the least loaded
endpoint's running and waiting sequences). Refusals are counted by reason.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from agentrt.core._errors import ConfigurationError
from agentrt.serve._metrics import count_refusal
from agentrt.serve._protocol import RequestRefused

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "RETRY_AFTER_S", "Admission"]

DEFAULT_MAX_IN_FLIGHT = 64
"""Runs in flight per worker by default."""
RETRY_AFTER_S = 1
"""What a 503 tells the client to wait before retrying (``Retry-After``, seconds)."""


@dataclass
class Admission:
    """The in-flight cap of one worker and its counts: ``admitted`` runs, runs
    ``refused`` by reason (``in_flight``, ``deadline_too_short``), runs ``in_flight``
    now. Each refusal is also counted on agentrt's metrics (``GET /metrics``)."""

    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    in_flight: int = 0
    admitted: int = 0
    refused: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if isinstance(self.max_in_flight, bool) or self.max_in_flight < 1:
            raise ConfigurationError(
                f"max_in_flight must be an integer >= 1, got {self.max_in_flight!r}"
            )

    def check_deadline(
        self, graph: str, deadline_s: float, minimum_s: float, slowdown: float = 1.0
    ) -> None:
        """Refuse (504) a run of ``graph`` that ``deadline_s`` leaves too little time:
        less than ``minimum_s`` (its minimum on idle servers) x ``slowdown`` (how
        much longer calls take at the pool's load now, :meth:`Runtime.slowdown`)."""
        needed_s = minimum_s * max(1.0, slowdown)
        if needed_s > deadline_s or not math.isfinite(deadline_s) or deadline_s <= 0:
            self._refuse("deadline_too_short")
            at_load = (
                f" at the pool's load now ({slowdown:.2f}x its idle minimum {minimum_s:.3f}s)"
                if slowdown > 1.0 else ""
            )  # fmt: skip
            raise RequestRefused(
                504,
                f"deadline {deadline_s:.3f}s cannot be met: graph {graph!r} needs at least "
                f"{needed_s:.3f}s{at_load} (its budget profile's minimum over the planned path)",
                field="deadline_s",
                value=round(deadline_s, 6),
            )

    def enter(self) -> None:
        """Take one run in, or refuse it (503 + ``Retry-After``) at the cap."""
        if self.in_flight >= self.max_in_flight:
            self._refuse("in_flight")
            raise RequestRefused(
                503,
                f"this worker is running {self.in_flight} runs, its cap (--max-in-flight "
                f"{self.max_in_flight}); retry in {RETRY_AFTER_S}s or on another worker",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        self.in_flight += 1
        self.admitted += 1

    def leave(self) -> None:
        """One admitted run ended."""
        self.in_flight = max(0, self.in_flight - 1)

    def _refuse(self, reason: str) -> None:
        self.refused[reason] += 1
        count_refusal(reason)

    def snapshot(self) -> dict[str, object]:
        return {
            "max_in_flight": self.max_in_flight,
            "in_flight": self.in_flight,
            "admitted": self.admitted,
            "refused": dict(self.refused),
        }
