"""Sample quantiles: the one definition every figure of the package and its
benchmarks uses.

Linear interpolation between order statistics: for ``n`` sorted values the
``q``-quantile sits at position ``q * (n - 1)``. This is numpy's default
(``method="linear"``) and ``statistics.quantiles(..., method="inclusive")``;
``q = 0`` is the smallest value and ``q = 1`` the largest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from agentrt.core._errors import ConfigurationError

__all__ = ["quantile", "share"]


def quantile(values: Iterable[float], q: float, *, default: float | None = None) -> float:
    """The ``q``-quantile (``0 <= q <= 1``) of ``values``, interpolated linearly.

    With no values it returns ``default``, or raises :class:`ConfigurationError`
    when none is given (as ``max()`` does); a ``q`` outside [0, 1] raises too.
    """
    if not isinstance(q, int | float) or isinstance(q, bool) or math.isnan(q) or not 0 <= q <= 1:
        raise ConfigurationError(f"quantile q must be a number in [0, 1], got {q!r}")
    ordered = sorted(values)
    if not ordered:
        if default is None:
            raise ConfigurationError("quantile of no values (pass default= for a fallback)")
        return default
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def share(values: Sequence[bool]) -> float | None:
    """The fraction of ``values`` that are true; None for no values."""
    return sum(values) / len(values) if values else None
