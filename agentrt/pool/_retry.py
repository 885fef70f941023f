"""How the pool retries opening a request: tenacity strategies over one state.

Three limits, each a small tenacity callable (as tenacity's own are), combined
by the pool with ``|``:

- ``RetrySettings.max_attempts`` attempts at most (4);
- no wait that would end past the caller's deadline (:class:`StopAtDeadline`);
- a retry budget shared by every request on the same servers
  (:class:`StopWithoutBudget`, a :class:`~agentrt.core._token_bucket.TokenBucket`):
  each request deposits ``ratio`` tokens, each retry beyond the first attempt
  spends one, so when every server fails, retries add at most ``ratio`` of the
  requests (plus a burst of ``capacity``) instead of multiplying the load by
  ``max_attempts``, the retry storm of the SRE book's "Handling Overload".

Waits grow exponentially with *seeded* jitter (:class:`JitteredWait`): each wait
is shortened by up to ``jitter`` of itself, drawn from a ``random.Random`` the
pool owns, so clients that failed together do not retry together, and a run
with the same seed waits the same.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tenacity import RetryCallState
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from agentrt.core._deadline import Deadline
from agentrt.core._errors import ConfigurationError
from agentrt.core._token_bucket import TokenBucket

__all__ = [
    "DEFAULT_RETRY_BURST",
    "DEFAULT_RETRY_RATIO",
    "JitteredWait",
    "RetrySettings",
    "StopAtDeadline",
    "StopWithoutBudget",
    "default_retry_budget",
]

DEFAULT_RETRY_RATIO = 0.2
"""Retries a shared budget allows per request opened, in the long run (20%)."""
DEFAULT_RETRY_BURST = 10
"""Retries a shared budget allows at once (the bucket's capacity; it starts full)."""


def default_retry_budget() -> TokenBucket:
    """A fresh retry budget with the defaults: ``TokenBucket(0.2, 10)``."""
    return TokenBucket(ratio=DEFAULT_RETRY_RATIO, capacity=DEFAULT_RETRY_BURST)


@dataclass(frozen=True)
class RetrySettings:
    """How hard to retry opening a request.

    Waits grow exponentially from ``initial_wait_s`` up to ``max_wait_s``, each
    shortened by a seeded random fraction of at most ``jitter`` (0 turns jitter
    off); no attempt starts when its wait would pass the deadline.
    """

    max_attempts: int = 4
    initial_wait_s: float = 0.05
    max_wait_s: float = 1.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError(
                f"RetrySettings.max_attempts must be >= 1, got {self.max_attempts!r}"
            )
        if not 0.0 <= self.initial_wait_s <= self.max_wait_s:
            raise ConfigurationError(
                "RetrySettings needs 0 <= initial_wait_s <= max_wait_s, got "
                f"{self.initial_wait_s!r} and {self.max_wait_s!r}"
            )
        if not 0.0 <= self.jitter <= 1.0:
            raise ConfigurationError(f"RetrySettings.jitter must be in [0, 1], got {self.jitter!r}")


class JitteredWait(wait_base):
    """``initial x 2^(n-1)`` capped at ``max``, times ``1 - jitter x U[0, 1)``
    from ``rng``: never longer than the plain exponential wait."""

    def __init__(self, settings: RetrySettings, rng: random.Random) -> None:
        self.settings = settings
        self.rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        s = self.settings
        plain = min(s.max_wait_s, s.initial_wait_s * 2.0 ** (retry_state.attempt_number - 1))
        if s.jitter == 0.0:
            return plain
        return plain * (1.0 - s.jitter * self.rng.random())


class StopAtDeadline(stop_base):
    """Stop retrying when the next wait would end past the deadline."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        upcoming = retry_state.upcoming_sleep or 0.0
        return self.deadline.remaining() <= upcoming


class StopWithoutBudget(stop_base):
    """Stop retrying when the shared budget has no whole token; otherwise take one.

    It spends, so it must be the last condition of an ``|``: tenacity's
    ``stop_any`` asks in order and stops at the first yes, so a token is taken
    only for a retry that will really be made.
    """

    def __init__(self, budget: TokenBucket) -> None:
        self.budget = budget

    def __call__(self, retry_state: RetryCallState) -> bool:
        return not self.budget.try_spend()
