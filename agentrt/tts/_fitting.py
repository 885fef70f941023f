"""Small least-squares fits for the latency model (no numpy needed)."""

from __future__ import annotations

from collections.abc import Sequence

from agentrt.core._errors import ConfigurationError

__all__ = ["fit_nonnegative_linear"]


def _solve(matrix: list[list[float]], rhs: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting; ``None`` when singular."""
    size = len(rhs)
    a = [[*row, b] for row, b in zip(matrix, rhs, strict=True)]
    for col in range(size):
        pivot = max(range(col, size), key=lambda r: abs(a[r][col]))
        scale = max(1.0, max(abs(v) for v in a[pivot][:size]))
        if abs(a[pivot][col]) <= 1e-12 * scale:
            return None
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(size):
            if r != col:
                factor = a[r][col] / a[col][col]
                a[r] = [v - factor * p for v, p in zip(a[r], a[col], strict=True)]
    return [a[i][size] / a[i][i] for i in range(size)]


def _least_squares(rows: Sequence[Sequence[float]], ys: Sequence[float]) -> list[float] | None:
    width = len(rows[0])
    normal = [[sum(r[i] * r[j] for r in rows) for j in range(width)] for i in range(width)]
    moment = [sum(r[i] * y for r, y in zip(rows, ys, strict=True)) for i in range(width)]
    return _solve(normal, moment)


def fit_nonnegative_linear(
    features: Sequence[Sequence[float]], ys: Sequence[float]
) -> tuple[float, ...]:
    """Fit ``y = c0 + sum(ci * xi)`` with every coefficient >= 0.

    Returns ``(c0, c1, ...)``. Features that never vary, or whose fitted
    coefficient comes out negative, are dropped (set to 0) and the rest refit:
    a small active-set method, enough for two or three features.
    """
    if not features or len(features) != len(ys):
        raise ConfigurationError(
            f"a fit needs matching, non-empty samples: {len(features)} rows, {len(ys)} targets"
        )
    width = len(features[0])
    active = [i for i in range(width) if len({row[i] for row in features}) > 1]
    while True:
        rows = [[1.0, *(row[i] for i in active)] for row in features]
        solution = _least_squares(rows, ys) if len(ys) > len(active) else None
        if solution is None:
            if not active:
                return (max(0.0, sum(ys) / len(ys)), *([0.0] * width))
            active = active[:-1]
            continue
        negative = [i for i, c in zip(active, solution[1:], strict=True) if c < 0]
        if negative:
            active = [i for i in active if i not in negative]
            continue
        coefficients = [0.0] * width
        for i, c in zip(active, solution[1:], strict=True):
            coefficients[i] = c
        return (max(0.0, solution[0]), *coefficients)
