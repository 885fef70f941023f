"""Hedged requests (The Tail at Scale): when a call's duplicate goes out, and how often.

A call still running past the latency model's ``trigger_quantile`` (p95 by
default) for the config it runs, at the load its plan assumed, gets a
duplicate request for its missing branches on another endpoint of the group;
the first branches to finish count, the rest are cancelled. A
:class:`TokenBucket` bounds hedges to about ``budget_ratio`` of calls: each
call deposits ``budget_ratio`` tokens (up to ``burst``), a hedge spends one.
Hedges load the servers, so the bucket is the pool's: an
:class:`~agentrt.Runtime` keeps one per pool and policy, shared by every
executor and run on it, rather than a fresh burst for each new executor.

Everything here is pure or a few lines of state; the executor does the I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from agentrt.core._errors import ConfigurationError
from agentrt.core._token_bucket import TokenBucket
from agentrt.tts._config import TTSConfig
from agentrt.tts._planner import PlanInputs, predict

__all__ = ["HedgePolicy", "TokenBucket", "hedge_at", "hedge_delay_s"]


@dataclass(frozen=True)
class HedgePolicy:
    """When to hedge and how much hedging to allow.

    ``trigger_quantile``: hedge once the call runs past this quantile of its
    predicted latency. ``budget_ratio``: hedges per call in the long run (the
    bucket's refill per call). ``burst``: the most hedges the bucket can hold
    (it starts full). ``min_delay_s``: never hedge sooner than this, a floor
    for an optimistic latency model.
    """

    trigger_quantile: float = 0.95
    budget_ratio: float = 0.05
    burst: float = 2.0
    min_delay_s: float = 0.0

    def __post_init__(self) -> None:
        _check("trigger_quantile", self.trigger_quantile, 0.0 < self.trigger_quantile < 1.0,
               "in (0, 1)")  # fmt: skip
        _check("budget_ratio", self.budget_ratio, 0.0 <= self.budget_ratio <= 1.0, "in [0, 1]")
        _check("burst", self.burst, 1.0 <= self.burst < math.inf, "finite and >= 1")
        _check("min_delay_s", self.min_delay_s, 0.0 <= self.min_delay_s < math.inf,
               "finite and >= 0")  # fmt: skip

    def bucket(self) -> TokenBucket:
        """A fresh hedge budget for this policy (full)."""
        return TokenBucket(ratio=self.budget_ratio, capacity=self.burst)

    @classmethod
    def coerce(cls, value: HedgePolicy | bool | None) -> HedgePolicy | None:
        """``True`` is the default policy, ``False``/``None`` no hedging."""
        if isinstance(value, HedgePolicy):
            return value
        if value is True:
            return cls()
        if value is False or value is None:
            return None
        raise ConfigurationError(f"hedge must be a HedgePolicy, True, False or None, got {value!r}")


def _check(name: str, value: float, ok: bool, expected: str) -> None:
    if math.isnan(value) or not ok:
        raise ConfigurationError(f"HedgePolicy.{name} must be {expected}, got {value!r}")


def hedge_delay_s(config: TTSConfig, inputs: PlanInputs, policy: HedgePolicy) -> float:
    """How long after it starts a call running ``config`` is hedged: the latency
    model's ``trigger_quantile`` for it at the plan's load, floored at ``min_delay_s``."""
    at_trigger = replace(inputs, sla_quantile=policy.trigger_quantile)
    return max(policy.min_delay_s, predict(config, at_trigger).latency_quantile_s)


def hedge_at(
    started_at: float, delay_s: float, expected_s: float, read_until_at: float
) -> float | None:
    """The instant a call started at ``started_at`` hedges, or ``None`` when a
    hedge could not help: one sent then would need ``expected_s`` (the config's
    mean latency) and end past ``read_until_at``, when reading stops."""
    for name, value in (("delay_s", delay_s), ("expected_s", expected_s)):
        if math.isnan(value) or value < 0:
            raise ConfigurationError(f"hedge_at: {name} must be >= 0, got {value!r}")
    fire_at = started_at + delay_s
    return fire_at if fire_at + expected_s <= read_until_at else None
