"""Voting: decisions, deterministic ties, and exact early-stop boundaries."""

from __future__ import annotations

from collections.abc import Sequence
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentrt.core._errors import ConfigurationError
from agentrt.tts._answers import LastNumber
from agentrt.tts._branch import BranchView
from agentrt.tts._voting import (
    best_of_n_vote,
    majority_can_stop,
    majority_vote,
    weighted_can_stop,
    weighted_vote,
)

SPEC = LastNumber()


def done(index: int, answer: str, score: float | None = None) -> BranchView:
    return BranchView(index=index, text=f"it is {answer}", finished=True, tokens=3, score=score)


def running(index: int, text: str = "thinking 4") -> BranchView:
    return BranchView(index=index, text=text, finished=False, tokens=2)


def test_majority_counts_finished_branches_only() -> None:
    branches = [done(0, "7"), done(1, "7"), done(2, "5"), running(3, "so 5")]
    decision = majority_vote(branches, SPEC)
    assert decision.answer is not None and decision.answer.key == "7"
    assert decision.votes == {"7": 2.0, "5": 1.0}
    assert decision.winner_index == 0
    assert decision.voters == 3
    assert decision.confidence == pytest.approx(2 / 3)


def test_partial_answers_count_only_when_the_spec_allows() -> None:
    branches = [done(0, "5"), running(1, "so 7"), running(2, "so 7")]
    assert majority_vote(branches, SPEC, include_partial=True).votes == {"5": 1.0}
    partial = LastNumber(from_partial=True)
    decision = majority_vote(branches, partial, include_partial=True)
    assert decision.answer is not None and decision.answer.key == "7"
    assert majority_vote(branches, partial).votes == {"5": 1.0}


def test_branches_without_an_answer_do_not_vote() -> None:
    branches = [BranchView(0, "no idea", True), done(1, "3")]
    decision = majority_vote(branches, SPEC)
    assert decision.voters == 1 and decision.winner_index == 1


def test_empty_vote() -> None:
    decision = majority_vote([running(0)], SPEC)
    assert decision.answer is None and decision.winner_index is None
    assert decision.confidence == 0.0 and decision.tallies == ()


def test_ties_break_by_score_then_lowest_index() -> None:
    tie = [done(0, "5"), done(1, "7")]
    assert majority_vote(tie, SPEC).answer == SPEC.extract("5")
    assert majority_vote(list(reversed(tie)), SPEC).answer == SPEC.extract("5")
    scored = [done(0, "5", score=0.1), done(1, "7", score=0.9)]
    assert majority_vote(scored, SPEC).answer == SPEC.extract("7")


def test_majority_winner_is_best_scored_supporter() -> None:
    branches = [done(0, "7", 0.2), done(1, "7", 0.8), done(2, "5", 0.99)]
    assert majority_vote(branches, SPEC).winner_index == 1


def test_weighted_vote_uses_scores_clamped_at_zero() -> None:
    branches = [done(0, "5", 0.9), done(1, "7", 0.4), done(2, "7", 0.4), done(3, "3", -5.0)]
    decision = weighted_vote(branches, SPEC)
    assert decision.answer is not None and decision.answer.key == "5"
    assert decision.votes == pytest.approx({"5": 0.9, "7": 0.8, "3": 0.0})
    unscored = weighted_vote([done(0, "5"), done(1, "7", 0.1)], SPEC)
    assert unscored.answer is not None and unscored.answer.key == "7"


def test_best_of_n_picks_highest_score_with_an_answer() -> None:
    branches = [
        done(0, "5", 0.3),
        BranchView(1, "no answer", True, score=0.99),
        done(2, "7", 0.8),
        done(3, "9"),
    ]
    decision = best_of_n_vote(branches, SPEC)
    assert decision.answer is not None and decision.answer.key == "7"
    assert decision.winner_index == 2
    assert decision.rule == "best_of_n"


def test_best_of_n_without_answers_still_names_the_best_text() -> None:
    branches = [BranchView(0, "meh", True, score=0.1), BranchView(1, "better", True, score=0.5)]
    decision = best_of_n_vote(branches, SPEC)
    assert decision.answer is None and decision.winner_index == 1


def test_majority_stop_boundary_is_exact() -> None:
    # 3 vs 1 with 1 running: 3 > 1 + 1, decided.
    snapshot = [done(0, "7"), done(1, "7"), done(2, "7"), done(3, "5"), running(4)]
    assert majority_can_stop(snapshot, SPEC, still_running=1)
    # 3 vs 1 with 2 running: the runner-up could tie at 3: not decided.
    assert not majority_can_stop(snapshot, SPEC, still_running=2)
    # nothing left to wait for
    assert majority_can_stop([done(0, "1"), done(1, "2")], SPEC, still_running=0)
    # no votes yet
    assert not majority_can_stop([running(0)], SPEC, still_running=1)


def test_a_new_answer_is_covered_by_the_runner_up_bound() -> None:
    # leader 2, no runner-up: 2 running could bring a new answer to 2 (a tie).
    assert not majority_can_stop([done(0, "7"), done(1, "7")], SPEC, still_running=2)
    assert majority_can_stop([done(0, "7"), done(1, "7")], SPEC, still_running=1)


def test_weighted_stop_uses_the_weight_bound() -> None:
    snapshot = [done(0, "7", 0.9), done(1, "7", 0.9), done(2, "5", 0.5)]
    assert weighted_can_stop(snapshot, SPEC, 1, max_branch_weight=1.0)  # 1.8 > 0.5 + 1.0
    assert not weighted_can_stop(snapshot, SPEC, 2, max_branch_weight=1.0)
    # a score above the stated bound raises the bound
    big = [done(0, "7", 3.0), done(1, "5", 0.0)]
    assert not weighted_can_stop(big, SPEC, 1, max_branch_weight=1.0)
    with pytest.raises(ConfigurationError, match="max_branch_weight"):
        weighted_can_stop(snapshot, SPEC, 1, max_branch_weight=0.0)


def test_negative_still_running_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="still_running"):
        majority_can_stop([], SPEC, -1)


# -- properties -------------------------------------------------------------------


answers = st.sampled_from(["1", "2", "3"])


def views(votes: Sequence[str], start: int = 0) -> list[BranchView]:
    return [done(start + i, a) for i, a in enumerate(votes)]


@given(finished=st.lists(answers, max_size=8), future=st.lists(answers, max_size=8))
def test_early_stop_never_changes_the_outcome(finished: list[str], future: list[str]) -> None:
    """If the vote is declared decided, no way the running branches can vote changes it."""
    now = views(finished)
    if majority_can_stop(now, SPEC, still_running=len(future)):
        final = now + views(future, start=len(finished))
        assert majority_vote(final, SPEC).answer == majority_vote(now, SPEC).answer


@given(
    finished=st.lists(st.tuples(answers, st.floats(0.0, 1.0)), max_size=8),
    future=st.lists(st.tuples(answers, st.floats(0.0, 1.0)), max_size=6),
)
def test_weighted_early_stop_never_changes_the_outcome(
    finished: list[tuple[str, float]], future: list[tuple[str, float]]
) -> None:
    now = [done(i, a, s) for i, (a, s) in enumerate(finished)]
    if weighted_can_stop(now, SPEC, len(future), max_branch_weight=1.0):
        later = [done(len(now) + i, a, s) for i, (a, s) in enumerate(future)]
        assert weighted_vote(now + later, SPEC).answer == weighted_vote(now, SPEC).answer


@given(votes=st.lists(answers, min_size=1, max_size=12), rng=st.randoms(use_true_random=False))
def test_decision_does_not_depend_on_branch_order(votes: list[str], rng: Random) -> None:
    branches = views(votes)
    shuffled = list(branches)
    rng.shuffle(shuffled)
    assert majority_vote(shuffled, SPEC) == majority_vote(branches, SPEC)
