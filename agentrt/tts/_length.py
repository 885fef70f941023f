"""Output-length model of one call site: how many tokens a branch generates.

With samples (from traces or calibration) the distribution is empirical:
quantiles interpolate linearly between order statistics
(:func:`agentrt.core._stats.quantile`), so a quantile above the largest sample
is the largest sample. Without samples it is a documented prior: log-normal with median
``prior_median_tokens`` (200) and log-space spread ``prior_sigma`` (0.6), i.e.
a p90 of about 2.2x the median, typical of short chat/maths replies.

The latency model needs the longest of ``n`` branches: if ``F`` is the length
CDF, the maximum of ``n`` independent branches has CDF ``F^n``, so its
``q``-quantile is ``F^{-1}(q^{1/n})`` (:meth:`LengthModel.max_quantile`).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt

from agentrt.core._errors import ConfigurationError
from agentrt.core._stats import quantile
from agentrt.core._validation import dump, load

__all__ = [
    "DEFAULT_PRIOR_MEDIAN_TOKENS",
    "DEFAULT_PRIOR_SIGMA",
    "LengthModel",
    "LengthProfile",
]

DEFAULT_PRIOR_MEDIAN_TOKENS = 200.0
DEFAULT_PRIOR_SIGMA = 0.6
_GRID = 512
"""Midpoint-rule points used for expectations over the length distribution."""
_STANDARD_NORMAL = NormalDist()


def _check_q(q: float) -> None:
    if math.isnan(q) or not 0.0 < q < 1.0:
        raise ConfigurationError(f"quantile q must be in (0, 1), got {q}")


@dataclass(frozen=True)
class LengthModel:
    """Output tokens per branch at one call site (samples sorted, or the prior)."""

    samples: tuple[int, ...] = ()
    prior_median_tokens: float = DEFAULT_PRIOR_MEDIAN_TOKENS
    prior_sigma: float = DEFAULT_PRIOR_SIGMA

    def __post_init__(self) -> None:
        if any(s < 0 for s in self.samples):
            raise ConfigurationError(f"LengthModel.samples must be >= 0, got {self.samples[:10]}")
        if list(self.samples) != sorted(self.samples):
            raise ConfigurationError("LengthModel.samples must be sorted; use from_samples()")
        if not self.prior_median_tokens >= 1.0 or math.isinf(self.prior_median_tokens):
            raise ConfigurationError(
                f"LengthModel.prior_median_tokens must be >= 1, got {self.prior_median_tokens}"
            )
        if not 0.0 < self.prior_sigma <= 5.0:
            raise ConfigurationError(
                f"LengthModel.prior_sigma must be in (0, 5], got {self.prior_sigma}"
            )

    @classmethod
    def from_quantiles(cls, p50_tokens: float, p90_tokens: float) -> LengthModel:
        """The log-normal prior through a median and a p90 (e.g. from a profile)."""
        if not 1.0 <= p50_tokens <= p90_tokens:
            raise ConfigurationError(
                f"LengthModel needs 1 <= p50 <= p90 tokens, got {p50_tokens}, {p90_tokens}"
            )
        z90 = _STANDARD_NORMAL.inv_cdf(0.9)
        sigma = max(0.05, min(5.0, math.log(p90_tokens / p50_tokens) / z90))
        return cls(prior_median_tokens=p50_tokens, prior_sigma=sigma)

    @classmethod
    def from_samples(cls, samples: Iterable[int], **prior: float) -> LengthModel:
        """An empirical model from observed output lengths (any order)."""
        return cls(samples=tuple(sorted(int(s) for s in samples)), **prior)

    @property
    def is_prior(self) -> bool:
        return not self.samples

    def quantile(self, q: float) -> float:
        """Tokens below which a fraction ``q`` of branches end (``0 < q < 1``)."""
        _check_q(q)
        if self.is_prior:
            z = _STANDARD_NORMAL.inv_cdf(q)
            return self.prior_median_tokens * math.exp(self.prior_sigma * z)
        return quantile(self.samples, q)

    def cdf(self, tokens: float) -> float:
        """Fraction of branches that end within ``tokens`` tokens."""
        if self.is_prior:
            if tokens <= 0:
                return 0.0
            z = math.log(tokens / self.prior_median_tokens) / self.prior_sigma
            return _STANDARD_NORMAL.cdf(z)
        return bisect.bisect_right(self.samples, tokens) / len(self.samples)

    def max_quantile(self, n: int, q: float) -> float:
        """The ``q``-quantile of the longest of ``n`` branches: ``F^{-1}(q^{1/n})``."""
        if n < 1:
            raise ConfigurationError(f"n must be >= 1, got {n}")
        _check_q(q)
        return self.quantile(q ** (1.0 / n))

    def expected_max(self, n: int, max_tokens: float = math.inf) -> float:
        """Mean length of the longest of ``n`` branches, each capped at ``max_tokens``
        (midpoint rule over ``F^{-1}(u^{1/n})``; memoised, the planner asks often)."""
        if n < 1:
            raise ConfigurationError(f"n must be >= 1, got {n}")
        return _expected_max(self, n, max_tokens)

    def expected_tokens(self, max_tokens: float = math.inf) -> float:
        """Mean tokens one branch generates when capped at ``max_tokens``."""
        if not self.is_prior:
            return sum(min(s, max_tokens) for s in self.samples) / len(self.samples)
        return self.expected_max(1, max_tokens)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a TOML profile."""
        return dump(
            LengthProfile(
                samples=list(self.samples),
                prior_median_tokens=self.prior_median_tokens,
                prior_sigma=self.prior_sigma,
            )
        )

    @classmethod
    def from_dict(cls, data: object, source: str = "length model") -> LengthModel:
        """Validate profile data; a bad field raises :class:`ProfileError` naming it."""
        profile = load(LengthProfile, data, source)
        return cls.from_samples(
            profile.samples,
            prior_median_tokens=profile.prior_median_tokens,
            prior_sigma=profile.prior_sigma,
        )


@lru_cache(maxsize=4096)
def _expected_max(model: LengthModel, n: int, max_tokens: float) -> float:
    if model.is_prior:
        # Log-normal: the grid's standard-normal quantiles depend on n only, so a
        # model learned online (a new median and sigma each call) costs 512 exp()s.
        lengths = model.prior_median_tokens * np.exp(model.prior_sigma * _z_grid(n))
        return float(np.minimum(max_tokens, lengths).mean())
    total = 0.0
    for k in range(_GRID):
        u = (k + 0.5) / _GRID
        total += min(max_tokens, model.quantile(u ** (1.0 / n)))
    return total / _GRID


@lru_cache(maxsize=64)
def _z_grid(n: int) -> npt.NDArray[np.float64]:
    """``Phi^-1(u^(1/n))`` at the midpoint grid: the longest of ``n`` standard normals."""
    grid = [_STANDARD_NORMAL.inv_cdf(((k + 0.5) / _GRID) ** (1.0 / n)) for k in range(_GRID)]
    return np.array(grid, dtype=np.float64)


class LengthProfile(BaseModel):
    """The serialised form of a :class:`LengthModel`."""

    model_config = ConfigDict(extra="forbid")
    samples: list[NonNegativeInt] = Field(default_factory=list)
    prior_median_tokens: float = Field(default=DEFAULT_PRIOR_MEDIAN_TOKENS, ge=1.0)
    prior_sigma: float = Field(default=DEFAULT_PRIOR_SIGMA, gt=0.0, le=5.0)
