"""Platt scaling and calibration metrics (pure, no torch).

Platt scaling maps the network's logit ``z`` to ``sigmoid(a * z + b)``, with
``a`` and ``b`` fitted by Newton's method on held-out rows (log loss on the
soft labels). It keeps the ranking and fixes over- or under-confidence.

* Brier score: the mean squared difference between prediction and label.
* Expected calibration error (ECE): predictions are put in ``bins`` equal-width
  bins; the ECE is the row-weighted mean of ``|mean prediction - mean label|``
  over the bins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from agentrt.core._errors import ConfigurationError

__all__ = [
    "PlattScaling",
    "brier_score",
    "expected_calibration_error",
    "fit_platt",
    "sigmoid",
]


def sigmoid(x: float) -> float:
    """The logistic function, stable for large ``|x|``."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@dataclass(frozen=True)
class PlattScaling:
    """``p = sigmoid(a * logit + b)``; the identity is ``a=1, b=0``."""

    a: float = 1.0
    b: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.a) and math.isfinite(self.b)):
            raise ConfigurationError(f"PlattScaling a and b must be finite, got {self.a}, {self.b}")

    def probability(self, logit: float) -> float:
        return sigmoid(self.a * logit + self.b)


def _check_pairs(what: str, predictions: Sequence[float], labels: Sequence[float]) -> None:
    if len(predictions) != len(labels):
        raise ConfigurationError(f"{what}: {len(predictions)} predictions but {len(labels)} labels")
    if not labels:
        raise ConfigurationError(f"{what} needs at least one row, got none")
    for name, values in (("labels", labels), ("predictions", predictions)):
        for value in values:
            if not 0.0 <= value <= 1.0:  # also rejects NaN
                raise ConfigurationError(f"{what}: {name} must be in [0, 1], got {value}")


def _log_loss(a: float, b: float, logits: Sequence[float], labels: Sequence[float]) -> float:
    total = 0.0
    for z, y in zip(logits, labels, strict=True):
        t = a * z + b
        # log(1 + e^t) - y t, computed stably
        softplus = t + math.log1p(math.exp(-t)) if t > 0 else math.log1p(math.exp(t))
        total += softplus - y * t
    return total / len(labels)


def fit_platt(
    logits: Sequence[float], labels: Sequence[float], *, max_iterations: int = 100
) -> PlattScaling:
    """Fit ``a, b`` minimising the log loss of ``sigmoid(a z + b)`` on soft ``labels``.

    Newton steps with backtracking, starting from the identity, so the fit is
    never worse than the identity on these rows.
    """
    if len(logits) != len(labels) or not labels:
        raise ConfigurationError(
            f"fit_platt needs as many labels as logits (at least one), "
            f"got {len(logits)} and {len(labels)}"
        )
    for z in logits:
        if not math.isfinite(z):
            raise ConfigurationError(f"fit_platt: logits must be finite, got {z}")
    for y in labels:
        if not 0.0 <= y <= 1.0:
            raise ConfigurationError(f"fit_platt: labels must be in [0, 1], got {y}")
    ridge = 1e-6
    a, b = 1.0, 0.0
    loss = _log_loss(a, b, logits, labels)
    count = len(labels)
    for _ in range(max_iterations):
        ga = gb = haa = hab = hbb = 0.0
        for z, y in zip(logits, labels, strict=True):
            p = sigmoid(a * z + b)
            r = p - y
            w = p * (1.0 - p)
            ga += r * z
            gb += r
            haa += w * z * z
            hab += w * z
            hbb += w
        ga, gb = ga / count, gb / count
        haa, hab, hbb = haa / count + ridge, hab / count, hbb / count + ridge
        det = haa * hbb - hab * hab
        if det <= 0.0 or math.hypot(ga, gb) < 1e-10:
            break
        step_a = (hbb * ga - hab * gb) / det
        step_b = (haa * gb - hab * ga) / det
        scale = 1.0
        while scale > 1e-6:
            na, nb = a - scale * step_a, b - scale * step_b
            new_loss = _log_loss(na, nb, logits, labels)
            if new_loss <= loss:
                break
            scale /= 2.0
        else:
            break
        improvement = loss - new_loss
        a, b, loss = na, nb, new_loss
        if improvement < 1e-12:
            break
    return PlattScaling(a, b)


def brier_score(predictions: Sequence[float], labels: Sequence[float]) -> float:
    """Mean squared error between predicted probabilities and (soft) labels."""
    _check_pairs("brier_score", predictions, labels)
    return sum((p - y) ** 2 for p, y in zip(predictions, labels, strict=True)) / len(labels)


def expected_calibration_error(
    predictions: Sequence[float], labels: Sequence[float], *, bins: int = 10
) -> float:
    """Row-weighted mean over equal-width bins of ``|mean prediction - mean label|``."""
    _check_pairs("expected_calibration_error", predictions, labels)
    if bins < 1:
        raise ConfigurationError(f"expected_calibration_error bins must be >= 1, got {bins}")
    sums = [[0.0, 0.0, 0] for _ in range(bins)]
    for p, y in zip(predictions, labels, strict=True):
        cell = sums[min(int(p * bins), bins - 1)]
        cell[0] += p
        cell[1] += y
        cell[2] += 1
    return sum(abs(cp - cy) for cp, cy, _ in sums) / len(labels)
