"""Strategies: request options, decisions and early stopping per rule; TTSConfig rules."""

from __future__ import annotations

import pytest

from agentrt.core._errors import ConfigurationError
from agentrt.tts._answers import LastNumber
from agentrt.tts._branch import BranchView
from agentrt.tts._config import TTSConfig
from agentrt.tts._strategies import (
    Beam,
    BestOfN,
    Majority,
    Single,
    Weighted,
    strategy_for,
)

SPEC = LastNumber()
SAMPLED = TTSConfig("majority", 4, max_tokens=128, temperature=0.7, top_p=0.95)


def done(index: int, answer: str, score: float | None = None) -> BranchView:
    return BranchView(index, f"= {answer}", True, 2, score=score)


def test_single_is_greedy() -> None:
    options = Single(SPEC).request_options(TTSConfig("single", 1, max_tokens=64), seed=3)
    assert (options.n, options.temperature, options.top_p, options.max_tokens) == (1, 0.0, 1.0, 64)
    assert options.stream and options.seed == 3 and not options.extra


def test_sampled_strategies_ask_for_n_branches() -> None:
    for strategy, logprobs in ((Majority(SPEC, 4), False), (Weighted(SPEC, 4), True)):
        options = strategy.request_options(SAMPLED, seed=7)
        assert options.n == 4 and options.temperature == 0.7 and options.top_p == 0.95
        assert options.logprobs is logprobs and options.stream and options.seed == 7
    assert BestOfN(SPEC, 4).request_options(SAMPLED).logprobs


def test_beam_request_extras() -> None:
    options = Beam(SPEC, 4).request_options(TTSConfig("beam", 4, max_tokens=100))
    assert options.n == 4 and not options.stream and options.temperature == 0.0
    assert dict(options.extra) == {"use_beam_search": True, "length_penalty": 1.0}


def test_decisions_follow_each_rule() -> None:
    branches = [done(0, "5", 0.9), done(1, "7", 0.2), done(2, "7", 0.3)]
    assert Majority(SPEC, 3).decide(branches).answer == SPEC.extract("7")
    assert Weighted(SPEC, 3).decide(branches).answer == SPEC.extract("5")
    assert BestOfN(SPEC, 3).decide(branches).winner_index == 0
    assert Beam(SPEC, 3).decide(branches).winner_index == 0  # vLLM lists beams best first
    assert Single(SPEC).decide([done(0, "4")]).answer == SPEC.extract("4")


def test_early_stop_per_rule() -> None:
    decided = [done(0, "7"), done(1, "7"), done(2, "7")]
    assert Majority(SPEC, 4).can_stop_early(decided, still_running=1)
    assert Weighted(SPEC, 4).can_stop_early([done(0, "7", 0.9), done(1, "7", 0.9)], 1)
    for waits in (BestOfN(SPEC, 4), Beam(SPEC, 4), Single(SPEC)):
        assert not waits.can_stop_early(decided, still_running=1)
        assert waits.can_stop_early(decided, still_running=0)


def test_strategy_for_each_config() -> None:
    assert isinstance(strategy_for(TTSConfig("single", 1), SPEC), Single)
    cases = {"majority": Majority, "weighted": Weighted, "best_of_n": BestOfN, "beam": Beam}
    for name, cls in cases.items():
        config = TTSConfig(name, 8, temperature=0.7)  # type: ignore[arg-type]
        strategy = strategy_for(config, SPEC)
        assert isinstance(strategy, cls) and strategy.n == 8 and strategy.name == name
    assert strategy_for(TTSConfig("weighted", 2, temperature=0.5), SPEC).needs_scores


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"strategy": "single", "n": 2}, "single"),
        ({"strategy": "single", "n": 1, "temperature": 0.5}, "single"),
        ({"strategy": "majority", "n": 4, "temperature": 0.0}, "temperature > 0"),
        ({"strategy": "vote", "n": 1}, "strategy"),
        ({"strategy": "majority", "n": 0, "temperature": 0.7}, "n"),
        ({"strategy": "majority", "n": 2, "temperature": 0.7, "max_tokens": 0}, "max_tokens"),
        ({"strategy": "majority", "n": 2, "temperature": 3.0}, "temperature"),
        ({"strategy": "majority", "n": 2, "temperature": 0.7, "top_p": 0.0}, "top_p"),
        ({"strategy": "majority", "n": 2, "temperature": 0.7, "group": ""}, "group"),
    ],
)
def test_bad_configs_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        TTSConfig(**kwargs)  # type: ignore[arg-type]


def test_beam_may_be_greedy_with_width() -> None:
    assert TTSConfig("beam", 4).temperature == 0.0
    assert TTSConfig("majority", 1, temperature=0.7).label == (
        "majority n=1 on plain, max_tokens=256"
    )


def test_strategy_arguments_are_checked() -> None:
    with pytest.raises(ConfigurationError, match=r"Majority\.n"):
        Majority(SPEC, 0)
    with pytest.raises(ConfigurationError, match="max_branch_weight"):
        Weighted(SPEC, 2, max_branch_weight=0.0)
    with pytest.raises(ConfigurationError, match=r"Single\.n"):
        Single(SPEC, n=2)
