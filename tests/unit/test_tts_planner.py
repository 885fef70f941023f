"""The planner: deadline form, penalty form, greedy (B, gamma) search; pure and deterministic."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrt.core._errors import ConfigurationError
from agentrt.tts._accuracy import AccuracyModel, AccuracyPrior
from agentrt.tts._config import TTSConfig
from agentrt.tts._curve import Curve
from agentrt.tts._greedy_search import plan_greedy_parallelism
from agentrt.tts._latency import LatencyModel, TTFTModel
from agentrt.tts._length import LengthModel
from agentrt.tts._planner import (
    PlanInputs,
    SearchSpace,
    plan_fallback,
    plan_for_deadline,
    plan_with_penalty,
    predict,
)

PLAIN = LatencyModel(
    group="plain",
    ttft=TTFTModel(base_s=0.2, per_prompt_token_s=0.001),
    decode_s_per_token=Curve.of([(1, 0.02), (2, 0.021), (4, 0.022), (8, 0.026), (16, 0.036)]),
)
SPEC = LatencyModel.derive_speculative(
    PLAIN, 3, Curve.of([(1, 0.75), (16, 0.6)], monotone=False), draft_overhead=0.15
)
LENGTHS = LengthModel.from_samples([40, 60, 80, 100, 120, 150, 200, 260])
ACCURACY = AccuracyModel(AccuracyPrior(sample_accuracy=0.4, wrong_answers=3))
SPACE = SearchSpace(max_tokens_choices=(128, 256))


def inputs(slice_s: float = 1.0, **overrides: object) -> PlanInputs:
    base: dict[str, object] = {
        "slice_s": slice_s,
        "prompt_tokens": 100,
        "latency_models": {"plain": PLAIN, "spec": SPEC},
        "length_model": LENGTHS,
        "accuracy_model": ACCURACY,
        "space": SPACE,
    }
    base.update(overrides)
    return PlanInputs(**base)  # type: ignore[arg-type]


def test_space_enumerates_single_once_and_sampled_n_from_two() -> None:
    configs = SearchSpace(groups=("plain",), max_tokens_choices=(256,)).configs()
    singles = [c for c in configs if c.strategy == "single"]
    assert singles == [TTSConfig("single", 1)]
    assert {c.n for c in configs if c.strategy == "majority"} == {2, 4, 8, 16}
    assert len(configs) == 1 + 3 * 4
    assert list(configs) == sorted(configs)


def test_generous_slice_picks_the_most_accurate() -> None:
    plan = plan_for_deadline(inputs(1000.0))
    assert plan.config is not None and plan.prediction is not None
    accuracies = [predict(c, inputs(1000.0)).accuracy for c in inputs(1000.0).candidates()]
    assert plan.prediction.accuracy == max(accuracies)
    assert plan.fitting == plan.considered
    assert plan.reason.startswith("deadline: ")


def test_tiny_slice_refuses_with_the_cheapest_cost() -> None:
    plan = plan_for_deadline(inputs(0.05))
    assert plan.refused and plan.config is None and plan.prediction is None
    assert "refused" in plan.reason and "single n=1" in plan.reason


def test_slice_just_above_the_cheapest_picks_single() -> None:
    cheapest = min(predict(c, inputs(1.0)).latency_quantile_s for c in inputs(1.0).candidates())
    plan = plan_for_deadline(inputs(cheapest + 1e-9))
    assert plan.config is not None and plan.config.strategy == "single"


@settings(max_examples=60, deadline=None)
@given(
    short=st.floats(0.0, 20.0),
    extra=st.floats(0.0, 20.0),
    load=st.integers(0, 16),
)
def test_a_longer_slice_never_lowers_predicted_accuracy(
    short: float, extra: float, load: int
) -> None:
    loads = {"plain": load, "spec": load}
    tight = plan_for_deadline(inputs(short, load=loads))
    loose = plan_for_deadline(inputs(short + extra, load=loads))
    if tight.prediction is not None:
        assert loose.prediction is not None
        assert loose.prediction.accuracy >= tight.prediction.accuracy
        assert tight.prediction.latency_quantile_s <= short


@settings(max_examples=60, deadline=None)
@given(low=st.floats(0.0, 1e-3), raise_by=st.floats(0.0, 1e-3))
def test_token_penalty_moves_down_the_frontier(low: float, raise_by: float) -> None:
    cheap = plan_with_penalty(inputs(math.inf), lambda_tokens=low + raise_by, lambda_latency_s=0)
    rich = plan_with_penalty(inputs(math.inf), lambda_tokens=low, lambda_latency_s=0)
    assert cheap.prediction is not None and rich.prediction is not None
    assert cheap.prediction.expected_tokens <= rich.prediction.expected_tokens + 1e-9
    assert cheap.prediction.accuracy <= rich.prediction.accuracy + 1e-12


@settings(max_examples=60, deadline=None)
@given(low=st.floats(0.0, 0.5), raise_by=st.floats(0.0, 0.5))
def test_latency_penalty_moves_down_the_frontier(low: float, raise_by: float) -> None:
    fast = plan_with_penalty(inputs(math.inf), lambda_tokens=0, lambda_latency_s=low + raise_by)
    slow = plan_with_penalty(inputs(math.inf), lambda_tokens=0, lambda_latency_s=low)
    assert fast.prediction is not None and slow.prediction is not None
    assert fast.prediction.latency_mean_s <= slow.prediction.latency_mean_s + 1e-9


def test_penalty_extremes() -> None:
    free = plan_with_penalty(inputs(math.inf), lambda_tokens=0, lambda_latency_s=0)
    best = plan_for_deadline(inputs(math.inf))
    assert free.prediction is not None and best.prediction is not None
    assert free.prediction.accuracy == best.prediction.accuracy
    costly = plan_with_penalty(inputs(math.inf), lambda_tokens=1.0, lambda_latency_s=0)
    assert costly.config is not None and costly.config.n == 1
    assert "utility" in costly.reason


def test_penalty_form_respects_the_slice_and_checks_lambdas() -> None:
    assert plan_with_penalty(inputs(0.01), lambda_tokens=0, lambda_latency_s=0).refused
    with pytest.raises(ConfigurationError, match="lambda_tokens"):
        plan_with_penalty(inputs(1.0), lambda_tokens=-1, lambda_latency_s=0)


def test_planning_is_deterministic() -> None:
    for slice_s in (0.5, 2.0, 5.0, 30.0):
        assert plan_for_deadline(inputs(slice_s)) == plan_for_deadline(inputs(slice_s))
        assert plan_greedy_parallelism(inputs(slice_s)) == plan_greedy_parallelism(inputs(slice_s))


def test_load_and_scorer_latency_count() -> None:
    config = TTSConfig("best_of_n", 4, temperature=0.7)
    base = predict(config, inputs(1.0))
    loaded = predict(config, inputs(1.0, load={"plain": 8}))
    scored = predict(config, inputs(1.0, scorer_latency_s=0.5))
    assert loaded.latency_quantile_s > base.latency_quantile_s
    assert scored.latency_quantile_s == pytest.approx(base.latency_quantile_s + 0.5)
    majority = TTSConfig("majority", 4, temperature=0.7)
    assert predict(majority, inputs(1.0, scorer_latency_s=0.5)) == predict(majority, inputs(1.0))


def test_groups_without_a_model_are_skipped() -> None:
    plain_only = inputs(1000.0, latency_models={"plain": PLAIN})
    assert all(c.group == "plain" for c in plain_only.candidates())
    with pytest.raises(ConfigurationError, match="no latency model"):
        inputs(1.0, latency_models={"other": PLAIN.__class__.prior("other")})
    with pytest.raises(ConfigurationError, match="is the model of group"):
        inputs(1.0, latency_models={"spec": PLAIN})


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"slice_s": -1.0}, "slice_s"),
        ({"prompt_tokens": -1}, "prompt_tokens"),
        ({"sla_quantile": 1.0}, "sla_quantile"),
        ({"scorer_latency_s": -0.1}, "scorer_latency_s"),
    ],
)
def test_bad_inputs_name_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        inputs(**overrides)  # type: ignore[arg-type]


def test_search_space_validation() -> None:
    with pytest.raises(ConfigurationError, match="n_choices"):
        SearchSpace(n_choices=())
    with pytest.raises(ConfigurationError, match="temperature"):
        SearchSpace(temperature=0.0)
    with pytest.raises(ConfigurationError, match="strategies"):
        SearchSpace(strategies=("vote",))  # type: ignore[arg-type]


# -- paper 1's greedy (B, gamma) search ----------------------------------------------


def test_greedy_search_trades_speculation_for_branches() -> None:
    """Paper 1's shape: speculation pays at small B and costs at large B."""

    def at(n: int, group: str) -> float:
        config = TTSConfig("majority", n, group, 256, 0.7)
        return predict(config, inputs()).latency_quantile_s

    assert at(4, "spec") < at(4, "plain")
    assert at(16, "spec") > at(16, "plain")
    loose = plan_greedy_parallelism(inputs(1000.0))
    assert loose.config == TTSConfig("majority", 16, "plain", 256, 0.7)
    assert loose.reason.startswith("greedy: ")
    # B=4 fits only with speculation (and B=8 does not fit at all)
    tight = plan_greedy_parallelism(inputs((at(4, "spec") + at(4, "plain")) / 2))
    assert tight.config == TTSConfig("majority", 4, "spec", 256, 0.7)


def test_greedy_search_refuses_and_never_beats_exhaustive() -> None:
    assert plan_greedy_parallelism(inputs(0.05)).refused
    for slice_s in (1.0, 2.0, 4.0, 8.0):
        greedy = plan_greedy_parallelism(inputs(slice_s))
        exhaustive = plan_for_deadline(
            inputs(
                slice_s,
                space=SearchSpace(strategies=("single", "majority"), max_tokens_choices=(256,)),
            )
        )
        if greedy.prediction is not None:
            assert exhaustive.prediction is not None
            assert greedy.prediction.latency_quantile_s <= slice_s
            assert greedy.prediction.accuracy <= exhaustive.prediction.accuracy + 1e-12


def test_greedy_only_groups_get_single_only() -> None:
    """vLLM's CPU speculative servers garble sampled output (docs/deployment.md):
    the planner sends them greedy single calls only, whatever the slice."""
    space = SearchSpace(max_tokens_choices=(256,), greedy_only_groups=("spec",))
    on_spec = [c for c in space.configs() if c.group == "spec"]
    assert on_spec == [TTSConfig("single", 1, "spec", 256)]
    assert any(c.strategy == "majority" for c in space.configs() if c.group == "plain")
    for slice_s in (0.5, 1.0, 2.0, 8.0, 1000.0):
        plan = plan_for_deadline(inputs(slice_s, space=space))
        penalty = plan_with_penalty(
            inputs(slice_s, space=space), lambda_tokens=1e-4, lambda_latency_s=0.0
        )
        for chosen in (plan.config, penalty.config):
            assert chosen is None or chosen.group == "plain" or chosen.strategy == "single"


def test_greedy_search_keeps_branches_off_greedy_only_groups() -> None:
    def at(n: int, group: str) -> float:
        return predict(TTSConfig("majority", n, group, 256, 0.7), inputs()).latency_quantile_s

    slice_s = (at(4, "spec") + at(4, "plain")) / 2  # B=4 would fit only with speculation
    space = SearchSpace(max_tokens_choices=(256,), greedy_only_groups=("spec",))
    for s in (slice_s, 4.0, 1000.0):
        plan = plan_greedy_parallelism(inputs(s, space=space))
        assert plan.config is not None
        assert plan.config.group == "plain" or plan.config.n == 1
    assert plan_greedy_parallelism(inputs(slice_s)).config == TTSConfig(
        "majority", 4, "spec", 256, 0.7
    )


def test_when_nothing_fits_the_fallback_is_one_greedy_branch_with_the_cap_that_fits() -> None:
    # A 0.9 s slice fits no config at p95 with a 128-token minimum cap; some cap fits at the mean.
    space = SearchSpace(groups=("plain",), max_tokens_choices=(128, 256))
    refused_inputs = inputs(0.9, space=space, latency_models={"plain": PLAIN})
    refused = plan_for_deadline(refused_inputs)
    assert refused.refused
    plan = plan_fallback(refused_inputs, refused, min_tokens=8)
    assert plan.config is not None and plan.prediction is not None
    assert (plan.config.strategy, plan.config.n, plan.config.temperature) == ("single", 1, 0.0)
    cap = plan.config.max_tokens
    assert cap in (64, 32, 16, 8) and plan.prediction.latency_mean_s <= 0.9
    twice = predict(TTSConfig("single", 1, "plain", 2 * cap), refused_inputs)
    assert twice.latency_mean_s > 0.9, "the largest cap (halving from 128) whose mean fits"
    assert "cheapest call that can answer" in plan.reason
    assert f"capped at {cap} tokens" in plan.reason


def test_the_fallback_picks_the_fastest_group_and_the_tightest_cap_when_even_that_fails() -> None:
    slow = PLAIN.scaled(10.0, 10.0)
    space = SearchSpace(groups=("slow", "plain"), max_tokens_choices=(64,))
    models = {"slow": slow.__class__(**{**slow.__dict__, "group": "slow"}), "plain": PLAIN}
    tight = inputs(0.05, space=space, latency_models=models)
    plan = plan_fallback(tight, plan_for_deadline(tight), min_tokens=8)
    assert plan.config is not None and plan.config.group == "plain"
    assert plan.config.max_tokens == 8
    assert "does not fit either" in plan.reason
