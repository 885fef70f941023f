"""Soft labels by bootstrap: how often would a config answer this query correctly?

From K sampled branches of one query (each with its extracted answer, its
correctness and its self-certainty score), the label of "strategy with N
branches" is the share of ``draws`` random subsets of N of the K samples on
which the strategy's decision is correct (paper 2: 30 draws of N from 32).
Subsets are drawn without replacement, so N <= K, and each draw's order is
random, which breaks ties at random. Every draw is seeded from
``(seed, query, max_tokens, strategy, N)``, so labels replay and do not
depend on the order they are computed in.

The decisions mirror :mod:`agentrt.tts._voting`:

* ``majority``: the most frequent answer; ties go to the higher summed
  score, then to the answer drawn first. Samples without an answer abstain.
* ``best_of_n``: the sample with an answer and the highest score (unscored
  ranks last); ties go to the one drawn first.

A draw in which no sample holds an answer counts as wrong.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from agentrt.core._errors import ConfigurationError
from agentrt.tts._config import StrategyName
from agentrt.tts.probe._features import PROBE_GROUPS, PROBE_STRATEGIES

__all__ = [
    "DEFAULT_DRAWS",
    "LabelledExample",
    "QuerySamples",
    "Sample",
    "bootstrap_examples",
    "decision_correct",
    "default_ns",
    "soft_label",
]

DEFAULT_DRAWS = 30


@dataclass(frozen=True)
class Sample:
    """One sampled branch: its answer key (``None``: no answer), whether that
    answer is right, its length in tokens and its score (higher is better)."""

    answer: str | None
    correct: bool
    tokens: int = 0
    score: float | None = None

    def __post_init__(self) -> None:
        if self.answer is None and self.correct:
            raise ConfigurationError("Sample.correct is True but Sample.answer is None")
        if self.tokens < 0:
            raise ConfigurationError(f"Sample.tokens must be >= 0, got {self.tokens}")
        if self.score is not None and not math.isfinite(self.score):
            raise ConfigurationError(f"Sample.score must be finite, got {self.score}")


@dataclass(frozen=True)
class QuerySamples:
    """K samples of one query at one token cap.

    ``query_id`` identifies the query across caps (train/test splits are by
    query); ``query`` is the text the probe embeds.
    """

    query_id: str
    query: str
    max_tokens: int
    samples: tuple[Sample, ...]

    def __post_init__(self) -> None:
        if not self.query_id:
            raise ConfigurationError("QuerySamples.query_id must be non-empty")
        if not self.query.strip():
            raise ConfigurationError(f"QuerySamples.query must be non-empty ({self.query_id!r})")
        if self.max_tokens < 1:
            raise ConfigurationError(
                f"QuerySamples.max_tokens must be >= 1, got {self.max_tokens} ({self.query_id!r})"
            )
        if not self.samples:
            raise ConfigurationError(f"QuerySamples.samples is empty ({self.query_id!r})")
        verdicts: dict[str, bool] = {}
        for sample in self.samples:
            if sample.answer is None:
                continue
            if verdicts.setdefault(sample.answer, sample.correct) != sample.correct:
                raise ConfigurationError(
                    f"QuerySamples.samples: answer {sample.answer!r} is marked both correct "
                    f"and wrong ({self.query_id!r})"
                )


@dataclass(frozen=True)
class LabelledExample:
    """One training row: a query, a config, and its soft label in [0, 1]."""

    query_id: str
    query: str
    strategy: StrategyName
    n: int
    group: str
    max_tokens: int
    label: float


def _check_strategy(strategy: str) -> None:
    if strategy not in PROBE_STRATEGIES:
        raise ConfigurationError(
            f"probe label strategy must be one of {list(PROBE_STRATEGIES)}, got {strategy!r}"
        )


def decision_correct(strategy: str, drawn: Sequence[Sample]) -> bool:
    """Whether ``strategy`` decides correctly from ``drawn`` (in draw order)."""
    _check_strategy(strategy)
    voting = [(position, s) for position, s in enumerate(drawn) if s.answer is not None]
    if not voting:
        return False
    if strategy == "best_of_n":
        _, best = min(
            voting,
            key=lambda ps: (-(ps[1].score if ps[1].score is not None else -math.inf), ps[0]),
        )
        return best.correct
    counts: dict[str, int] = {}
    score_sums: dict[str, float] = {}
    first: dict[str, int] = {}
    correct: dict[str, bool] = {}
    for position, sample in voting:
        key = sample.answer
        assert key is not None
        counts[key] = counts.get(key, 0) + 1
        score_sums[key] = score_sums.get(key, 0.0) + (sample.score or 0.0)
        first.setdefault(key, position)
        correct[key] = sample.correct
    winner = min(counts, key=lambda k: (-counts[k], -score_sums[k], first[k]))
    return correct[winner]


def _draw_rng(seed: int, samples: QuerySamples, strategy: str, n: int) -> random.Random:
    return random.Random(f"{seed}|{samples.query_id}|{samples.max_tokens}|{strategy}|{n}")


def soft_label(
    samples: QuerySamples,
    strategy: str,
    n: int,
    *,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> float:
    """The share of ``draws`` subsets of ``n`` samples on which ``strategy`` is right."""
    _check_strategy(strategy)
    k = len(samples.samples)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= k:
        raise ConfigurationError(
            f"soft_label n must be in [1, {k}] (the samples of {samples.query_id!r}), got {n!r}"
        )
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ConfigurationError(f"soft_label draws must be an integer >= 1, got {draws!r}")
    rng = _draw_rng(seed, samples, strategy, n)
    pool = samples.samples
    wins = 0
    for _ in range(draws):
        drawn = [pool[i] for i in rng.sample(range(k), n)]
        wins += decision_correct(strategy, drawn)
    return wins / draws


def default_ns(samples_per_query: int) -> tuple[int, ...]:
    """Powers of two up to the number of samples per query: 1, 2, 4, ..."""
    if samples_per_query < 1:
        raise ConfigurationError(f"samples_per_query must be >= 1, got {samples_per_query}")
    return tuple(2**i for i in range(samples_per_query.bit_length()) if 2**i <= samples_per_query)


def bootstrap_examples(
    queries: Sequence[QuerySamples],
    *,
    strategies: Sequence[StrategyName] = PROBE_STRATEGIES,
    ns: Sequence[int] | None = None,
    groups: Sequence[str] = PROBE_GROUPS,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> list[LabelledExample]:
    """Every (query, cap) x strategy x N x group as a labelled row.

    ``ns`` defaults to the powers of two up to the smallest K. The same label
    is given to every group: speculative decoding verifies drafts against the
    target model, so it changes speed, not the distribution of answers.
    """
    if not queries:
        raise ConfigurationError("bootstrap_examples needs at least one QuerySamples, got none")
    for strategy in strategies:
        _check_strategy(strategy)
    for group in groups:
        if group not in PROBE_GROUPS:
            raise ConfigurationError(
                f"bootstrap_examples groups must be in {list(PROBE_GROUPS)}, got {group!r}"
            )
    if not strategies or not groups:
        raise ConfigurationError("bootstrap_examples needs at least one strategy and one group")
    smallest = min(len(q.samples) for q in queries)
    chosen = tuple(ns) if ns is not None else default_ns(smallest)
    if not chosen:
        raise ConfigurationError("bootstrap_examples ns must not be empty")
    rows: list[LabelledExample] = []
    for query in queries:
        for strategy in strategies:
            for n in chosen:
                label = soft_label(query, strategy, n, draws=draws, seed=seed)
                rows.extend(
                    LabelledExample(
                        query.query_id, query.query, strategy, n, group, query.max_tokens, label
                    )
                    for group in groups
                )
    return rows
