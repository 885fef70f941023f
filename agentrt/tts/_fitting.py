"""Small least-squares fits for the latency model.

``np.linalg.lstsq`` does the solving. The non-negativity is a short active set of
our own rather than ``scipy.optimize.nnls``: the intercept is free (only clamped
at 0 afterwards) while ``nnls`` bounds every coefficient, and scipy is no
dependency of agentrt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from agentrt.core._errors import ConfigurationError

__all__ = ["fit_nonnegative_linear"]

_Array = npt.NDArray[np.floating[Any]]


def _least_squares(design: _Array, ys: _Array) -> _Array | None:
    """The least-squares solution, or ``None`` when the columns are dependent."""
    solution, _, rank, _ = np.linalg.lstsq(design, ys, rcond=None)
    return solution if rank == design.shape[1] else None


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
    if any(len(row) != width for row in features):
        raise ConfigurationError(f"a fit needs rows of one width ({width}): {features!r:.120}")
    x = np.asarray(features, dtype=np.float64).reshape(len(features), width)
    y = np.asarray(ys, dtype=np.float64)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ConfigurationError(f"a fit needs finite samples: {features!r:.120}, {ys!r:.120}")
    active = [i for i in range(width) if np.ptp(x[:, i]) > 0]
    while True:
        solution = None
        if len(y) > len(active):
            design = np.column_stack([np.ones(len(y)), x[:, active]])
            solution = _least_squares(design, y)
        if solution is None:
            if not active:
                return (max(0.0, float(y.mean())), *([0.0] * width))
            active = active[:-1]
            continue
        if (solution[1:] < 0).any():
            active = [i for i, c in zip(active, solution[1:], strict=True) if c >= 0]
            continue
        coefficients = [0.0] * width
        for i, c in zip(active, solution[1:], strict=True):
            coefficients[i] = float(c)
        return (max(0.0, float(solution[0])), *coefficients)
