"""Accuracy model of one call site: how likely a config is to answer correctly.

Measured accuracies (labelled runs, per strategy x N) are used where they
exist. Elsewhere a documented prior over the single-sample accuracy ``p``:

* ``single``: ``greedy_accuracy`` (defaults to ``p``).
* ``majority`` of N: the plurality formula. Correct votes are Binomial(N, p);
  wrong votes spread evenly over ``wrong_answers`` distinct wrong answers; the
  correct answer wins with a strict plurality, and a t-way tie with
  probability 1/(t+1). The curve is then made monotone in N (running maximum):
  when the formula falls with N, the correct answer is not the mode, and the
  planner should not be told that more branches help.
* ``best_of_n``: ``p + v * (pass@N - p)`` with ``pass@N = 1 - (1-p)^N`` and
  ``v = verifier_quality`` in [0, 1] (0: picks at random, 1: a perfect verifier).
* ``weighted``: ``majority(N) + v * (pass@N - majority(N))``.
* ``beam``: ``greedy + beam_quality * (pass@N - greedy)``.

Truncation: a branch cut at ``max_tokens`` has no answer, so ``p`` is scaled
by ``F(max_tokens)`` (the length model's CDF) before any formula; measured
values are scaled by ``F(max_tokens) / F(measured_max_tokens)`` (at most 1).

Extension point: the planner takes any :class:`AccuracyEstimator`. Paper 2's
per-query probe (an MLP on the query's hidden state, Platt-scaled) would be
an object built per query that implements it: :mod:`agentrt.tts.probe`
(``CallModels(per_query=ProbeAccuracy.load(path).for_query)``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from agentrt.core._errors import ConfigurationError
from agentrt.core._validation import dump, load, profile_errors
from agentrt.tts._config import STRATEGY_NAMES, StrategyName, TTSConfig
from agentrt.tts._length import LengthModel

__all__ = [
    "AccuracyEstimator",
    "AccuracyModel",
    "AccuracyPrior",
    "AccuracyProfile",
    "MeasuredAccuracy",
    "best_of_n_accuracy",
    "majority_accuracy",
    "pass_at_n",
    "plurality_accuracy",
]

MAX_PRIOR_N = 64
MAX_WRONG_ANSWERS = 32


class AccuracyEstimator(Protocol):
    """Predicts the probability that a config answers this call correctly."""

    def predict(self, config: TTSConfig, length_model: LengthModel) -> float: ...


def _check_probability(name: str, value: float) -> None:
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ConfigurationError(f"{name} must be in [0, 1], got {value}")


def pass_at_n(p: float, n: int) -> float:
    """Probability that at least one of ``n`` independent samples is correct."""
    return 1.0 - (1.0 - p) ** n


@lru_cache(maxsize=4096)
def plurality_accuracy(p: float, n: int, wrong_answers: int) -> float:
    """Probability the correct answer wins a plurality vote of ``n`` samples
    (ties broken uniformly at random), without the monotone envelope."""
    _check_probability("p", p)
    if not 1 <= n <= MAX_PRIOR_N:
        raise ConfigurationError(f"n must be in [1, {MAX_PRIOR_N}], got {n}")
    if not 1 <= wrong_answers <= MAX_WRONG_ANSWERS:
        raise ConfigurationError(
            f"wrong_answers must be in [1, {MAX_WRONG_ANSWERS}], got {wrong_answers}"
        )
    total = 0.0
    for correct in range(1, n + 1):
        weight = math.comb(n, correct) * p**correct * (1.0 - p) ** (n - correct)
        if weight > 0.0:
            total += weight * _win_given(correct, n - correct, wrong_answers)
    return min(1.0, total)


@lru_cache(maxsize=4096)
def _win_given(correct: int, wrong: int, k: int) -> float:
    """P(correct answer wins | ``correct`` votes for it, ``wrong`` spread evenly over k).

    ``ways[s][t]``: sum over assignments of s wrong votes to the cells seen so
    far, each cell at most ``correct``, ``t`` cells tied with it, of prod 1/j!.
    """
    if wrong == 0:
        return 1.0
    ways = [[0.0] * (k + 1) for _ in range(wrong + 1)]
    ways[0][0] = 1.0
    inverse_factorial = [1.0 / math.factorial(j) for j in range(correct + 1)]
    for _cell in range(k):
        nxt = [[0.0] * (k + 1) for _ in range(wrong + 1)]
        for s in range(wrong + 1):
            for t in range(k):
                base = ways[s][t]
                if base == 0.0:
                    continue
                for j in range(min(correct, wrong - s) + 1):
                    nxt[s + j][t + (j == correct)] += base * inverse_factorial[j]
        ways = nxt
    scale = math.factorial(wrong) / float(k) ** wrong
    return sum(ways[wrong][t] * scale / (t + 1) for t in range(k + 1))


def majority_accuracy(p: float, n: int, wrong_answers: int) -> float:
    """The plurality formula made non-decreasing in ``n`` (running maximum)."""
    return max(plurality_accuracy(p, m, wrong_answers) for m in range(1, n + 1))


def best_of_n_accuracy(p: float, n: int, verifier_quality: float) -> float:
    """``p + v * (pass@N - p)``: a verifier of quality ``v`` captures that share
    of the gap between one sample and the best of ``n``."""
    return p + verifier_quality * (pass_at_n(p, n) - p)


@dataclass(frozen=True)
class AccuracyPrior:
    """Assumptions used where nothing was measured (see the module docstring)."""

    sample_accuracy: float = 0.5
    greedy_accuracy: float | None = None
    wrong_answers: int = 4
    verifier_quality: float = 0.5
    beam_quality: float = 0.3

    def __post_init__(self) -> None:
        _check_probability("AccuracyPrior.sample_accuracy", self.sample_accuracy)
        if self.greedy_accuracy is not None:
            _check_probability("AccuracyPrior.greedy_accuracy", self.greedy_accuracy)
        _check_probability("AccuracyPrior.verifier_quality", self.verifier_quality)
        _check_probability("AccuracyPrior.beam_quality", self.beam_quality)
        if not 1 <= self.wrong_answers <= MAX_WRONG_ANSWERS:
            raise ConfigurationError(
                f"AccuracyPrior.wrong_answers must be in [1, {MAX_WRONG_ANSWERS}], "
                f"got {self.wrong_answers}"
            )

    def predict(self, strategy: StrategyName, n: int, finish_rate: float) -> float:
        """Prior accuracy of ``strategy`` with ``n`` branches when a branch
        finishes within its cap with probability ``finish_rate``."""
        p = self.sample_accuracy * finish_rate
        greedy = (
            self.sample_accuracy if self.greedy_accuracy is None else self.greedy_accuracy
        ) * finish_rate
        n = min(n, MAX_PRIOR_N)
        match strategy:
            case "single":
                return greedy
            case "majority":
                return majority_accuracy(p, n, self.wrong_answers)
            case "weighted":
                majority = majority_accuracy(p, n, self.wrong_answers)
                return majority + self.verifier_quality * max(0.0, pass_at_n(p, n) - majority)
            case "best_of_n":
                return best_of_n_accuracy(p, n, self.verifier_quality)
            case "beam":
                return greedy + self.beam_quality * max(0.0, pass_at_n(p, n) - greedy)


@dataclass(frozen=True)
class MeasuredAccuracy:
    """Accuracy of one strategy x N from ``runs`` labelled runs."""

    strategy: StrategyName
    n: int
    accuracy: float
    runs: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGY_NAMES:
            raise ConfigurationError(f"MeasuredAccuracy.strategy unknown: {self.strategy!r}")
        if self.n < 1:
            raise ConfigurationError(f"MeasuredAccuracy.n must be >= 1, got {self.n}")
        _check_probability("MeasuredAccuracy.accuracy", self.accuracy)


def _monotone_by_n(rows: Iterable[MeasuredAccuracy]) -> dict[int, float]:
    """Pool-adjacent-violators fit, non-decreasing in n, weighted by runs."""
    blocks: list[list[float]] = []  # [value, weight, count of ns]
    ordered = sorted(rows, key=lambda r: r.n)
    for row in ordered:
        blocks.append([row.accuracy, float(max(row.runs, 1)), 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            value2, weight2, count2 = blocks.pop()
            value1, weight1, count1 = blocks.pop()
            weight = weight1 + weight2
            blocks.append([(value1 * weight1 + value2 * weight2) / weight, weight, count1 + count2])
    fitted: dict[int, float] = {}
    position = 0
    for value, _weight, count in blocks:
        for _ in range(int(count)):
            fitted[ordered[position].n] = value
            position += 1
    return fitted


@dataclass(frozen=True)
class AccuracyModel:
    """Measured accuracies where present, else :class:`AccuracyPrior`.

    ``measured_max_tokens`` is the cap the labelled runs used. Majority rows
    are fitted non-decreasing in N (pool adjacent violators). When the table
    holds a ``single`` row, its accuracy replaces the prior's greedy accuracy,
    and a ``majority`` n=1 row replaces the sample accuracy.
    """

    prior: AccuracyPrior = field(default_factory=AccuracyPrior)
    measured: tuple[MeasuredAccuracy, ...] = ()
    measured_max_tokens: int | None = None

    def __post_init__(self) -> None:
        keys = [(m.strategy, m.n) for m in self.measured]
        if len(keys) != len(set(keys)):
            raise ConfigurationError(f"AccuracyModel.measured repeats a strategy x n: {keys}")
        if self.measured_max_tokens is not None and self.measured_max_tokens < 1:
            raise ConfigurationError(
                f"AccuracyModel.measured_max_tokens must be >= 1, got {self.measured_max_tokens}"
            )

    def _table(self) -> dict[tuple[StrategyName, int], float]:
        table = {(m.strategy, m.n): m.accuracy for m in self.measured}
        majority = [m for m in self.measured if m.strategy == "majority"]
        for n, value in _monotone_by_n(majority).items():
            table["majority", n] = value
        return table

    def _effective_prior(self) -> AccuracyPrior:
        table = self._table()
        sample = table.get(("majority", 1), self.prior.sample_accuracy)
        greedy = table.get(("single", 1), self.prior.greedy_accuracy)
        return AccuracyPrior(
            sample_accuracy=sample,
            greedy_accuracy=greedy,
            wrong_answers=self.prior.wrong_answers,
            verifier_quality=self.prior.verifier_quality,
            beam_quality=self.prior.beam_quality,
        )

    def predict(self, config: TTSConfig, length_model: LengthModel) -> float:
        finish_rate = length_model.cdf(config.max_tokens)
        measured = self._table().get((config.strategy, config.n))
        if measured is None:
            return self._effective_prior().predict(config.strategy, config.n, finish_rate)
        if self.measured_max_tokens is None:
            return measured
        reference = length_model.cdf(self.measured_max_tokens)
        scale = 1.0 if reference <= 0.0 else min(1.0, finish_rate / reference)
        return measured * scale

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a TOML profile."""
        measured = [
            MeasuredRow(strategy=m.strategy, n=m.n, accuracy=m.accuracy, runs=m.runs)
            for m in self.measured
        ]
        return dump(
            AccuracyProfile(
                **asdict(self.prior),
                measured=measured,
                measured_max_tokens=self.measured_max_tokens,
            )
        )

    @classmethod
    def from_dict(cls, data: object, source: str = "accuracy model") -> AccuracyModel:
        """Validate profile data; a bad field raises :class:`ProfileError` naming it."""
        profile = load(AccuracyProfile, data, source)
        prior = AccuracyPrior(**profile.model_dump(exclude={"measured", "measured_max_tokens"}))
        measured = tuple(
            MeasuredAccuracy(r.strategy, r.n, r.accuracy, r.runs) for r in profile.measured
        )
        with profile_errors(source, field="measured"):
            return cls(prior, measured, profile.measured_max_tokens)


class MeasuredRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strategy: StrategyName
    n: int = Field(ge=1)
    accuracy: float = Field(ge=0.0, le=1.0)
    runs: int = Field(default=0, ge=0)


class AccuracyProfile(BaseModel):
    """The serialised form of an :class:`AccuracyModel`."""

    model_config = ConfigDict(extra="forbid")
    sample_accuracy: float = Field(default=0.5, ge=0.0, le=1.0)
    greedy_accuracy: float | None = Field(default=None, ge=0.0, le=1.0)
    wrong_answers: int = Field(default=4, ge=1, le=MAX_WRONG_ANSWERS)
    verifier_quality: float = Field(default=0.5, ge=0.0, le=1.0)
    beam_quality: float = Field(default=0.3, ge=0.0, le=1.0)
    measured: list[MeasuredRow] = Field(default_factory=list)
    measured_max_tokens: int | None = Field(default=None, ge=1)
