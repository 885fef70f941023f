"""A piecewise-linear curve over measured points (per-token time by concurrency,
acceptance rate by concurrency)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

from agentrt.core._errors import ConfigurationError

__all__ = ["Curve"]


@dataclass(frozen=True)
class Curve:
    """``y(x)`` through ``points`` (x strictly increasing), linear in between.

    Below the first point the curve is flat; above the last it continues the
    last segment's slope, never falling (a concurrency past the measured range
    is not assumed to get cheaper).
    """

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if not self.points:
            raise ConfigurationError("Curve needs at least one point")
        for x, y in self.points:
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ConfigurationError(f"Curve points must be finite, got ({x}, {y})")
        xs = [x for x, _ in self.points]
        if any(b <= a for a, b in pairwise(xs)):
            raise ConfigurationError(f"Curve x values must be strictly increasing, got {xs}")

    @classmethod
    def of(cls, points: Iterable[tuple[float, float]], *, monotone: bool = True) -> Curve:
        """Sort the points; with ``monotone``, replace y by its running maximum so
        measurement noise cannot make a larger x cheaper."""
        ordered = sorted((float(x), float(y)) for x, y in points)
        if monotone:
            running = -math.inf
            smoothed = []
            for x, y in ordered:
                running = max(running, y)
                smoothed.append((x, running))
            ordered = smoothed
        return cls(tuple(ordered))

    def at(self, x: float) -> float:
        points = self.points
        if x <= points[0][0]:
            return points[0][1]
        if len(points) == 1:
            return points[0][1]
        for (x0, y0), (x1, y1) in pairwise(points):
            if x <= x1:
                return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        (x0, y0), (x1, y1) = points[-2], points[-1]
        slope = max(0.0, (y1 - y0) / (x1 - x0))
        return y1 + slope * (x - x1)
