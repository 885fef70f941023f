"""The online output-length learner: the prior untouched without evidence,
convergence, censoring at a cap, drift after a step change, validity on any
input, per-site independence, and errors that name the bad field."""

from __future__ import annotations

import math
import random
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrt.core._errors import ConfigurationError
from agentrt.tts import LengthModel, LengthState, OnlineLength


def log_normal(median: float, sigma: float, n: int, *, seed: int = 0) -> list[int]:
    """``n`` seeded output lengths, log-normal around ``median`` (at least 1 token)."""
    rng = random.Random(seed)
    return [max(1, round(median * math.exp(rng.gauss(0.0, sigma)))) for _ in range(n)]


def feed(online: OnlineLength, lengths: list[int], site: str = "s") -> None:
    for tokens in lengths:
        online.observe(site, tokens)


def test_without_evidence_the_prior_is_returned_untouched() -> None:
    online = OnlineLength()
    empirical = LengthModel.from_samples([40, 55, 61, 90, 300])
    assert online.model("s") == LengthModel()
    assert online.model("s", empirical) is empirical
    # A cap under the prior's median and a branch cut before its first token
    # carry no information: still the prior itself.
    online.observe("s", 50, capped=True)
    online.observe("t", 0, capped=True)
    assert online.model("s", empirical) is empirical
    assert online.sites() == ("s",)
    state = online.state("s", empirical)
    assert state.median_tokens == pytest.approx(61.0)
    assert (state.observations, state.censored, state.drifts) == (1, 1, 0)


@pytest.mark.parametrize("factor", [0.2, 5.0], ids=["prior-5x-too-short", "prior-5x-too-long"])
def test_converges_to_the_true_median_and_sigma(factor: float) -> None:
    online = OnlineLength()
    prior = LengthModel(prior_median_tokens=120.0 * factor, prior_sigma=0.6)
    feed(online, log_normal(120.0, 0.4, 100, seed=1))
    learned = online.model("s", prior)
    assert learned.is_prior  # a log-normal, not samples
    assert learned.prior_median_tokens == pytest.approx(120.0, rel=0.2)
    assert learned.prior_sigma == pytest.approx(0.4, rel=0.25)


def test_an_empirical_prior_starts_at_its_median_and_p90() -> None:
    empirical = LengthModel.from_samples(log_normal(300.0, 0.5, 400, seed=2))
    state = OnlineLength().state("s", empirical)
    assert state.median_tokens == pytest.approx(300.0, rel=0.1)
    assert state.sigma == pytest.approx(0.5, rel=0.15)
    online = OnlineLength()
    feed(online, log_normal(60.0, 0.3, 80, seed=3))
    assert online.model("s", empirical).prior_median_tokens == pytest.approx(60.0, rel=0.2)


def test_capped_readings_push_the_median_up_never_down() -> None:
    online = OnlineLength()
    feed(online, log_normal(100.0, 0.5, 20, seed=4))
    rng = random.Random(5)
    medians = [online.model("s").prior_median_tokens]
    for _ in range(200):
        online.observe("s", rng.randint(1, 400), capped=True)
        medians.append(online.model("s").prior_median_tokens)
    assert all(b >= a for a, b in pairwise(medians))
    assert medians[-1] > medians[0]
    assert online.state("s").censored == 200


def test_censoring_at_the_cap_is_not_read_as_the_length() -> None:
    """Lengths log-normal(200, 0.6) generated under max_tokens=300 (about a quarter
    capped): imputing the tail finds the median; taking the cap at face value is low."""
    lengths = log_normal(200.0, 0.6, 400, seed=6)
    censored, naive = OnlineLength(), OnlineLength()
    for tokens in lengths:
        censored.observe("s", min(tokens, 300), capped=tokens >= 300)
        naive.observe("s", min(tokens, 300))
    assert censored.model("s").prior_median_tokens == pytest.approx(200.0, rel=0.15)
    assert naive.model("s").prior_median_tokens < censored.model("s").prior_median_tokens


def test_a_step_change_is_followed_within_a_handful_of_readings() -> None:
    online = OnlineLength()
    slow = OnlineLength(drift_threshold=math.inf)  # forgetting alone
    lengths = log_normal(20.0, 0.3, 60, seed=7) + log_normal(80.0, 0.3, 20, seed=8)
    feed(online, lengths)
    feed(slow, lengths)
    assert online.model("s").prior_median_tokens == pytest.approx(80.0, rel=0.25)
    assert online.state("s").drifts >= 1
    # The step's readings do not inflate the spread: they were re-read about the new level.
    assert online.model("s").prior_sigma == pytest.approx(0.3, rel=0.4)
    # Forgetting alone needs about `memory` readings: it is still far below 80.
    assert slow.model("s").prior_median_tokens < 60.0


def test_one_outlier_does_not_restart_the_level() -> None:
    online = OnlineLength()
    feed(online, log_normal(100.0, 0.3, 60, seed=9))
    before = online.state("s")
    online.observe("s", 100_000)
    after = online.state("s")
    assert after.drifts == before.drifts
    assert after.median_tokens < 1.5 * before.median_tokens


def test_asking_late_with_a_prior_equals_learning_with_it_from_the_start() -> None:
    prior = LengthModel(prior_median_tokens=50.0, prior_sigma=1.0)
    lengths = log_normal(400.0, 0.7, 50, seed=10)
    early, late = OnlineLength(), OnlineLength()
    early.observe("s", lengths[0])
    early.model("s", prior)  # learned incrementally from here on
    feed(early, lengths[1:])
    feed(late, lengths)  # replayed from history on the first ask
    assert early.model("s", prior) == late.model("s", prior)
    assert early.model("s", prior) != early.model("s")  # the prior matters


@settings(max_examples=200, deadline=None)
@given(
    readings=st.lists(
        st.tuples(st.integers(min_value=0, max_value=10**9), st.booleans()), max_size=60
    ),
    pseudo_count=st.floats(min_value=0.01, max_value=100.0),
    memory=st.floats(min_value=1.01, max_value=1000.0),
    drift_threshold=st.floats(min_value=0.1, max_value=20.0),
    prior_median=st.floats(min_value=1.0, max_value=1e6),
    prior_sigma=st.floats(min_value=0.01, max_value=5.0),
)
def test_the_model_is_always_a_valid_length_model(
    readings: list[tuple[int, bool]],
    pseudo_count: float,
    memory: float,
    drift_threshold: float,
    prior_median: float,
    prior_sigma: float,
) -> None:
    online = OnlineLength(pseudo_count=pseudo_count, memory=memory, drift_threshold=drift_threshold)
    prior = LengthModel(prior_median_tokens=prior_median, prior_sigma=prior_sigma)
    for tokens, capped in readings:
        online.observe("s", max(tokens, 0 if capped else 1), capped=capped)
        model = online.model("s", prior)
        assert model.prior_median_tokens >= 1.0 and math.isfinite(model.prior_median_tokens)
        assert 0.0 < model.prior_sigma <= 5.0


def test_sites_are_independent() -> None:
    online = OnlineLength()
    feed(online, log_normal(30.0, 0.3, 40, seed=11), site="plan")
    feed(online, log_normal(900.0, 0.3, 40, seed=12), site="solve")
    assert online.sites() == ("plan", "solve")
    assert online.model("plan").prior_median_tokens == pytest.approx(30.0, rel=0.2)
    assert online.model("solve").prior_median_tokens == pytest.approx(900.0, rel=0.2)
    assert online.model("review") == LengthModel()
    state = online.state("plan")
    assert isinstance(state, LengthState)
    assert (state.site, state.observations, state.censored) == ("plan", 40, 0)
    assert online.state("review").observations == 0


@pytest.mark.parametrize(
    ("kwargs", "field", "value"),
    [
        ({"pseudo_count": 0.0}, "pseudo_count", "0.0"),
        ({"pseudo_count": math.inf}, "pseudo_count", "inf"),
        ({"memory": 1.0}, "memory", "1.0"),
        ({"memory": math.nan}, "memory", "nan"),
        ({"drift_threshold": -1.0}, "drift_threshold", "-1.0"),
    ],
)
def test_bad_parameters_name_the_field_and_value(
    kwargs: dict[str, float], field: str, value: str
) -> None:
    with pytest.raises(ConfigurationError, match=rf"OnlineLength\.{field}.*got {value}"):
        OnlineLength(**kwargs)


@pytest.mark.parametrize(("tokens", "capped"), [(0, False), (-3, False), (-1, True)])
def test_bad_readings_name_the_field_and_value(tokens: int, capped: bool) -> None:
    online = OnlineLength()
    with pytest.raises(ConfigurationError, match=rf"tokens .*got {tokens} at site 'node'"):
        online.observe("node", tokens, capped=capped)
    assert online.sites() == ()
