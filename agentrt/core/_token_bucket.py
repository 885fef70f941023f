"""A credit bucket counted by calls, not by time (hedges and retries draw on it).

Each call deposits ``ratio`` tokens up to ``capacity``; an extra request (a
hedge, a retry) spends one whole token. So extra load stays near ``ratio`` of
the calls in the long run, with bursts of at most ``capacity``. Buckets are
shared by everything that loads the same servers: an :class:`~agentrt.Runtime`
keeps one hedge bucket and one retry bucket per pool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from agentrt.core._errors import ConfigurationError

__all__ = ["TokenBucket"]

_ROUNDING = 1e-9


@dataclass
class TokenBucket:
    """Counts credit by calls, not by time: each call deposits ``ratio``
    tokens up to ``capacity``; a hedge (or a retry) spends one whole token."""

    ratio: float
    capacity: float
    tokens: float = field(default=math.nan)

    def __post_init__(self) -> None:
        if math.isnan(self.tokens):
            self.tokens = self.capacity
        if math.isnan(self.ratio) or not 0.0 <= self.ratio <= 1.0:
            raise ConfigurationError(f"TokenBucket.ratio must be in [0, 1], got {self.ratio!r}")
        if math.isnan(self.capacity) or not 1.0 <= self.capacity < math.inf:
            raise ConfigurationError(
                f"TokenBucket.capacity must be finite and >= 1, got {self.capacity!r}"
            )
        if not 0.0 <= self.tokens <= self.capacity:
            raise ConfigurationError(
                f"TokenBucket.tokens must be in [0, capacity={self.capacity}], got {self.tokens!r}"
            )

    def deposit(self) -> None:
        """One call started: add ``ratio`` tokens, up to ``capacity``."""
        self.tokens = min(self.capacity, self.tokens + self.ratio)

    @property
    def available(self) -> bool:
        """A whole token is there (allowing for rounding: 20 x 0.05 is one token)."""
        return self.tokens >= 1.0 - _ROUNDING

    def try_spend(self) -> bool:
        """Take a token for one hedge or retry; ``False`` (and nothing taken) when none is left."""
        if not self.available:
            return False
        self.tokens = max(0.0, self.tokens - 1.0)
        return True
