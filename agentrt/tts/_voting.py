"""Pure decision functions over a snapshot of branches.

Every function here takes branch snapshots and an answer spec and returns a
:class:`Decision`, or says whether the vote is already decided. Nothing reads
time or does I/O, so the executor can call them on every streamed chunk and
tests can state exact boundaries.

Which branches vote: finished ones, plus unfinished ones when the caller asks
for ``include_partial`` *and* the spec allows answers from partial text. A
branch whose text holds no answer does not vote.

Ties are broken the same way every time: more vote weight, then higher summed
score, then the answer whose first supporter has the lowest branch index.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agentrt.core._errors import ConfigurationError
from agentrt.tts._answers import Answer, AnswerSpec
from agentrt.tts._branch import BranchView

__all__ = [
    "AnswerTally",
    "Decision",
    "best_of_n_vote",
    "collect_answers",
    "majority_can_stop",
    "majority_vote",
    "ranked_pick",
    "weighted_can_stop",
    "weighted_vote",
]


@dataclass(frozen=True)
class AnswerTally:
    """The votes one answer received: its key, a representative text, the summed
    weight and the indices of the branches that voted for it."""

    key: str
    text: str
    weight: float
    branches: tuple[int, ...]


@dataclass(frozen=True)
class Decision:
    """The outcome of a vote.

    ``tallies`` are ranked best first. ``confidence`` is the winning answer's
    share of the counted vote weight (0 when nothing was counted). ``winner_index``
    is the branch whose text is returned; it can be set while ``answer`` is
    ``None`` (best-of-N over texts with no extractable answer).
    """

    rule: str
    answer: Answer | None
    winner_index: int | None
    tallies: tuple[AnswerTally, ...]
    confidence: float
    voters: int

    @property
    def votes(self) -> dict[str, float]:
        """Vote weight per answer key, best first."""
        return {tally.key: tally.weight for tally in self.tallies}


def collect_answers(
    branches: Sequence[BranchView], spec: AnswerSpec, *, include_partial: bool = False
) -> list[tuple[BranchView, Answer]]:
    """The branches that vote, each with its extracted answer, in index order."""
    partial_ok = include_partial and spec.from_partial
    found: list[tuple[BranchView, Answer]] = []
    for branch in sorted(branches, key=lambda b: b.index):
        if not (branch.finished or partial_ok):
            continue
        answer = spec.extract(branch.text)
        if answer is not None:
            found.append((branch, answer))
    return found


def _score_or(branch: BranchView, missing: float) -> float:
    return missing if branch.score is None else branch.score


def _weight(branch: BranchView) -> float:
    """A branch's weight in weighted voting: its score, clamped below at 0
    (an unscored branch weighs 0)."""
    return max(0.0, _score_or(branch, 0.0))


def _tally(
    voting: list[tuple[BranchView, Answer]], weight_of: Callable[[BranchView], float]
) -> tuple[AnswerTally, ...]:
    weights: dict[str, float] = {}
    score_sums: dict[str, float] = {}
    members: dict[str, list[int]] = {}
    texts: dict[str, str] = {}
    for branch, answer in voting:
        weights[answer.key] = weights.get(answer.key, 0.0) + weight_of(branch)
        score_sums[answer.key] = score_sums.get(answer.key, 0.0) + _score_or(branch, 0.0)
        members.setdefault(answer.key, []).append(branch.index)
        texts.setdefault(answer.key, answer.text)
    ranked = sorted(weights, key=lambda k: (-weights[k], -score_sums[k], min(members[k])))
    return tuple(
        AnswerTally(key=k, text=texts[k], weight=weights[k], branches=tuple(members[k]))
        for k in ranked
    )


def _decide(
    rule: str,
    voting: list[tuple[BranchView, Answer]],
    weight_of: Callable[[BranchView], float],
) -> Decision:
    tallies = _tally(voting, weight_of)
    if not tallies:
        return Decision(rule, None, None, (), 0.0, 0)
    leader = tallies[0]
    supporters = [(b, a) for b, a in voting if a.key == leader.key]
    branch, answer = min(supporters, key=lambda ba: (-_score_or(ba[0], -math.inf), ba[0].index))
    total = sum(t.weight for t in tallies)
    confidence = leader.weight / total if total > 0 else 0.0
    return Decision(rule, answer, branch.index, tallies, confidence, len(voting))


def majority_vote(
    branches: Sequence[BranchView], spec: AnswerSpec, *, include_partial: bool = False
) -> Decision:
    """Self-consistency: each voting branch counts 1; the most frequent answer wins.

    The returned branch is the winning answer's supporter with the highest
    score (lowest index when unscored).
    """
    voting = collect_answers(branches, spec, include_partial=include_partial)
    return _decide("majority", voting, lambda _b: 1.0)


def weighted_vote(
    branches: Sequence[BranchView], spec: AnswerSpec, *, include_partial: bool = False
) -> Decision:
    """Votes weighted by each branch's score (clamped at 0; unscored weighs 0)."""
    voting = collect_answers(branches, spec, include_partial=include_partial)
    return _decide("weighted", voting, _weight)


def ranked_pick(
    rule: str,
    branches: Sequence[BranchView],
    spec: AnswerSpec,
    rank_key: Callable[[BranchView], tuple[float, ...]],
    *,
    include_partial: bool = False,
) -> Decision:
    """Pick the best-ranked (lowest ``rank_key``) branch that holds an answer.

    When no eligible branch holds an answer, the best-ranked one is still named
    as ``winner_index`` (its text may be all the caller needs) with no answer.
    Tallies are plain counts, for the record; confidence is the pick's share.
    """
    partial_ok = include_partial and spec.from_partial
    eligible = sorted(
        (b for b in branches if b.finished or partial_ok), key=lambda b: (rank_key(b), b.index)
    )
    voting = collect_answers(eligible, spec, include_partial=include_partial)
    tallies = _tally(voting, lambda _b: 1.0)
    by_index = {b.index: a for b, a in voting}
    for branch in eligible:
        answer = by_index.get(branch.index)
        if answer is not None:
            share = next(t.weight for t in tallies if t.key == answer.key) / len(voting)
            return Decision(rule, answer, branch.index, tallies, share, len(voting))
    winner = eligible[0].index if eligible else None
    return Decision(rule, None, winner, tallies, 0.0, 0)


def best_of_n_vote(
    branches: Sequence[BranchView], spec: AnswerSpec, *, include_partial: bool = False
) -> Decision:
    """The highest-scored branch with an answer wins (unscored ranks last;
    equal scores go to the lower index)."""
    return ranked_pick(
        "best_of_n",
        branches,
        spec,
        lambda b: (-_score_or(b, -math.inf),),
        include_partial=include_partial,
    )


def _check_running(still_running: int) -> None:
    if still_running < 0:
        raise ConfigurationError(f"still_running must be >= 0, got {still_running}")


def _leader_margin(tallies: tuple[AnswerTally, ...]) -> tuple[float, float]:
    leader = tallies[0].weight if tallies else 0.0
    runner_up = tallies[1].weight if len(tallies) > 1 else 0.0
    return leader, runner_up


def majority_can_stop(branches: Sequence[BranchView], spec: AnswerSpec, still_running: int) -> bool:
    """True once the leading answer cannot be overtaken, or tied, even if every
    one of the ``still_running`` branches voted for the runner-up.

    Only finished branches count here: a partial answer may still change.
    """
    _check_running(still_running)
    if still_running == 0:
        return True
    tallies = _tally(collect_answers(branches, spec), lambda _b: 1.0)
    leader, runner_up = _leader_margin(tallies)
    return leader > runner_up + still_running


def weighted_can_stop(
    branches: Sequence[BranchView],
    spec: AnswerSpec,
    still_running: int,
    max_branch_weight: float,
) -> bool:
    """Like :func:`majority_can_stop` with weights: each running branch may add at
    most ``max_branch_weight`` (or the largest weight seen so far, if larger)."""
    _check_running(still_running)
    if not max_branch_weight > 0 or math.isinf(max_branch_weight):
        raise ConfigurationError(
            f"max_branch_weight must be a positive finite number, got {max_branch_weight}"
        )
    if still_running == 0:
        return True
    voting = collect_answers(branches, spec)
    tallies = _tally(voting, _weight)
    bound = max([max_branch_weight, *(_weight(b) for b, _ in voting)])
    leader, runner_up = _leader_margin(tallies)
    return leader > runner_up + still_running * bound
