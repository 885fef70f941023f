"""What one remaining LLM call is expected to take: plain frozen values.

:class:`LatencyStats` is a per-call latency distribution given by a few
quantiles; :class:`CallEstimate` is one step of the remaining path (a node's
calls, how many times they run in sequence, how many run side by side). The
profile (pydantic, at the edge) is turned into these before any policy sees it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

__all__ = ["AccuracyPoints", "CallEstimate", "LatencyStats"]

AccuracyPoints = tuple[tuple[float, float], ...]
"""An accuracy-vs-time curve: ``(seconds, accuracy)`` points, seconds increasing."""

_MAX_Q = 0.9999


@dataclass(frozen=True)
class LatencyStats:
    """The latency of one LLM call, in seconds, as a few quantiles.

    ``min_s`` is the predicted minimum (the cheapest config, nothing queued);
    between the known quantiles the quantile function is linear, and past
    ``p99_s`` it goes on with the slope from ``p95_s`` to ``p99_s``.
    """

    p50_s: float
    p90_s: float
    p95_s: float
    p99_s: float
    min_s: float = 0.0

    def __post_init__(self) -> None:
        points = (self.min_s, self.p50_s, self.p90_s, self.p95_s, self.p99_s)
        if any(math.isnan(p) or p < 0 or math.isinf(p) for p in points):
            raise ValueError(f"LatencyStats: quantiles must be finite and >= 0, got {points}")
        if list(points) != sorted(points):
            raise ValueError(f"LatencyStats: need min <= p50 <= p90 <= p95 <= p99, got {points}")

    @classmethod
    def constant(cls, seconds: float) -> LatencyStats:
        """A call that always takes ``seconds``."""
        return cls(seconds, seconds, seconds, seconds, seconds)

    def quantile(self, q: float) -> float:
        """The ``q``-quantile of one call's latency (``q`` clamped to [0, 0.9999])."""
        q = min(max(q, 0.0), _MAX_Q)
        knots = (
            (0.0, self.min_s),
            (0.5, self.p50_s),
            (0.9, self.p90_s),
            (0.95, self.p95_s),
            (0.99, self.p99_s),
        )
        for (q0, s0), (q1, s1) in itertools.pairwise(knots):
            if q <= q1:
                return s0 + (s1 - s0) * (q - q0) / (q1 - q0)
        slope = (self.p99_s - self.p95_s) / 0.04
        return self.p99_s + slope * (q - 0.99)

    def cdf_points(self) -> AccuracyPoints:
        """The latency CDF as ``(seconds, probability)`` points: the chance a call
        finishes within a slice. Used as the accuracy curve when none is known."""
        raw: AccuracyPoints = (
            (self.min_s, 0.0),
            (self.p50_s, 0.5),
            (self.p90_s, 0.9),
            (self.p95_s, 0.95),
            (self.p99_s, 0.99),
        )
        points: list[tuple[float, float]] = []
        for seconds, prob in raw:
            if points and seconds <= points[-1][0]:
                points[-1] = (points[-1][0], prob)
            else:
                points.append((seconds, prob))
        return tuple(points)


@dataclass(frozen=True)
class CallEstimate:
    """One step of the remaining path: ``count`` calls of ``node`` in sequence.

    ``count`` may be fractional (expected loop visits × calls per visit).
    ``parallel`` calls run side by side (a ``Send`` fan-out): they share wall
    clock, so the step lasts as long as the slowest of them, and it succeeds
    only if all of them do.
    """

    node: str
    count: float
    latency: LatencyStats
    parallel: float = 1.0
    curve: AccuracyPoints | None = None

    def __post_init__(self) -> None:
        if math.isnan(self.count) or self.count < 0:
            raise ValueError(f"CallEstimate.count must be >= 0, got {self.count!r}")
        if math.isnan(self.parallel) or self.parallel < 1:
            raise ValueError(f"CallEstimate.parallel must be >= 1, got {self.parallel!r}")

    def quantile_s(self, q: float) -> float:
        """The ``q``-quantile of the step's wall-clock time per call: the slowest
        of ``parallel`` calls is below ``t`` with probability ``F(t) ** parallel``."""
        return self.latency.quantile(q ** (1.0 / self.parallel))

    @property
    def expected_s(self) -> float:
        """Typical (median) wall-clock seconds per call of this step."""
        return self.quantile_s(0.5)

    @property
    def min_s(self) -> float:
        return self.latency.min_s

    def accuracy_points(self) -> AccuracyPoints:
        """The accuracy curve of one call, or its latency CDF when none is known."""
        return self.curve if self.curve is not None else self.latency.cdf_points()
