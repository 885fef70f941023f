"""Length, latency and accuracy models: formulas, fits, priors and profile round trips."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentrt.core._errors import ConfigurationError, ProfileError
from agentrt.tts._accuracy import (
    AccuracyModel,
    AccuracyPrior,
    MeasuredAccuracy,
    best_of_n_accuracy,
    majority_accuracy,
    pass_at_n,
    plurality_accuracy,
)
from agentrt.tts._config import TTSConfig
from agentrt.tts._curve import Curve
from agentrt.tts._latency import (
    LatencyModel,
    SpeculativeModel,
    TTFTModel,
    expected_tokens_per_pass,
)
from agentrt.tts._length import LengthModel

# -- length -------------------------------------------------------------------------


def test_empirical_quantiles_interpolate() -> None:
    model = LengthModel.from_samples([40, 10, 30, 20, 50])
    assert model.quantile(0.5) == 30
    assert model.quantile(0.25) == 20
    assert model.quantile(0.1) == pytest.approx(14.0)
    assert model.quantile(0.999) == pytest.approx(49.96)
    assert model.cdf(30) == 0.6 and model.cdf(5) == 0.0 and model.cdf(60) == 1.0
    assert model.expected_tokens() == 30 and model.expected_tokens(max_tokens=25) == 21


def test_max_of_n_uses_the_order_statistic() -> None:
    model = LengthModel.from_samples(range(1, 1001))
    q = 0.9
    for n in (1, 2, 4, 8, 16):
        assert model.max_quantile(n, q) == pytest.approx(model.quantile(q ** (1 / n)))
    assert model.max_quantile(16, q) > model.max_quantile(1, q)


def test_prior_is_lognormal_around_its_median() -> None:
    prior = LengthModel()
    assert prior.is_prior
    assert prior.quantile(0.5) == pytest.approx(200.0)
    assert prior.cdf(200.0) == pytest.approx(0.5)
    assert prior.quantile(0.9) == pytest.approx(200 * math.exp(0.6 * 1.2815515655446004))
    assert prior.expected_tokens(max_tokens=100) < 100


@given(
    samples=st.lists(st.integers(0, 5000), min_size=1, max_size=50),
    n=st.integers(1, 32),
    q=st.floats(0.01, 0.99),
)
def test_longest_of_more_branches_is_never_shorter(samples: list[int], n: int, q: float) -> None:
    model = LengthModel.from_samples(samples)
    assert model.max_quantile(n + 1, q) >= model.max_quantile(n, q)
    assert model.expected_max(n + 1) >= model.expected_max(n) - 1e-9
    assert min(samples) <= model.max_quantile(n, q) <= max(samples)


def test_length_validation_and_round_trip() -> None:
    with pytest.raises(ConfigurationError, match="quantile"):
        LengthModel().quantile(1.0)
    with pytest.raises(ConfigurationError, match="sorted"):
        LengthModel(samples=(3, 1))
    model = LengthModel.from_samples([5, 1, 3], prior_median_tokens=50)
    assert LengthModel.from_dict(model.to_dict()) == model
    with pytest.raises(ProfileError, match=r"samples\.1") as info:
        LengthModel.from_dict({"samples": [1, -2]}, source="budgets/math.toml")
    assert info.value.field == "samples.1" and info.value.value == -2
    assert info.value.path == "budgets/math.toml"


# -- latency ------------------------------------------------------------------------

PLAIN = LatencyModel(
    group="plain",
    ttft=TTFTModel(base_s=0.1, per_prompt_token_s=0.001, per_load_s=0.01),
    decode_s_per_token=Curve.of([(1, 0.02), (2, 0.02), (4, 0.021), (8, 0.024), (16, 0.032)]),
)
LENGTHS = LengthModel.from_samples(range(50, 251, 10))


def test_curve_interpolates_and_extrapolates_upwards() -> None:
    curve = Curve.of([(1, 1.0), (3, 3.0)])
    assert curve.at(0.5) == 1.0 and curve.at(2) == 2.0 and curve.at(5) == 5.0
    flat_then_down = Curve.of([(1, 2.0), (2, 1.0)])
    assert flat_then_down.points == ((1.0, 2.0), (2.0, 2.0))  # running maximum
    assert Curve.of([(1, 2.0), (2, 1.0)], monotone=False).at(10) == 1.0  # never falls beyond
    with pytest.raises(ConfigurationError, match="increasing"):
        Curve(((1.0, 1.0), (1.0, 2.0)))


def test_predict_quantile_formula() -> None:
    config = TTSConfig("majority", 4, max_tokens=1000, temperature=0.7)
    q = 0.9
    # TTFT load: the 2 running sequences plus the config's 3 other branches.
    expected = (0.1 + 0.001 * 100 + 0.01 * 5) + LENGTHS.max_quantile(4, q) * PLAIN.per_token_s(6)
    assert PLAIN.predict_quantile(config, 100, LENGTHS, q, load=2) == pytest.approx(expected)


def test_max_tokens_caps_the_latency() -> None:
    capped = TTSConfig("majority", 4, max_tokens=60, temperature=0.7)
    assert PLAIN.predict_quantile(capped, 0, LENGTHS, 0.99) == pytest.approx(
        0.1 + 0.01 * 3 + 60 * PLAIN.per_token_s(4)
    )


def test_beam_is_slowed_and_group_must_match() -> None:
    beam = TTSConfig("beam", 4)
    sampled = TTSConfig("majority", 4, temperature=0.7)
    assert PLAIN.predict_quantile(beam, 0, LENGTHS, 0.5) > PLAIN.predict_quantile(
        sampled, 0, LENGTHS, 0.5
    )
    with pytest.raises(ConfigurationError, match="group"):
        PLAIN.predict_quantile(TTSConfig("single", 1, group="spec"), 0, LENGTHS, 0.5)


def test_min_latency_is_the_single_greedy_branch() -> None:
    single = TTSConfig("single", 1, max_tokens=128)
    assert PLAIN.min_latency_s(10, LENGTHS, 0.95, max_tokens=128) == PLAIN.predict_quantile(
        single, 10, LENGTHS, 0.95
    )


def test_mean_is_below_a_high_quantile() -> None:
    config = TTSConfig("majority", 8, temperature=0.7)
    assert PLAIN.predict_mean(config, 0, LENGTHS) < PLAIN.predict_quantile(config, 0, LENGTHS, 0.95)


def test_ttft_fit_recovers_coefficients_and_drops_constant_features() -> None:
    samples = [
        (p, load, 0.05 + 0.0002 * p + 0.01 * load) for p in (10, 100, 500) for load in (0, 4)
    ]
    fitted = TTFTModel.fit(samples)
    assert fitted.base_s == pytest.approx(0.05)
    assert fitted.per_prompt_token_s == pytest.approx(0.0002)
    assert fitted.per_load_s == pytest.approx(0.01)
    no_load = TTFTModel.fit([(p, 0, 0.1 + 0.001 * p) for p in (10, 20, 40)])
    assert no_load.per_load_s == 0.0 and no_load.per_prompt_token_s == pytest.approx(0.001)
    negative = TTFTModel.fit([(10, 0, 0.5), (20, 0, 0.4), (30, 0, 0.3)])
    assert negative.per_prompt_token_s == 0.0 and negative.base_s == pytest.approx(0.4)


def test_fit_uses_median_per_concurrency() -> None:
    model = LatencyModel.fit(
        "plain",
        [(10, 0, 0.1), (20, 0, 0.2)],
        [(1, 0.02), (1, 0.03), (1, 0.9), (4, 0.04)],
    )
    assert model.per_token_s(1) == 0.03 and model.per_token_s(4) == 0.04


def test_speculative_speedup_shrinks_with_concurrency() -> None:
    acceptance = Curve.of([(1, 0.8), (16, 0.7)], monotone=False)
    spec = LatencyModel.derive_speculative(PLAIN, 4, acceptance, draft_overhead=0.1)
    assert spec.group == "spec" and spec.draft_tokens == 4
    speedups = [spec.speedup_over(PLAIN, n) for n in (1, 2, 4, 8, 16)]
    assert speedups[0] > 2.0
    assert all(a >= b for a, b in pairwise(speedups))
    assert speedups[-1] < speedups[0]


def test_tokens_per_pass() -> None:
    assert expected_tokens_per_pass(0.0, 4) == 1.0
    assert expected_tokens_per_pass(0.5, 1) == pytest.approx(1.5)
    with pytest.raises(ConfigurationError, match="acceptance"):
        expected_tokens_per_pass(1.0, 3)
    with pytest.raises(ConfigurationError, match="acceptance at concurrency"):
        SpeculativeModel(3, Curve.of([(1, 1.5)], monotone=False))


def test_latency_round_trip_and_errors_name_the_field() -> None:
    spec = LatencyModel.derive_speculative(PLAIN, 3, Curve.of([(1, 0.7)], monotone=False))
    for model in (PLAIN, spec, LatencyModel.prior()):
        assert LatencyModel.from_dict(model.to_dict()) == model
    bad = PLAIN.to_dict()
    bad["ttft"]["base_s"] = -1.0
    with pytest.raises(ProfileError, match=r"ttft\.base_s") as info:
        LatencyModel.from_dict(bad, source="budgets/x.toml")
    assert info.value.value == -1.0
    with pytest.raises(ProfileError, match="decode_s_per_token"):
        LatencyModel.from_dict({**PLAIN.to_dict(), "decode_s_per_token": []})
    with pytest.raises(ProfileError, match="increasing"):
        LatencyModel.from_dict({**PLAIN.to_dict(), "decode_s_per_token": [[1, 0.1], [1, 0.2]]})
    with pytest.raises(ProfileError, match="unknown"):
        LatencyModel.from_dict({**PLAIN.to_dict(), "unknown": 1})


# -- accuracy -----------------------------------------------------------------------


def test_plurality_formula_small_cases() -> None:
    p = 0.6
    assert plurality_accuracy(p, 1, 1) == pytest.approx(p)
    assert plurality_accuracy(p, 2, 1) == pytest.approx(p)  # ties split evenly
    assert plurality_accuracy(p, 3, 1) == pytest.approx(p**3 + 3 * p**2 * (1 - p))
    # three answers each with 1/3: symmetric, so accuracy stays 1/3
    assert plurality_accuracy(1 / 3, 5, 2) == pytest.approx(1 / 3)


@given(p=st.floats(0.0, 1.0), k=st.integers(1, 8))
def test_majority_prior_is_monotone_in_n(p: float, k: int) -> None:
    values = [majority_accuracy(p, n, k) for n in (1, 2, 4, 8, 16)]
    assert all(b >= a for a, b in pairwise(values))
    assert all(0.0 <= v <= 1.0 for v in values)


@given(p=st.floats(0.0, 1.0), v=st.floats(0.0, 1.0), n=st.integers(1, 32))
def test_best_of_n_between_one_sample_and_pass_at_n(p: float, v: float, n: int) -> None:
    value = best_of_n_accuracy(p, n, v)
    assert p - 1e-12 <= value <= pass_at_n(p, n) + 1e-12


def test_prior_predictions_and_truncation() -> None:
    model = AccuracyModel(AccuracyPrior(sample_accuracy=0.35, greedy_accuracy=0.4))
    lengths = LengthModel.from_samples([10] * 9 + [1000])
    single = TTSConfig("single", 1, max_tokens=100)
    assert model.predict(single, lengths) == pytest.approx(0.4 * 0.9)
    maj8 = TTSConfig("majority", 8, max_tokens=2000, temperature=0.7)
    assert model.predict(maj8, lengths) == pytest.approx(majority_accuracy(0.35, 8, 4))
    weighted = TTSConfig("weighted", 8, max_tokens=2000, temperature=0.7)
    assert model.predict(weighted, lengths) >= model.predict(maj8, lengths)


def test_measured_table_wins_and_majority_is_made_monotone() -> None:
    measured = (
        MeasuredAccuracy("single", 1, 0.30, runs=100),
        MeasuredAccuracy("majority", 2, 0.50, runs=100),
        MeasuredAccuracy("majority", 4, 0.46, runs=100),
        MeasuredAccuracy("majority", 8, 0.60, runs=100),
    )
    model = AccuracyModel(measured=measured)
    lengths = LengthModel.from_samples([10, 20])

    def at(n: int) -> float:
        return model.predict(TTSConfig("majority", n, temperature=0.7), lengths)

    assert at(2) == pytest.approx(0.48) == at(4)
    assert at(8) == pytest.approx(0.60)
    assert model.predict(TTSConfig("single", 1), lengths) == 0.30
    # unmeasured n falls back to the prior
    assert at(16) == pytest.approx(majority_accuracy(0.5, 16, 4))


def test_measured_values_scale_down_for_a_tighter_cap() -> None:
    model = AccuracyModel(measured=(MeasuredAccuracy("single", 1, 0.5),), measured_max_tokens=1000)
    lengths = LengthModel.from_samples([100, 200, 300, 400])
    assert model.predict(TTSConfig("single", 1, max_tokens=1000), lengths) == 0.5
    assert model.predict(TTSConfig("single", 1, max_tokens=250), lengths) == 0.25


def test_accuracy_validation_and_round_trip() -> None:
    model = AccuracyModel(
        AccuracyPrior(sample_accuracy=0.3, verifier_quality=0.2),
        (MeasuredAccuracy("majority", 8, 0.6, runs=50),),
        measured_max_tokens=256,
    )
    assert AccuracyModel.from_dict(model.to_dict()) == model
    with pytest.raises(ProfileError, match=r"measured\.0\.accuracy"):
        AccuracyModel.from_dict({"measured": [{"strategy": "majority", "n": 2, "accuracy": 2}]})
    with pytest.raises(ConfigurationError, match="repeats"):
        AccuracyModel(measured=(MeasuredAccuracy("single", 1, 0.1),) * 2)
    with pytest.raises(ConfigurationError, match="sample_accuracy"):
        AccuracyPrior(sample_accuracy=1.5)


def test_the_slowdown_at_load_is_one_alone_and_grows_with_load() -> None:
    model = LatencyModel.prior("plain")
    assert model.slowdown(0) == 1.0 and model.slowdown(-3) == 1.0
    assert model.slowdown(float("nan")) == 1.0
    factors = [model.slowdown(load) for load in (1, 4, 16, 64)]
    assert factors == sorted(factors) and factors[0] >= 1.0 and factors[-1] > factors[0]
