"""Latency model of one endpoint group: how long a config takes.

``latency(q) = TTFT(prompt tokens, load) + L_max,q(n) x per-token time(load + n)``

* TTFT is linear in prompt tokens and in the sequences already running.
* The per-token decode time per branch is a piecewise-linear curve over
  measured concurrencies (N in {1, 2, 4, 8, 16}): small-batch decoding is
  memory-bound, so the curve stays flat until the compute knee (paper 1).
* ``L_max,q(n)`` is the q-quantile of the longest of ``n`` outputs, capped at
  ``max_tokens`` (see :mod:`agentrt.tts._length`).

For a speculative group, :meth:`LatencyModel.derive_speculative` builds the
curve from a plain group's curve and the acceptance rate: a pass verifies
``N(gamma+1)`` tokens and yields ``(1 - a^(gamma+1)) / (1 - a)`` per branch, so
the speedup shrinks as concurrency pushes the verification batch past the
knee. A calibrated spec group simply carries its own measured curve.

Pydantic (:class:`LatencyProfile`) is the edge to TOML profiles; inside, the
model is frozen dataclasses.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentrt.core._errors import ConfigurationError
from agentrt.core._validation import dump, load, profile_errors
from agentrt.pool._endpoint import PLAIN_GROUP, SPEC_GROUP
from agentrt.tts._config import TTSConfig
from agentrt.tts._curve import Curve
from agentrt.tts._fitting import fit_nonnegative_linear
from agentrt.tts._length import LengthModel

__all__ = [
    "DEFAULT_BEAM_SLOWDOWN",
    "ConcurrencyCorrection",
    "LatencyModel",
    "LatencyProfile",
    "SpeculativeModel",
    "TTFTModel",
    "expected_tokens_per_pass",
]

DEFAULT_BEAM_SLOWDOWN = 2.0
"""Prior: vLLM's beam search runs step by step in the API server, ~2x slower per
token than sampling the same number of branches. Calibrate it."""


def expected_tokens_per_pass(acceptance: float, draft_tokens: int) -> float:
    """Tokens a target pass yields per branch: ``(1 - a^(g+1)) / (1 - a)``."""
    if not 0.0 <= acceptance < 1.0:
        raise ConfigurationError(f"acceptance rate must be in [0, 1), got {acceptance}")
    if draft_tokens < 0:
        raise ConfigurationError(f"draft tokens must be >= 0, got {draft_tokens}")
    return (1.0 - acceptance ** (draft_tokens + 1)) / (1.0 - acceptance)


Points = tuple[tuple[float, float], ...]


def _log_interpolate(points: Points, concurrency: float) -> float:
    """The factor at ``concurrency`` from ``(log2 concurrency, log factor)`` points:
    linear in between, flat outside (1.0 with no points)."""
    if not points:
        return 1.0
    x = math.log2(max(1.0, concurrency))
    if x <= points[0][0]:
        return math.exp(points[0][1])
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x <= x1:
            return math.exp(y0 + (y1 - y0) * (x - x0) / (x1 - x0))
    return math.exp(points[-1][1])


@dataclass(frozen=True)
class ConcurrencyCorrection:
    """Factors on TTFT and on per-token time that depend on the concurrency, on top
    of a model's own (an online correction of how the calibration's speed grows
    with the number of sequences: a CPU without native bf16 slows 8x from N=1 to
    16 where the calibrated one slowed 2x). Points are ``(log2 concurrency, log
    factor)``, x increasing, interpolated linearly and flat outside."""

    ttft: Points = ()
    per_token: Points = ()

    def __post_init__(self) -> None:
        for name in ("ttft", "per_token"):
            points = getattr(self, name)
            xs = [x for x, _ in points]
            if any(b <= a for a, b in itertools.pairwise(xs)) or not all(
                math.isfinite(v) for p in points for v in p
            ):
                raise ConfigurationError(
                    f"ConcurrencyCorrection.{name} needs finite points, x increasing; got {points}"
                )

    def ttft_factor(self, concurrency: float) -> float:
        return _log_interpolate(self.ttft, concurrency)

    def per_token_factor(self, concurrency: float) -> float:
        return _log_interpolate(self.per_token, concurrency)


@dataclass(frozen=True)
class TTFTModel:
    """Time to first token: ``base_s + per_prompt_token_s * prompt + per_load_s * load``."""

    base_s: float
    per_prompt_token_s: float = 0.0
    per_load_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("base_s", "per_prompt_token_s", "per_load_s"):
            value = getattr(self, name)
            if math.isnan(value) or math.isinf(value) or value < 0:
                raise ConfigurationError(f"TTFTModel.{name} must be finite and >= 0, got {value}")

    def predict(self, prompt_tokens: int, load: int = 0) -> float:
        return self.base_s + self.per_prompt_token_s * prompt_tokens + self.per_load_s * load

    @classmethod
    def fit(cls, samples: Sequence[tuple[int, int, float]]) -> TTFTModel:
        """Least squares over ``(prompt_tokens, load, ttft_s)`` samples, coefficients >= 0.

        A feature that never varies in the samples (e.g. load always 0) gets 0.
        """
        if not samples:
            raise ConfigurationError("TTFTModel.fit needs at least one sample")
        rows = [(float(p), float(load)) for p, load, _ in samples]
        ys = [t for _, _, t in samples]
        base, per_prompt, per_load = fit_nonnegative_linear(rows, ys)
        return cls(base_s=base, per_prompt_token_s=per_prompt, per_load_s=per_load)


@dataclass(frozen=True)
class SpeculativeModel:
    """A speculative group's draft length and acceptance rate by concurrency
    (measured from vLLM's ``spec_decode`` counters, or assumed)."""

    num_speculative_tokens: int
    acceptance: Curve

    def __post_init__(self) -> None:
        if self.num_speculative_tokens < 1:
            raise ConfigurationError(
                "SpeculativeModel.num_speculative_tokens must be >= 1, "
                f"got {self.num_speculative_tokens}"
            )
        for x, a in self.acceptance.points:
            if not 0.0 <= a < 1.0:
                raise ConfigurationError(
                    f"SpeculativeModel.acceptance at concurrency {x} must be in [0, 1), got {a}"
                )

    def acceptance_at(self, concurrency: float) -> float:
        return min(max(self.acceptance.at(concurrency), 0.0), 0.999)

    def tokens_per_pass(self, concurrency: float) -> float:
        return expected_tokens_per_pass(
            self.acceptance_at(concurrency), self.num_speculative_tokens
        )


@dataclass(frozen=True)
class LatencyModel:
    """Predicted latency of a config on one endpoint group."""

    group: str
    ttft: TTFTModel
    decode_s_per_token: Curve
    speculative: SpeculativeModel | None = None
    beam_slowdown: float = DEFAULT_BEAM_SLOWDOWN
    correction: ConcurrencyCorrection | None = None
    """Online factors by concurrency (:meth:`with_correction`); never serialised."""

    def __post_init__(self) -> None:
        if not self.group:
            raise ConfigurationError("LatencyModel.group must be a non-empty group name")
        if any(y <= 0 for _, y in self.decode_s_per_token.points):
            raise ConfigurationError(
                f"LatencyModel.decode_s_per_token must be > 0 everywhere, "
                f"got {self.decode_s_per_token.points}"
            )
        if not 1.0 <= self.beam_slowdown < math.inf:
            raise ConfigurationError(
                f"LatencyModel.beam_slowdown must be >= 1, got {self.beam_slowdown}"
            )

    @property
    def draft_tokens(self) -> int:
        """The draft length gamma of this group (0 for a plain group)."""
        return 0 if self.speculative is None else self.speculative.num_speculative_tokens

    def per_token_s(self, concurrency: float) -> float:
        """Seconds per output token of one branch when ``concurrency`` sequences decode."""
        return self.decode_s_per_token.at(max(1.0, concurrency))

    def slowdown(self, load: float, *, prompt_tokens: int = 256, tokens: int = 32) -> float:
        """How many times longer a one-branch call (``prompt_tokens`` in, ``tokens``
        out) takes with ``load`` sequences already on the server than alone (>= 1):
        its TTFT with that load ahead, its decoding at ``load + 1`` sequences."""
        if not math.isfinite(load) or load <= 0:
            return 1.0
        alone = self.ttft.predict(prompt_tokens, 0) + tokens * self.per_token_s(1.0)
        loaded = self.ttft.predict(prompt_tokens, round(load)) + tokens * self.per_token_s(load + 1)
        return max(1.0, loaded / alone) if alone > 0 else 1.0

    def _check(self, config: TTSConfig, load: int) -> None:
        if config.group != self.group:
            raise ConfigurationError(
                f"config for group {config.group!r} given to the latency model of {self.group!r}"
            )
        if load < 0:
            raise ConfigurationError(f"load must be >= 0 running sequences, got {load}")

    def _decode_s(self, config: TTSConfig, load: int) -> float:
        per_token = self.per_token_s(load + config.n)
        return per_token * (self.beam_slowdown if config.strategy == "beam" else 1.0)

    def predict_quantile(
        self,
        config: TTSConfig,
        prompt_tokens: int,
        length_model: LengthModel,
        q: float,
        load: int = 0,
    ) -> float:
        """The ``q``-quantile of the config's latency in seconds.

        ``load`` is the number of sequences already running on the group; the
        config adds ``n``. TTFT is taken at its mean, with the config's other
        ``n - 1`` branches counted as load (each branch is prefilled on its own).
        """
        self._check(config, load)
        longest = min(float(config.max_tokens), length_model.max_quantile(config.n, q))
        return self._ttft_s(config, prompt_tokens, load) + longest * self._decode_s(config, load)

    def _ttft_s(self, config: TTSConfig, prompt_tokens: int, load: int) -> float:
        concurrency = load + config.n
        if self.correction is None or not self.correction.ttft:
            return self.ttft.predict(prompt_tokens, concurrency - 1)
        # Corrected TTFT at c, never below its value at a band point under c: the
        # product of the linear TTFT and the log-linear factor falls at most once
        # then rises on each segment, so this maximum is non-decreasing in c.
        correction = self.correction
        at = [float(concurrency)] + [
            float(2.0**x) for x, _ in correction.ttft if 2.0**x < concurrency
        ]  # fmt: skip
        ttft = self.ttft
        return max(
            (ttft.base_s + ttft.per_prompt_token_s * prompt_tokens + ttft.per_load_s * (c - 1))
            * correction.ttft_factor(c)
            for c in at
        )

    def predict_mean(
        self, config: TTSConfig, prompt_tokens: int, length_model: LengthModel, load: int = 0
    ) -> float:
        """The config's expected latency in seconds (mean of the longest branch)."""
        self._check(config, load)
        longest = length_model.expected_max(config.n, config.max_tokens)
        return self._ttft_s(config, prompt_tokens, load) + longest * self._decode_s(config, load)

    def min_latency_s(
        self,
        prompt_tokens: int,
        length_model: LengthModel,
        q: float,
        load: int = 0,
        max_tokens: int = 256,
    ) -> float:
        """The cheapest config's latency quantile: one greedy branch, ``max_tokens`` cap."""
        cheapest = TTSConfig("single", 1, group=self.group, max_tokens=max_tokens)
        return self.predict_quantile(cheapest, prompt_tokens, length_model, q, load)

    def scaled(self, ttft_factor: float, per_token_factor: float) -> LatencyModel:
        """This model with TTFT and per-token time multiplied (an online correction)."""
        for name, value in (("ttft_factor", ttft_factor), ("per_token_factor", per_token_factor)):
            if not (math.isfinite(value) and value > 0):
                raise ConfigurationError(f"LatencyModel.scaled: {name} must be > 0, got {value}")
        if ttft_factor == 1.0 and per_token_factor == 1.0:
            return self
        ttft = TTFTModel(
            base_s=self.ttft.base_s * ttft_factor,
            per_prompt_token_s=self.ttft.per_prompt_token_s * ttft_factor,
            per_load_s=self.ttft.per_load_s * ttft_factor,
        )
        curve = Curve(tuple((x, y * per_token_factor) for x, y in self.decode_s_per_token.points))
        return replace(self, ttft=ttft, decode_s_per_token=curve)

    def with_correction(self, correction: ConcurrencyCorrection | None) -> LatencyModel:
        """This model with factors by concurrency on top (``None``: none). The
        per-token factors are folded into the decode curve, re-drawn through its own
        points and the bands' and kept non-decreasing (more sequences never decode
        faster); the TTFT factors stay in ``correction``."""
        if correction is None:
            return self
        curve = self.decode_s_per_token
        if correction.per_token:
            xs = sorted({x for x, _ in curve.points} | {2.0**x for x, _ in correction.per_token})
            curve = Curve.of((x, curve.at(x) * correction.per_token_factor(x)) for x in xs)
        return replace(
            self, decode_s_per_token=curve, correction=ConcurrencyCorrection(ttft=correction.ttft)
        )

    def speedup_over(self, plain: LatencyModel, concurrency: float) -> float:
        """How much faster per token this group is than ``plain`` at a concurrency."""
        return plain.per_token_s(concurrency) / self.per_token_s(concurrency)

    @classmethod
    def prior(cls, group: str = PLAIN_GROUP) -> LatencyModel:
        """A placeholder until calibration: 50 ms + 0.1 ms/prompt token TTFT and a
        memory-bound decode curve (20 ms/token at N=1, knee past N=8)."""
        return cls(
            group=group,
            ttft=TTFTModel(base_s=0.05, per_prompt_token_s=0.0001, per_load_s=0.002),
            decode_s_per_token=Curve.of(
                [(1, 0.020), (2, 0.0205), (4, 0.021), (8, 0.023), (16, 0.030), (32, 0.045)]
            ),
        )

    @classmethod
    def derive_speculative(
        cls,
        plain: LatencyModel,
        num_speculative_tokens: int,
        acceptance: Curve,
        *,
        draft_overhead: float = 0.1,
        group: str = SPEC_GROUP,
        concurrencies: Iterable[int] = (1, 2, 4, 8, 16, 32),
    ) -> LatencyModel:
        """A speculative group's model from the plain group's curve.

        Per-token time at N = plain step time at ``N(gamma+1)`` batched tokens x
        (1 + ``draft_overhead``) / tokens per pass. TTFT is the plain group's.
        """
        if not 0.0 <= draft_overhead < math.inf:
            raise ConfigurationError(f"draft_overhead must be >= 0, got {draft_overhead}")
        spec = SpeculativeModel(num_speculative_tokens, acceptance)
        points = [
            (
                float(n),
                plain.per_token_s(n * (num_speculative_tokens + 1))
                * (1.0 + draft_overhead)
                / spec.tokens_per_pass(n),
            )
            for n in concurrencies
        ]
        return cls(
            group=group,
            ttft=plain.ttft,
            decode_s_per_token=Curve.of(points),
            speculative=spec,
            beam_slowdown=plain.beam_slowdown,
        )

    @classmethod
    def fit(
        cls,
        group: str,
        ttft_samples: Sequence[tuple[int, int, float]],
        decode_samples: Iterable[tuple[int, float]],
        *,
        speculative: SpeculativeModel | None = None,
        beam_slowdown: float = DEFAULT_BEAM_SLOWDOWN,
    ) -> LatencyModel:
        """Fit from measurements: TTFT ``(prompt_tokens, load, s)`` samples and
        per-token ``(concurrency, s)`` samples (median per concurrency)."""
        by_n: dict[int, list[float]] = {}
        for n, seconds in decode_samples:
            by_n.setdefault(int(n), []).append(float(seconds))
        if not by_n:
            raise ConfigurationError(f"LatencyModel.fit for {group!r} needs decode samples")
        curve = Curve.of([(n, statistics.median(v)) for n, v in sorted(by_n.items())])
        return cls(group, TTFTModel.fit(ttft_samples), curve, speculative, beam_slowdown)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a TOML profile."""
        spec = None
        if self.speculative is not None:
            spec = SpeculativeProfile(
                num_speculative_tokens=self.speculative.num_speculative_tokens,
                acceptance=list(self.speculative.acceptance.points),
            )
        return dump(
            LatencyProfile(
                group=self.group,
                ttft=TTFTProfile(
                    base_s=self.ttft.base_s,
                    per_prompt_token_s=self.ttft.per_prompt_token_s,
                    per_load_s=self.ttft.per_load_s,
                ),
                decode_s_per_token=list(self.decode_s_per_token.points),
                speculative=spec,
                beam_slowdown=self.beam_slowdown,
            )
        )

    @classmethod
    def from_dict(cls, data: object, source: str = "latency model") -> LatencyModel:
        """Validate profile data; a bad field raises :class:`ProfileError` naming it."""
        profile = load(LatencyProfile, data, source)
        with profile_errors(source):
            spec = None
            if profile.speculative is not None:
                spec = SpeculativeModel(
                    profile.speculative.num_speculative_tokens,
                    Curve.of(profile.speculative.acceptance, monotone=False),
                )
            return cls(
                group=profile.group,
                ttft=TTFTModel(**profile.ttft.model_dump()),
                decode_s_per_token=Curve.of(profile.decode_s_per_token),
                speculative=spec,
                beam_slowdown=profile.beam_slowdown,
            )


class TTFTProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_s: float = Field(ge=0.0, allow_inf_nan=False)
    per_prompt_token_s: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    per_load_s: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)


class SpeculativeProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    num_speculative_tokens: int = Field(ge=1)
    acceptance: list[tuple[float, float]] = Field(min_length=1)


class LatencyProfile(BaseModel):
    """The serialised form of a :class:`LatencyModel` (one TOML table per group)."""

    model_config = ConfigDict(extra="forbid")
    group: str = Field(min_length=1)
    ttft: TTFTProfile
    decode_s_per_token: list[tuple[float, float]] = Field(min_length=1)
    speculative: SpeculativeProfile | None = None
    beam_slowdown: float = Field(default=DEFAULT_BEAM_SLOWDOWN, ge=1.0, allow_inf_nan=False)
