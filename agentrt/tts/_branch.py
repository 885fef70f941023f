"""What the decision functions see of one branch: a frozen snapshot.

The executor builds a :class:`BranchView` from whatever records its streams
keep (the pool's ``BranchRecord`` fits :class:`BranchSource`), so voting and
strategies never import the pool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Protocol

from agentrt.core._errors import ConfigurationError

__all__ = ["BranchSource", "BranchView"]


class BranchSource(Protocol):
    """The fields a streaming branch record must offer (``pool.stream.BranchRecord`` does)."""

    @property
    def index(self) -> int: ...

    @property
    def text(self) -> str: ...

    @property
    def finished(self) -> bool: ...

    @property
    def tokens(self) -> int: ...

    def mean_logprob(self) -> float | None: ...


@dataclass(frozen=True)
class BranchView:
    """One branch at one instant.

    ``score`` is set by a scorer (higher is better; weighted voting uses it as
    the branch's weight); ``mean_logprob`` is the mean token log-probability
    when logprobs were requested.
    """

    index: int
    text: str
    finished: bool
    tokens: int = 0
    mean_logprob: float | None = None
    score: float | None = None

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ConfigurationError(f"BranchView.index must be >= 0, got {self.index}")
        if self.tokens < 0:
            raise ConfigurationError(f"BranchView.tokens must be >= 0, got {self.tokens}")
        if self.score is not None and math.isnan(self.score):
            raise ConfigurationError(f"BranchView.score must not be NaN (branch {self.index})")

    @classmethod
    def of(cls, record: BranchSource, score: float | None = None) -> BranchView:
        """Snapshot a live branch record (text is copied; the record may keep growing)."""
        return cls(
            index=record.index,
            text=record.text,
            finished=record.finished,
            tokens=record.tokens,
            mean_logprob=record.mean_logprob(),
            score=score,
        )

    def with_score(self, score: float) -> BranchView:
        """The same snapshot with a score attached."""
        return replace(self, score=score)
