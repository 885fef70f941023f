"""Online learning of each call site's output-length model, from every branch.

A profile's :class:`~agentrt.tts.LengthModel` (or the documented prior) may be
wrong for today's prompts: a node that used to answer in 20 tokens now thinks
aloud for 400. :class:`OnlineLength` learns, per call site, a log-normal
length model from the branches' actual output lengths, starting from the
site's prior, so the planner budgets decode time for what the site does now.

The math, per site: ``x = log(tokens)`` is normal with an unknown mean ``m``
and spread ``sigma``. The conjugate (normal-inverse-gamma) posterior is
summarised by four numbers: the mean ``m`` with its weight ``kappa`` (readings
it is worth), and the scatter ``S`` with its weight ``nu``, ``sigma**2 =
S / nu``. A reading updates them as Welford does (gain ``1 / (kappa + 1)``,
``S += d**2 * kappa / (kappa + 1)`` for the innovation ``d = x - m``).

* **Prior.** ``m = log(median)``, ``sigma`` the prior's (an empirical prior:
  its p50 and the spread through its p90), both worth ``pseudo_count``
  readings (``kappa = nu = pseudo_count``, ``S = nu * sigma**2``). With no
  evidence the site plans with the prior itself, untouched.
* **Forgetting.** Before each reading the weights and ``S`` are multiplied by
  ``1 - 1 / memory``: a reading ``k`` readings old weighs ``(1 - 1/memory)**k``,
  the weights settle at ``memory`` and the gain never dies out, so the model
  follows slow changes over about ``memory`` readings.
* **Drift.** A step change (a new prompt, a new model) should be followed in a
  handful of readings, not ``memory``: a two-sided CUSUM of the standardised
  innovations ``z = d / s`` (``s`` the predictive spread ``sigma * sqrt(1 +
  1/kappa)``; slack 0.5, decision interval ``drift_threshold``) detects a level
  shift of one ``s`` in about ten readings, of two in about four. On an alarm
  the readings since the CUSUM last left zero are re-read as the start of a
  new level: the mean restarts at their average (worth their count, never
  against the alarm's direction) and their deviations about it replace what
  they had added to ``S`` as innovations about the stale mean, so the step
  does not inflate the spread. ``z`` is clipped at the threshold, so a lone
  outlier, however far, cannot restart a steady level: it takes two.

A branch stopped at its ``max_tokens`` cap, or cut before it finished, is a
censored reading: the true length is *at least* ``tokens`` (``x >= c``). When
the bound lies above the mean it is replaced by the expected sufficient
statistics under the predictive normal, one EM step: ``E[d | x >= c] = s *
lambda(a)`` for the mean and ``E[d**2 | x >= c] = s**2 * (1 + a * lambda(a))``
for the scatter, with ``a = (c - m) / s`` and ``lambda`` the inverse Mills
ratio; the imputed point is above the bound, so a capped branch pushes the
median up, never down. A bound below the mean says almost nothing and is
skipped (as :mod:`agentrt.tts._online` does).

:meth:`OnlineLength.model` takes the prior at planning time, so the estimate
is a function of (prior, readings): a site keeps its last ``8 * memory``
readings (older ones weigh under ``e**-8``) and replays them from a prior it
has not seen, then updates that estimate incrementally. Pure: no clock, no
I/O; updates are synchronous, so one instance can be shared by concurrent
calls on one event loop (it is not thread-safe).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from statistics import NormalDist

from agentrt.core._errors import ConfigurationError
from agentrt.tts._length import LengthModel
from agentrt.tts._online import _inverse_mills

__all__ = ["LengthState", "OnlineLength"]

_MIN_SIGMA = 0.05
_MAX_SIGMA = 5.0
"""LengthModel's limit on ``prior_sigma``."""
_DRIFT_SLACK = 0.5
"""CUSUM slack: half the smallest shift (in predictive sds) worth detecting fast."""
_SEGMENT = 16
"""The most recent readings a drift restart re-reads."""
_HISTORY_MEMORIES = 8
"""Readings kept per site, in memories: older ones weigh under ``e**-8``."""
_PRIORS_KEPT = 4
"""Estimates kept per site, one per prior asked for (normally one)."""
_Z90 = NormalDist().inv_cdf(0.9)


@dataclass(frozen=True)
class LengthState:
    """A snapshot of one site's learned length model (for inspection and spans).

    ``median_tokens`` and ``sigma`` (log-space) are what the site plans with;
    ``observations`` counts the readings received, ``censored`` those capped
    (skipped ones included), ``drifts`` the level restarts.
    """

    site: str
    median_tokens: float
    sigma: float
    observations: int
    censored: int
    drifts: int


@dataclass(frozen=True)
class _Params:
    pseudo_count: float
    keep: float
    """``1 - 1 / memory``: how much of the evidence each reading keeps."""
    drift_threshold: float


@dataclass(frozen=True)
class _Reading:
    log_tokens: float
    capped: bool


@dataclass(frozen=True)
class _Contribution:
    """What one reading added: undone when a drift restart re-reads it."""

    update: int
    log_tokens: float
    scatter: float


@dataclass
class _Filter:
    """The discounted normal-inverse-gamma estimate of one site (module docstring)."""

    mean: float
    weight: float
    scatter: float
    dof: float
    updates: int = 0
    drifts: int = 0
    rise: float = 0.0
    fall: float = 0.0
    rise_run: int = 0
    fall_run: int = 0
    recent: deque[_Contribution] = field(default_factory=lambda: deque(maxlen=_SEGMENT))

    @classmethod
    def prior(cls, mean: float, sigma: float, pseudo_count: float) -> _Filter:
        return cls(mean, pseudo_count, pseudo_count * sigma**2, pseudo_count)

    @property
    def sigma(self) -> float:
        variance = self.scatter / max(self.dof, 1e-12)
        return min(_MAX_SIGMA, max(_MIN_SIGMA, math.sqrt(max(variance, 0.0))))

    @property
    def median_tokens(self) -> float:
        return max(1.0, math.exp(self.mean))

    def update(self, x: float, capped: bool, params: _Params) -> None:
        weight = params.keep * self.weight
        spread = self.sigma * math.sqrt(1.0 + 1.0 / weight)
        if capped:
            if x <= self.mean:
                return  # a lower bound under the estimate: nothing learned
            a = (x - self.mean) / spread
            z = _inverse_mills(a)
            second_moment = 1.0 + a * z
        else:
            z = (x - self.mean) / spread
            second_moment = z * z
        imputed = self.mean + spread * z
        gain = 1.0 / (weight + 1.0)
        added = spread**2 * second_moment * (1.0 - gain)
        self.mean += gain * (imputed - self.mean)
        self.weight = weight + 1.0
        self.scatter = params.keep * self.scatter + added
        self.dof = params.keep * self.dof + 1.0
        self.updates += 1
        self.recent.append(_Contribution(self.updates, imputed, added))
        self._watch(z, params)

    def _watch(self, z: float, params: _Params) -> None:
        """Two-sided CUSUM on the clipped innovation; restart the level on an alarm."""
        h = params.drift_threshold
        z = max(-h, min(h, z))
        self.rise = max(0.0, self.rise + z - _DRIFT_SLACK)
        self.fall = max(0.0, self.fall - z - _DRIFT_SLACK)
        self.rise_run = self.rise_run + 1 if self.rise > 0 else 0
        self.fall_run = self.fall_run + 1 if self.fall > 0 else 0
        if self.rise > h:
            self._restart(self.rise_run, rising=True, params=params)
        elif self.fall > h:
            self._restart(self.fall_run, rising=False, params=params)

    def _restart(self, run: int, *, rising: bool, params: _Params) -> None:
        segment = list(self.recent)[-run:]
        for c in segment:
            kept = params.keep ** (self.updates - c.update)
            self.scatter -= c.scatter * kept
            self.dof -= kept
        level = math.fsum(c.log_tokens for c in segment) / len(segment)
        self.mean = max(self.mean, level) if rising else min(self.mean, level)
        self.weight = float(len(segment))
        deviations = math.fsum((c.log_tokens - self.mean) ** 2 for c in segment)
        self.scatter = max(0.0, self.scatter) + deviations
        self.dof = max(0.0, self.dof) + len(segment) - 1.0
        self.rise = self.fall = 0.0
        self.rise_run = self.fall_run = 0
        self.recent.clear()
        self.drifts += 1


def _log_normal(prior: LengthModel) -> tuple[float, float]:
    """The prior's (log-median, sigma); an empirical one through its p50 and p90."""
    if prior.is_prior:
        return math.log(prior.prior_median_tokens), prior.prior_sigma
    median = max(1.0, prior.quantile(0.5))
    p90 = max(median, prior.quantile(0.9))
    return math.log(median), min(_MAX_SIGMA, max(_MIN_SIGMA, math.log(p90 / median) / _Z90))


@dataclass
class _Site:
    history: deque[_Reading]
    observations: int = 0
    censored: int = 0
    filters: dict[tuple[float, float], _Filter] = field(default_factory=dict)


class OnlineLength:
    """Per-call-site output-length models, learned online from each branch.

    ``pseudo_count``: how many readings the prior is worth; ``memory``: the
    effective number of readings remembered (exponential forgetting);
    ``drift_threshold``: the CUSUM decision interval, in predictive standard
    deviations, past which a run of readings is a step change (``math.inf``
    turns drift detection off). The defaults follow a step change in lengths
    within a handful of readings and raise a false alarm less than once per
    thousand readings of a steady site (each costs a few readings of precision).
    """

    def __init__(
        self,
        *,
        pseudo_count: float = 3.0,
        memory: float = 32.0,
        drift_threshold: float = 5.0,
    ) -> None:
        if not (math.isfinite(pseudo_count) and pseudo_count > 0):
            raise ConfigurationError(
                f"OnlineLength.pseudo_count must be finite and > 0, got {pseudo_count}"
            )
        if not (math.isfinite(memory) and memory > 1):
            raise ConfigurationError(
                f"OnlineLength.memory must be finite and > 1 (readings), got {memory}"
            )
        if math.isnan(drift_threshold) or drift_threshold <= 0:
            raise ConfigurationError(
                f"OnlineLength.drift_threshold must be > 0 (or inf), got {drift_threshold}"
            )
        self._params = _Params(pseudo_count, 1.0 - 1.0 / memory, drift_threshold)
        self._history = math.ceil(_HISTORY_MEMORIES * memory)
        self._sites: dict[str, _Site] = {}

    def observe(self, site: str, tokens: int, *, capped: bool = False) -> None:
        """Learn from one branch's output length at ``site``; ``capped``: it hit its
        ``max_tokens`` or was cut, so the true length is at least ``tokens``."""
        if tokens < 0 or (tokens == 0 and not capped):
            raise ConfigurationError(
                f"OnlineLength.observe tokens must be >= 1 (>= 0 when capped), got {tokens}"
                f" at site {site!r}"
            )
        if tokens == 0:
            return  # cut before its first token: at least 0 says nothing
        entry = self._sites.get(site)
        if entry is None:
            entry = self._sites[site] = _Site(deque(maxlen=self._history))
        reading = _Reading(math.log(tokens), capped)
        entry.history.append(reading)
        entry.observations += 1
        entry.censored += capped
        for f in entry.filters.values():
            f.update(reading.log_tokens, reading.capped, self._params)

    def model(self, site: str, prior: LengthModel | None = None) -> LengthModel:
        """The length model to plan ``site`` with: ``prior`` (default
        :class:`LengthModel`) itself without evidence, else the learned log-normal."""
        prior = prior if prior is not None else LengthModel()
        f = self._filter(site, prior)
        if f is None or f.updates == 0:
            return prior
        # Rounded to 3 significant digits (median) and 0.01 (sigma): the planner
        # memoises its length expectations per model, and a model that changed in
        # the fifth digit every call would miss every time (each miss is hundreds
        # of quantile evaluations per config planned).
        median = max(1.0, float(f"{f.median_tokens:.3g}"))
        return LengthModel(prior_median_tokens=median, prior_sigma=max(0.01, round(f.sigma, 2)))

    def state(self, site: str, prior: LengthModel | None = None) -> LengthState:
        """A snapshot of ``site``'s model learned from ``prior`` (as :meth:`model`)."""
        prior = prior if prior is not None else LengthModel()
        entry = self._sites.get(site)
        f = self._filter(site, prior)
        if f is None:
            mean, sigma = _log_normal(prior)
            f = _Filter.prior(mean, sigma, self._params.pseudo_count)
        return LengthState(
            site=site,
            median_tokens=f.median_tokens,
            sigma=f.sigma,
            observations=entry.observations if entry else 0,
            censored=entry.censored if entry else 0,
            drifts=f.drifts,
        )

    def sites(self) -> tuple[str, ...]:
        """The sites with at least one reading, sorted."""
        return tuple(sorted(self._sites))

    def _filter(self, site: str, prior: LengthModel) -> _Filter | None:
        """The site's estimate from ``prior``: cached, or replayed from its history."""
        entry = self._sites.get(site)
        if entry is None:
            return None
        key = _log_normal(prior)
        f = entry.filters.get(key)
        if f is None:
            f = _Filter.prior(*key, self._params.pseudo_count)
            for reading in entry.history:
                f.update(reading.log_tokens, reading.capped, self._params)
            if len(entry.filters) >= _PRIORS_KEPT:
                del entry.filters[next(iter(entry.filters))]
            entry.filters[key] = f
        return f
