"""One test-time-scaling configuration: what the planner picks for a call."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from agentrt.core._errors import ConfigurationError
from agentrt.pool._endpoint import PLAIN_GROUP

__all__ = [
    "STRATEGY_NAMES",
    "STREAMING_VOTE_STRATEGIES",
    "StrategyName",
    "TTSConfig",
]

StrategyName = Literal["single", "majority", "weighted", "best_of_n", "beam"]
STRATEGY_NAMES: tuple[StrategyName, ...] = get_args(StrategyName)
STREAMING_VOTE_STRATEGIES: frozenset[StrategyName] = frozenset({"majority", "weighted"})
"""Strategies whose vote can be decided before every branch finishes."""


@dataclass(frozen=True, order=True)
class TTSConfig:
    """Strategy x branches x endpoint group x length cap x sampling.

    ``n`` is the number of parallel branches (the beam width for ``beam``).
    ``group`` names an endpoint group of the pool (``"plain"``, ``"spec"``, or
    any other group name the latency models know). ``single`` is greedy
    (``n=1``, temperature 0); sampling strategies with ``n > 1`` need a
    temperature above 0 (vLLM refuses identical greedy branches); ``beam`` is
    deterministic and may run at temperature 0 with any width.
    """

    strategy: StrategyName
    n: int
    group: str = PLAIN_GROUP
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGY_NAMES:
            raise ConfigurationError(
                f"TTSConfig.strategy must be one of {STRATEGY_NAMES}, got {self.strategy!r}"
            )
        if self.n < 1:
            raise ConfigurationError(f"TTSConfig.n must be >= 1, got {self.n}")
        if not self.group:
            raise ConfigurationError("TTSConfig.group must be a non-empty group name")
        if self.max_tokens < 1:
            raise ConfigurationError(f"TTSConfig.max_tokens must be >= 1, got {self.max_tokens}")
        if math.isnan(self.temperature) or not 0.0 <= self.temperature <= 2.0:
            raise ConfigurationError(
                f"TTSConfig.temperature must be in [0, 2], got {self.temperature}"
            )
        if math.isnan(self.top_p) or not 0.0 < self.top_p <= 1.0:
            raise ConfigurationError(f"TTSConfig.top_p must be in (0, 1], got {self.top_p}")
        if self.strategy == "single" and (self.n != 1 or self.temperature != 0.0):
            raise ConfigurationError(
                f"TTSConfig 'single' is greedy: n must be 1 and temperature 0, "
                f"got n={self.n}, temperature={self.temperature}"
            )
        if self.strategy != "beam" and self.n > 1 and self.temperature == 0.0:
            raise ConfigurationError(
                f"TTSConfig.strategy={self.strategy!r} with n={self.n} needs temperature > 0 "
                "(greedy branches are identical)"
            )

    @property
    def label(self) -> str:
        """Short human-readable form: ``majority n=8 on plain, max_tokens=256``."""
        return f"{self.strategy} n={self.n} on {self.group}, max_tokens={self.max_tokens}"

    @property
    def concurrency(self) -> int:
        """Sequences this config adds to its server while it runs."""
        return self.n
