"""Selection strategies: how many branches to ask for, how to pick the answer.

Each strategy is a small frozen object (in the tenacity manner) that says
what to request (:class:`RequestOptions`), how to decide from a snapshot of
branches (``decide``) and when the decision can no longer change
(``can_stop_early``). All three are pure; the executor does the I/O.

``beam`` uses vLLM's server-side beam search: the request carries
``use_beam_search: true`` with the width as ``n``; vLLM runs it in the API
server, does not stream it and ignores ``stop``, so it is slow and cannot
stop early. vLLM returns beams best first, so the lowest index with an
answer wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from agentrt.core._errors import ConfigurationError
from agentrt.tts._answers import AnswerSpec
from agentrt.tts._branch import BranchView
from agentrt.tts._config import StrategyName, TTSConfig
from agentrt.tts._voting import (
    Decision,
    best_of_n_vote,
    majority_can_stop,
    majority_vote,
    ranked_pick,
    weighted_can_stop,
    weighted_vote,
)

__all__ = [
    "Beam",
    "BestOfN",
    "Majority",
    "RequestOptions",
    "Single",
    "Strategy",
    "Weighted",
    "strategy_for",
]


@dataclass(frozen=True)
class RequestOptions:
    """What one strategy asks of the server; the executor maps it onto a chat request.

    ``extra`` holds vLLM-specific payload fields merged in last
    (``{"use_beam_search": True}`` for beam). ``stream`` is False only for beam.
    """

    n: int
    temperature: float
    top_p: float
    max_tokens: int
    logprobs: bool
    stream: bool
    seed: int | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


class Strategy(Protocol):
    """A selection rule over ``n`` branches."""

    @property
    def name(self) -> StrategyName: ...

    @property
    def n(self) -> int: ...

    @property
    def needs_scores(self) -> bool:
        """Whether ``decide`` uses branch scores (a scorer must run first)."""
        ...

    def request_options(self, config: TTSConfig, seed: int | None = None) -> RequestOptions: ...

    def decide(
        self, branches: Sequence[BranchView], *, include_partial: bool = False
    ) -> Decision: ...

    def can_stop_early(self, snapshot: Sequence[BranchView], still_running: int) -> bool: ...


def _check_n(owner: str, n: int, minimum: int = 1) -> None:
    if n < minimum:
        raise ConfigurationError(f"{owner}.n must be >= {minimum}, got {n}")


def _sampled(config: TTSConfig, n: int, seed: int | None, logprobs: bool) -> RequestOptions:
    return RequestOptions(
        n=n,
        temperature=config.temperature,
        top_p=config.top_p,
        max_tokens=config.max_tokens,
        logprobs=logprobs,
        stream=True,
        seed=seed,
    )


def _all_done(still_running: int) -> bool:
    if still_running < 0:
        raise ConfigurationError(f"still_running must be >= 0, got {still_running}")
    return still_running == 0


@dataclass(frozen=True)
class Single:
    """One greedy branch (temperature 0). Done when it finishes."""

    answer_spec: AnswerSpec
    n: int = 1
    name: StrategyName = "single"
    needs_scores: bool = False

    def __post_init__(self) -> None:
        if self.n != 1:
            raise ConfigurationError(f"Single.n must be 1, got {self.n}")

    def request_options(self, config: TTSConfig, seed: int | None = None) -> RequestOptions:
        return RequestOptions(
            n=1,
            temperature=0.0,
            top_p=1.0,
            max_tokens=config.max_tokens,
            logprobs=False,
            stream=True,
            seed=seed,
        )

    def decide(self, branches: Sequence[BranchView], *, include_partial: bool = False) -> Decision:
        return ranked_pick(
            "single", branches, self.answer_spec, lambda b: (0.0,), include_partial=include_partial
        )

    def can_stop_early(self, snapshot: Sequence[BranchView], still_running: int) -> bool:
        return _all_done(still_running)


@dataclass(frozen=True)
class Majority:
    """Self-consistency over ``n`` sampled branches; stops once the vote is decided."""

    answer_spec: AnswerSpec
    n: int
    name: StrategyName = "majority"
    needs_scores: bool = False

    def __post_init__(self) -> None:
        _check_n("Majority", self.n)

    def request_options(self, config: TTSConfig, seed: int | None = None) -> RequestOptions:
        return _sampled(config, self.n, seed, logprobs=False)

    def decide(self, branches: Sequence[BranchView], *, include_partial: bool = False) -> Decision:
        return majority_vote(branches, self.answer_spec, include_partial=include_partial)

    def can_stop_early(self, snapshot: Sequence[BranchView], still_running: int) -> bool:
        return majority_can_stop(snapshot, self.answer_spec, still_running)


@dataclass(frozen=True)
class Weighted:
    """Votes weighted by branch score (e.g. self-certainty or a reward model).

    ``max_branch_weight`` bounds what one still-running branch could add, for
    early stopping; the default 1.0 fits scores in [0, 1] (probabilities,
    ``exp(mean logprob)``). Logprobs are requested for the default scorer.
    """

    answer_spec: AnswerSpec
    n: int
    max_branch_weight: float = 1.0
    name: StrategyName = "weighted"
    needs_scores: bool = True

    def __post_init__(self) -> None:
        _check_n("Weighted", self.n)
        if not 0.0 < self.max_branch_weight < float("inf"):
            raise ConfigurationError(
                f"Weighted.max_branch_weight must be positive and finite, "
                f"got {self.max_branch_weight}"
            )

    def request_options(self, config: TTSConfig, seed: int | None = None) -> RequestOptions:
        return _sampled(config, self.n, seed, logprobs=True)

    def decide(self, branches: Sequence[BranchView], *, include_partial: bool = False) -> Decision:
        return weighted_vote(branches, self.answer_spec, include_partial=include_partial)

    def can_stop_early(self, snapshot: Sequence[BranchView], still_running: int) -> bool:
        return weighted_can_stop(snapshot, self.answer_spec, still_running, self.max_branch_weight)


@dataclass(frozen=True)
class BestOfN:
    """The highest-scored of ``n`` sampled branches. Scores are only final when a
    branch finishes, so it waits for all of them (or the end of the slice)."""

    answer_spec: AnswerSpec
    n: int
    name: StrategyName = "best_of_n"
    needs_scores: bool = True

    def __post_init__(self) -> None:
        _check_n("BestOfN", self.n)

    def request_options(self, config: TTSConfig, seed: int | None = None) -> RequestOptions:
        return _sampled(config, self.n, seed, logprobs=True)

    def decide(self, branches: Sequence[BranchView], *, include_partial: bool = False) -> Decision:
        return best_of_n_vote(branches, self.answer_spec, include_partial=include_partial)

    def can_stop_early(self, snapshot: Sequence[BranchView], still_running: int) -> bool:
        return _all_done(still_running)


@dataclass(frozen=True)
class Beam:
    """vLLM server-side beam search of width ``n`` (no streaming, no early stop)."""

    answer_spec: AnswerSpec
    n: int
    length_penalty: float = 1.0
    name: StrategyName = "beam"
    needs_scores: bool = False

    def __post_init__(self) -> None:
        _check_n("Beam", self.n)

    def request_options(self, config: TTSConfig, seed: int | None = None) -> RequestOptions:
        return RequestOptions(
            n=self.n,
            temperature=config.temperature,
            top_p=config.top_p,
            max_tokens=config.max_tokens,
            logprobs=False,
            stream=False,
            seed=seed,
            extra=MappingProxyType(
                {"use_beam_search": True, "length_penalty": self.length_penalty}
            ),
        )

    def decide(self, branches: Sequence[BranchView], *, include_partial: bool = False) -> Decision:
        return ranked_pick(
            "beam", branches, self.answer_spec, lambda b: (0.0,), include_partial=include_partial
        )

    def can_stop_early(self, snapshot: Sequence[BranchView], still_running: int) -> bool:
        return _all_done(still_running)


def strategy_for(
    config: TTSConfig, answer_spec: AnswerSpec, *, max_branch_weight: float = 1.0
) -> Strategy:
    """The strategy object a planned config runs with."""
    match config.strategy:
        case "single":
            return Single(answer_spec)
        case "majority":
            return Majority(answer_spec, config.n)
        case "weighted":
            return Weighted(answer_spec, config.n, max_branch_weight=max_branch_weight)
        case "best_of_n":
            return BestOfN(answer_spec, config.n)
        case "beam":
            return Beam(answer_spec, config.n)
