"""Online correction of the calibrated latency models, learned from every stream.

A calibration file may come from another machine (a CPU 4-6x slower, a busier
GPU). :class:`OnlineLatency` learns, per endpoint group (and per endpoint URL,
for inspection), two multiplicative corrections of the group's
:class:`~agentrt.tts.LatencyModel`: one on time to first token, one on the
per-token decode time, from what each stream actually did at the concurrency
it ran at.

The math, per quantity: ``x = log(actual / predicted)`` is a noisy reading of a
log-factor ``m`` that drifts slowly, and a scalar Kalman filter tracks it
(mean ``m``, variance ``P``). Why this and not a plain EWMA: it has the four
properties asked of it in closed form.

* **Prior.** ``m = 0`` (trust the calibration) with ``P = R / pseudo_count``: the
  calibration counts as ``pseudo_count`` observations of noise ``R``.
* **Forgetting.** Before each reading ``P += forget_sd**2`` (a random walk): old
  evidence fades, so ``P`` never reaches 0 and the gain never dies out.
* **Uncertainty.** ``sqrt(P)`` is the log-space standard deviation of the
  correction; the planner plans the SLA quantile with the factor
  ``exp(m + z_q * sqrt(P))`` (:meth:`OnlineLatency.spreads`), so little evidence
  means wider, more conservative plans, shrinking as ``P`` does.
* **Drift.** A standardized innovation ``|x - m| / sqrt(P + R)`` above
  ``drift_z`` is a step change (a slow-down or a speed-up), not noise: ``P``
  is raised to the squared innovation, the gain goes to ~1 and the estimate
  jumps to the new level in one reading. One outlier costs one call; the next
  normal reading is a drift back.

The observation noise ``R`` is itself learned (Sage-Husa: an EWMA of the
squared post-fit residual plus ``P``), floored at ``min_noise_sd**2``.

**By concurrency.** One factor per group cannot fix a calibration that is wrong
about how speed grows with the number of sequences (bf16 on a CPU without
native bf16 slows ~8x from N=1 to N=16 where an AVX-512 machine slowed 2x), so
each reading also carries its concurrency (the request's ``n`` plus the load
it ran beside), and the group's filter is a joint Kalman filter over the
group's log-factor ``m`` and one offset ``d_b`` per concurrency band (1, 2-3,
4-7, 8-15, 16-31, 32+: ``floor(log2 c)``): a reading at band ``b`` observes
``m + d_b`` plus noise. The offsets start at 0 with the same prior spread as
``m`` and forget at half its rate. A drift inflates the variance of the band's
offset while the band has fewer than ``NEW_BAND_READS`` readings (the
calibration is wrong about how that concurrency scales), else ``m``'s (a
step change is the whole server's). Innovations are shared by the gain: a
reading pattern that one factor explains moves ``m``; one that differs by band
(slow at N=16, fine at N=1) ends in the offsets, whose covariance with ``m``
keeps the split consistent. ``OnlineState`` reports the typical factor (``m``
plus the read bands' offsets weighted by readings) and the largest predictive
sd over the bands read; the planner scales by ``exp(m)`` and adds
the offsets of the bands read, interpolated in ``log2 c`` and flat outside
(:class:`~agentrt.tts.ConcurrencyCorrection`), so a band never read plans with
its neighbours' shape. Endpoint filters stay scalar (no bands).

A stream cut before it finished is a censored reading: the quantity took *at
least* that long (``x >= c``). When the bound lies above the estimate it is
replaced by ``E[x | x >= c]`` under the predictive normal (``m + s * phi(a) /
(1 - Phi(a))``, the inverse Mills ratio), which is above the bound, and
filtered as a reading; a bound below the estimate says almost nothing and is
skipped. A call cut before its first token thus pushes TTFT up.

The estimator is pure: it takes numbers (:class:`LatencyObservation`), never a
clock or a stream; :func:`stream_observations` turns a finished or cut
:class:`~agentrt.pool.ChatStream` into observations. Updates are synchronous,
so one instance can be shared by many executors and concurrent calls on one
event loop (it is not thread-safe).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from agentrt.core._errors import ConfigurationError
from agentrt.pool._stream import ChatStream
from agentrt.tts._latency import ConcurrencyCorrection, LatencyModel

__all__ = [
    "LatencyObservation",
    "OnlineLatency",
    "OnlineState",
    "Quantity",
    "stream_observations",
]

Quantity = Literal["ttft", "per_token"]
_QUANTITIES: tuple[Quantity, ...] = ("ttft", "per_token")
_MILLS_ASYMPTOTE = 30.0
"""Past this many standard deviations the inverse Mills ratio is ``a + 1/a``."""


@dataclass(frozen=True)
class LatencyObservation:
    """One reading: a quantity took ``actual_s`` where the calibrated model said
    ``predicted_s`` (``censored``: at least ``actual_s``, the stream was cut)."""

    group: str
    quantity: Quantity
    actual_s: float
    predicted_s: float
    censored: bool = False
    url: str | None = None
    concurrency: float | None = None
    """Sequences decoding on the server when it was read (the request's ``n``
    plus the load beside it); None: unknown, the group's factor only."""

    def __post_init__(self) -> None:
        if self.concurrency is not None and not (
            math.isfinite(self.concurrency) and self.concurrency >= 1
        ):
            raise ConfigurationError(
                f"LatencyObservation.concurrency must be >= 1, got {self.concurrency}"
            )
        if self.quantity not in _QUANTITIES:
            raise ConfigurationError(f"LatencyObservation.quantity: unknown {self.quantity!r}")
        for name in ("actual_s", "predicted_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigurationError(
                    f"LatencyObservation.{name} must be finite and > 0, got {value}"
                )

    @property
    def log_ratio(self) -> float:
        return math.log(self.actual_s / self.predicted_s)


@dataclass(frozen=True)
class OnlineState:
    """A snapshot of one group's (or endpoint's) corrections.

    Factors multiply the calibrated model (2.0: twice as slow); ``*_sd`` are
    log-space standard deviations of the factors (0.1: about +-10%).
    """

    group: str
    url: str | None
    ttft_factor: float
    per_token_factor: float
    ttft_sd: float
    per_token_sd: float
    observations: int
    drifts: int

    @property
    def uncertainty(self) -> float:
        """The larger of the two log-space standard deviations."""
        return max(self.ttft_sd, self.per_token_sd)


@dataclass(frozen=True)
class _Params:
    noise_sd: float
    pseudo_count: float
    forget_sd: float
    drift_z: float
    noise_gain: float
    min_noise_sd: float


def band_of(concurrency: float) -> int:
    """The concurrency band of a reading: ``floor(log2 c)`` (1, 2-3, 4-7, 8-15, ...)."""
    return min(BANDS - 1, math.floor(math.log2(max(1.0, concurrency))))


def _inverse_mills(a: float) -> float:
    """``phi(a) / (1 - Phi(a))``: how far past ``a`` a standard normal lies, given it does."""
    if a > _MILLS_ASYMPTOTE:
        return a + 1.0 / a
    tail = 0.5 * math.erfc(a / math.sqrt(2.0))
    return math.exp(-0.5 * a * a) / math.sqrt(2.0 * math.pi) / tail


@dataclass
class _Entry:
    filters: dict[Quantity, _Filter] = field(default_factory=dict)


BANDS = 6
"""Concurrency bands of the joint filter: 1, 2-3, 4-7, 8-15, 16-31, 32+."""
NEW_BAND_READS = 3
"""A band read fewer times than this takes a drift as its own (see ``_Filter``)."""


@dataclass
class _Filter:
    """The Kalman filter of a log-factor ``m`` (index 0) and, for a group, an offset
    per concurrency band (indices 1..bands), with their full covariance (see the
    module docstring). An endpoint's filter has no bands: a scalar filter."""

    state: list[float]
    cov: list[list[float]]
    noise: float
    observations: int = 0
    drifts: int = 0
    band_reads: list[int] = field(default_factory=list)

    @classmethod
    def prior(cls, params: _Params, bands: int = BANDS) -> _Filter:
        noise = params.noise_sd**2
        size = 1 + bands
        cov = [[noise / params.pseudo_count if i == j else 0.0 for j in range(size)]
               for i in range(size)]  # fmt: skip
        return cls(state=[0.0] * size, cov=cov, noise=noise, band_reads=[0] * bands)

    @property
    def mean(self) -> float:
        return self.state[0]

    @property
    def var(self) -> float:
        return self.cov[0][0]

    def offset(self, band: int) -> float:
        return self.state[1 + band]

    def read_bands(self) -> list[int]:
        return [b for b, reads in enumerate(self.band_reads) if reads]

    def typical(self) -> float:
        """The log-factor at the bands read, weighted by their readings (``m`` alone
        when none was): what a reading is expected to show."""
        bands = self.read_bands()
        if not bands:
            return self.state[0]
        reads = sum(self.band_reads[b] for b in bands)
        return self.state[0] + sum(self.offset(b) * self.band_reads[b] for b in bands) / reads

    def spread(self) -> float:
        """The largest log-space sd of a prediction at a band read (or of ``m``)."""
        variances = [self.cov[0][0]] + [
            self.cov[0][0] + 2 * self.cov[0][1 + b] + self.cov[1 + b][1 + b]
            for b in self.read_bands()
        ]  # fmt: skip
        return math.sqrt(max(0.0, *variances))

    def update(self, x: float, censored: bool, params: _Params, band: int | None = None) -> None:
        size = len(self.state)
        cov = [row[:] for row in self.cov]  # committed only if the reading is used
        cov[0][0] += params.forget_sd**2
        for i in range(1, size):
            cov[i][i] += (params.forget_sd / 2) ** 2
        picked = [0] if band is None else [0, 1 + band]
        predicted = sum(self.state[i] for i in picked)

        def spread_sq() -> float:
            return sum(cov[i][j] for i in picked for j in picked) + self.noise

        spread = math.sqrt(spread_sq())
        if censored:
            if x <= predicted:
                return  # a lower bound under the estimate: nothing learned
            x = predicted + spread * _inverse_mills((x - predicted) / spread)
        innovation = x - predicted
        if abs(innovation) > params.drift_z * spread:
            # A step change: of the band, while it is barely explored (the calibration
            # is wrong about how it scales), else of the whole server.
            at = 1 + band if band is not None and self.band_reads[band] < NEW_BAND_READS else 0
            cov[at][at] = max(cov[at][at], innovation**2)
            self.drifts += 1
        total = spread_sq()
        towards = [sum(cov[i][j] for j in picked) for i in range(size)]
        gains = [v / total for v in towards]
        for i in range(size):
            self.state[i] += gains[i] * innovation
        for i in range(size):
            for j in range(size):
                cov[i][j] -= gains[i] * towards[j]
        self.cov = cov
        fitted = sum(cov[i][j] for i in picked for j in picked)
        residual = x - sum(self.state[i] for i in picked)
        self.noise = max(
            params.min_noise_sd**2,
            (1.0 - params.noise_gain) * self.noise + params.noise_gain * (residual**2 + fitted),
        )
        self.observations += 1
        if band is not None:
            self.band_reads[band] += 1


class OnlineLatency:
    """Per-group (and per-endpoint) corrections of the latency models, learned online.

    ``noise_sd``: the prior's noise of one reading's log-factor; ``pseudo_count``:
    how many readings the calibration is worth; ``forget_sd``: how far the
    log-factor may wander per reading (forgetting); ``drift_z``: the
    standardized innovation taken as a step change; ``noise_gain``: the EWMA
    gain of the learned noise. The defaults give a prior log-sd of 0.15 (the
    SLA quantile planned ~1.3x wider at p95 until evidence arrives).
    """

    def __init__(
        self,
        *,
        noise_sd: float = 0.15,
        pseudo_count: float = 1.0,
        forget_sd: float = 0.05,
        drift_z: float = 3.0,
        noise_gain: float = 0.1,
        min_noise_sd: float = 0.02,
    ) -> None:
        for name, value in (("noise_sd", noise_sd), ("pseudo_count", pseudo_count),
                            ("drift_z", drift_z), ("min_noise_sd", min_noise_sd)):  # fmt: skip
            if not (math.isfinite(value) and value > 0):
                raise ConfigurationError(
                    f"OnlineLatency.{name} must be finite and > 0, got {value}"
                )
        if not (math.isfinite(forget_sd) and forget_sd >= 0):
            raise ConfigurationError(f"OnlineLatency.forget_sd must be >= 0, got {forget_sd}")
        if not 0.0 < noise_gain <= 1.0:
            raise ConfigurationError(
                f"OnlineLatency.noise_gain must be in (0, 1], got {noise_gain}"
            )
        self._params = _Params(noise_sd, pseudo_count, forget_sd, drift_z, noise_gain,
                               min_noise_sd)  # fmt: skip
        self._entries: dict[tuple[str, str | None], _Entry] = {}
        self._groups: dict[tuple[str, Quantity], _Filter] = {}
        self._version = 0  # readings taken: what the memo of corrected() is valid for
        self._corrected: tuple[int, Mapping[str, LatencyModel], dict[str, LatencyModel]] | None = (
            None
        )

    def _filter(self, group: str, url: str | None, quantity: Quantity) -> _Filter:
        """The group's filter (with bands), or one endpoint's (without)."""
        if url is None:
            return self._joint(group, quantity)
        entry = self._entries.setdefault((group, url), _Entry())
        if quantity not in entry.filters:
            entry.filters[quantity] = _Filter.prior(self._params, bands=0)
        return entry.filters[quantity]

    def _joint(self, group: str, quantity: Quantity) -> _Filter:
        key = (group, quantity)
        if key not in self._groups:
            self._groups[key] = _Filter.prior(self._params)
        return self._groups[key]

    def observe(self, observation: LatencyObservation) -> None:
        """Learn from one reading: the group's correction, its endpoint's, and (with a
        concurrency) what the group's leaves unexplained at that concurrency band."""
        self._version += 1
        x, censored, quantity = observation.log_ratio, observation.censored, observation.quantity
        band = None if observation.concurrency is None else band_of(observation.concurrency)
        self._joint(observation.group, quantity).update(x, censored, self._params, band)
        if observation.url is not None:
            self._filter(observation.group, observation.url, quantity).update(
                x, censored, self._params
            )

    def correction(self, group: str) -> ConcurrencyCorrection | None:
        """The group's factors by concurrency band beyond its own (None: no band read yet)."""

        def points(quantity: Quantity) -> tuple[tuple[float, float], ...]:
            joint = self._groups.get((group, quantity))
            if joint is None:
                return ()
            return tuple((float(band), joint.offset(band)) for band in joint.read_bands())

        ttft, per_token = points("ttft"), points("per_token")
        return ConcurrencyCorrection(ttft, per_token) if ttft or per_token else None

    def band_states(self, group: str) -> tuple[tuple[Quantity, int, float, int], ...]:
        """Per quantity and band read: ``(quantity, lowest concurrency of the band,
        factor beyond the group's, readings)``."""
        out = []
        for quantity in _QUANTITIES:
            joint = self._groups.get((group, quantity))
            if joint is not None:
                out += [
                    (quantity, 2**band, math.exp(joint.offset(band)), joint.band_reads[band])
                    for band in joint.read_bands()
                ]  # fmt: skip
        return tuple(out)

    def observe_all(self, observations: Iterable[LatencyObservation]) -> None:
        for observation in observations:
            self.observe(observation)

    def state(self, group: str, url: str | None = None) -> OnlineState:
        """The corrections of ``group`` (of one endpoint of it with ``url``)."""
        ttft = self._filter(group, url, "ttft")
        per_token = self._filter(group, url, "per_token")

        return OnlineState(
            group=group,
            url=url,
            ttft_factor=math.exp(ttft.typical()),
            per_token_factor=math.exp(per_token.typical()),
            ttft_sd=ttft.spread(),
            per_token_sd=per_token.spread(),
            observations=ttft.observations + per_token.observations,
            drifts=ttft.drifts + per_token.drifts,
        )

    def corrected(self, models: Mapping[str, LatencyModel]) -> dict[str, LatencyModel]:
        """The models scaled by each group's point estimate (``exp(m)``), with its
        factors by concurrency band on top. Memoised until the next reading (a call
        asks once per plan; many calls plan between two readings)."""
        memo = self._corrected
        if memo is not None and memo[0] == self._version and memo[1] is models:
            return dict(memo[2])
        out = {}
        for group, model in models.items():
            ttft, per_token = self._joint(group, "ttft"), self._joint(group, "per_token")
            scaled = model.scaled(math.exp(ttft.mean), math.exp(per_token.mean))
            out[group] = scaled.with_correction(self.correction(group))
        self._corrected = (self._version, models, out)
        return dict(out)

    def spreads(self, groups: Iterable[str]) -> dict[str, tuple[float, float]]:
        """Per group, the log-space sds of the (TTFT, per-token) factors: the
        planner widens its SLA quantile by ``exp(z_q * sd)`` (``PlanInputs.latency_sd``)."""
        out = {}
        for group in groups:
            state = self.state(group)
            out[group] = (state.ttft_sd, state.per_token_sd)
        return out


def stream_observations(
    stream: ChatStream,
    model: LatencyModel,
    *,
    load: int = 0,
    prompt_tokens: int | None = None,
    beam: bool = False,
    now: float | None = None,
) -> list[LatencyObservation]:
    """What one stream says about ``model`` (the calibrated, uncorrected model).

    The request decoded ``request.n`` branches on top of ``load`` sequences.
    TTFT: the branches' mean time to first token, or, when none came before
    the stream closed, a censored reading (at least that long). Per-token: the
    median over branches of the inter-arrival time per token after the first
    chunk; a branch cut with a single chunk gives a censored reading. A stream
    that broke (an endpoint error) gives only its uncensored readings: the
    break says nothing about speed. ``now`` stands for the close time of a
    stream not closed yet.
    """
    group = model.group
    request = stream.request
    end = stream.closed_at if stream.closed_at is not None else now
    clean = stream.error is None
    prompt = prompt_tokens if prompt_tokens is not None else (stream.prompt_tokens or 0)
    branches = list(stream.branches.values())
    out: list[LatencyObservation] = []

    concurrency = float(load + request.n)

    def reading(quantity: Quantity, actual: float, predicted: float, censored: bool) -> None:
        if actual > 0 and predicted > 0 and math.isfinite(actual):
            out.append(
                LatencyObservation(
                    group, quantity, actual, predicted, censored, url=stream.url,
                    concurrency=concurrency,
                )
            )  # fmt: skip

    ttft_predicted = model.ttft.predict(prompt, load + request.n - 1)
    firsts = [
        b.first_token_at - stream.started_at for b in branches if b.first_token_at is not None
    ]
    if firsts:
        reading("ttft", statistics.fmean(firsts), ttft_predicted, censored=False)
    elif clean and end is not None:
        reading("ttft", end - stream.started_at, ttft_predicted, censored=True)

    per_token_predicted = model.per_token_s(load + request.n) * (
        model.beam_slowdown if beam else 1.0
    )
    rates = []
    bounds = []
    for b in branches:
        chunks = len(b.token_times)
        if chunks >= 2 and b.first_token_at is not None:
            after_first = b.tokens * (chunks - 1) / chunks
            if after_first > 0:
                rates.append((b.token_times[-1] - b.first_token_at) / after_first)
        elif chunks == 1 and not b.finished and clean and end is not None:
            assert b.first_token_at is not None
            bounds.append(end - b.first_token_at)
    if rates:
        reading("per_token", statistics.median(rates), per_token_predicted, censored=False)
    elif bounds:
        reading("per_token", max(bounds), per_token_predicted, censored=True)
    return out
