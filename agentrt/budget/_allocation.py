"""One call's slice and the check before spending it (plain values, pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agentrt.budget._estimates import CallEstimate
from agentrt.core._deadline import Deadline

__all__ = ["Allocation", "AllocationStatus", "decide"]

AllocationStatus = Literal["ok", "degraded", "refused"]


@dataclass(frozen=True)
class Allocation:
    """The slice one call was given, and why.

    ``status`` is ``"ok"`` when the predicted minimum fits the slice;
    ``"degraded"`` when it does not but still fits before the reserve (the
    slice is raised to the minimum: run the cheapest config, later calls
    shrink); ``"refused"`` when it cannot finish in time (or the token cap is
    spent): do not start it, return the best so far.
    """

    index: int
    node: str
    call_site: str | None
    visit: str
    slice_s: float
    planned_s: float
    deadline: Deadline
    predicted_min_s: float
    status: AllocationStatus
    reason: str
    time_left_s: float
    available_s: float
    policy: str
    path: tuple[CallEstimate, ...]
    max_tokens: int | None
    started_at: float

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def degraded(self) -> bool:
        return self.status == "degraded"

    @property
    def refused(self) -> bool:
        return self.status == "refused"

    @property
    def what(self) -> str:
        """How errors and reports name this call."""
        site = f" at {self.call_site}" if self.call_site else ""
        return f"call #{self.index} in node {self.node!r}{site}"


def decide(
    slice_s: float,
    min_s: float,
    time_left_s: float,
    reserve_s: float,
    tokens_left: int | None,
) -> tuple[AllocationStatus, float, str]:
    """Check before spending: ``(status, slice, reason)`` for a call whose
    predicted minimum latency is ``min_s`` (pure)."""
    if tokens_left is not None and tokens_left <= 0:
        return "refused", slice_s, "token cap reached"
    if min_s <= slice_s:
        return "ok", slice_s, f"min {min_s:.3f}s fits slice {slice_s:.3f}s"
    usable = max(0.0, time_left_s - reserve_s)
    if min_s <= usable:
        return (
            "degraded",
            min_s,
            f"min {min_s:.3f}s exceeds slice {slice_s:.3f}s; raised to the minimum,"
            f" later calls shrink",
        )
    return (
        "refused",
        slice_s,
        f"min {min_s:.3f}s exceeds the {usable:.3f}s left before the reserve",
    )
