"""Voting on hostile output: many branches with huge, pathological texts are decided
in one pass (bounded by the extractor's tail window), not in time quadratic in
branches or text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrt.tts._answers import BoxedAnswer, LastNumber
from agentrt.tts._branch import BranchView
from agentrt.tts._voting import majority_can_stop, majority_vote, weighted_vote

HOSTILE = ["\\boxed{", "1,", "{", "9" * 50, "-", " ", "1."]


@pytest.mark.timeout(60)
def test_many_huge_branches_vote_in_bounded_time() -> None:
    # 200 branches of ~0.5 MB each (100 MB of text): the vote reads each tail once.
    body = "".join(HOSTILE) * 8_000
    branches = [
        BranchView(index=i, text=f"{body} so it is {i % 3}", finished=True, tokens=9, score=-1.0)
        for i in range(200)
    ]
    decision = majority_vote(branches, LastNumber())
    assert decision.answer is not None and decision.answer.key == "0"
    assert decision.voters == 200
    assert weighted_vote(branches, LastNumber()).voters == 200
    assert not majority_can_stop(branches[:10], LastNumber(), still_running=190)


@settings(max_examples=30, deadline=None)
@given(
    fragments=st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=3),
    repeat=st.integers(min_value=100, max_value=5_000),
    branches=st.integers(min_value=1, max_value=30),
)
@pytest.mark.timeout(120)
def test_hostile_branches_give_a_decision_or_none(
    fragments: list[str], repeat: int, branches: int
) -> None:
    text = "".join(fragments) * repeat
    views = [BranchView(index=i, text=text, finished=i % 2 == 0, tokens=1) for i in range(branches)]
    for spec in (LastNumber(), BoxedAnswer()):
        decision = majority_vote(views, spec, include_partial=True)
        assert decision.voters <= branches
        assert decision.answer is None or len(decision.answer.key) <= 1_100
