"""Water-filling: share seconds among calls to maximise expected success.

The run succeeds if every remaining call does, so its expected success is the
product of per-call accuracies, and its log a sum. Each call's curve is taken
in log space and replaced by its upper concave hull from ``(0, log ε)``; the
hull's segments, steepest first, are funded greedily until time runs out. On
concave curves this greedy is optimal (a fractional knapsack), and each call's
share only grows with the time available.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import groupby, pairwise

from agentrt.budget._estimates import AccuracyPoints, CallEstimate

__all__ = ["expected_success", "log_hull", "water_fill"]

EPSILON_ACCURACY = 1e-6
"""Accuracy assumed for a call given no time at all (log 0 is -inf)."""


def _log(accuracy: float) -> float:
    return math.log(min(1.0, max(accuracy, EPSILON_ACCURACY)))


def log_hull(points: AccuracyPoints) -> tuple[tuple[float, float], ...]:
    """The upper concave hull of ``(seconds, log accuracy)`` from ``t = 0``,
    cut where it stops rising (more time past that point buys nothing)."""
    best: dict[float, float] = {}
    for seconds, accuracy in points:
        t = round(max(0.0, float(seconds)), 9)  # nanoseconds: no subnormal slopes
        best[t] = max(best.get(t, -math.inf), _log(accuracy))
    best.setdefault(0.0, _log(0.0))
    hull: list[tuple[float, float]] = []
    for t, y in sorted(best.items()):
        while len(hull) >= 2:
            (t0, y0), (t1, y1) = hull[-2], hull[-1]
            # drop hull[-1] if it lies on or below the chord hull[-2] -> (t, y)
            if (y1 - y0) * (t - t0) <= (y - y0) * (t1 - t0):
                hull.pop()
            else:
                break
        hull.append((t, y))
    rising = [hull[0]]
    for t, y in hull[1:]:
        if y <= rising[-1][1]:
            break
        rising.append((t, y))
    return tuple(rising)


def water_fill(calls: Sequence[CallEstimate], available_s: float) -> list[float]:
    """Seconds per call for each of ``calls`` (one call of each step), funding
    the steepest log-accuracy gains first; ``sum(count * slice) <= available_s``.

    A step's gain per second is ``parallel`` times its per-call slope (all of a
    fan-out's branches must succeed); its cost is ``count`` seconds per second.
    """
    slices = [0.0] * len(calls)
    segments: list[tuple[float, int, float]] = []  # (slope, call index, length s)
    for index, call in enumerate(calls):
        if call.count <= 0:
            continue
        hull = log_hull(call.accuracy_points())
        for (t0, y0), (t1, y1) in pairwise(hull):
            slope = call.parallel * (y1 - y0) / (t1 - t0)
            segments.append((slope, index, t1 - t0))
    segments.sort(key=lambda seg: (-seg[0], seg[1]))
    budget = max(0.0, available_s)
    for _slope, group_iter in groupby(segments, key=lambda seg: seg[0]):
        group = list(group_iter)
        cost = sum(calls[i].count * length for _, i, length in group)
        fraction = 1.0 if cost <= budget else budget / cost
        for _, i, length in group:
            slices[i] += fraction * length
        budget -= min(cost, budget)
        if budget <= 0:
            break
    return slices


def expected_success(calls: Sequence[CallEstimate], slices: Sequence[float]) -> float:
    """The product of per-call accuracies at ``slices`` on the concave hull
    (what :func:`water_fill` maximises), for reports and tests."""
    log_total = 0.0
    for call, seconds in zip(calls, slices, strict=True):
        if call.count <= 0:
            continue
        hull = log_hull(call.accuracy_points())
        log_total += call.count * call.parallel * _interpolate(hull, seconds)
    return math.exp(log_total)


def _interpolate(hull: tuple[tuple[float, float], ...], seconds: float) -> float:
    if seconds <= hull[0][0]:
        return hull[0][1]
    for (t0, y0), (t1, y1) in pairwise(hull):
        if seconds <= t1:
            return y0 + (y1 - y0) * ((seconds - t0) / (t1 - t0))
    return hull[-1][1]
