"""The one quantile: linear interpolation between order statistics, as numpy's
default and ``statistics.quantiles(method="inclusive")``, with its edges."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentrt.core._errors import ConfigurationError
from agentrt.core._stats import quantile

ONE_TO_HUNDRED = [float(v) for v in range(1, 101)]


def test_interpolates_between_order_statistics() -> None:
    assert quantile(ONE_TO_HUNDRED, 0.5) == pytest.approx(50.5)
    assert quantile(ONE_TO_HUNDRED, 0.99) == pytest.approx(99.01)
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.25) == pytest.approx(1.75)


def test_the_order_of_the_values_does_not_matter() -> None:
    assert quantile(reversed(ONE_TO_HUNDRED), 0.9) == quantile(ONE_TO_HUNDRED, 0.9)


def test_q_zero_and_one_are_the_smallest_and_largest() -> None:
    values = [5.0, -1.0, 3.0]
    assert quantile(values, 0) == -1.0
    assert quantile(values, 1) == 5.0


def test_one_value_is_every_quantile() -> None:
    assert {quantile([3.0], q) for q in (0.0, 0.01, 0.5, 0.99, 1.0)} == {3.0}


def test_no_values_raise_unless_a_default_is_given() -> None:
    with pytest.raises(ConfigurationError, match="no values"):
        quantile([], 0.5)
    assert quantile([], 0.99, default=0.0) == 0.0
    assert quantile([2.0], 0.5, default=0.0) == 2.0


@pytest.mark.parametrize("q", [-0.01, 1.01, float("nan"), float("inf"), 99, True, "0.5"])
def test_a_q_outside_zero_to_one_is_refused(q: object) -> None:
    with pytest.raises(ConfigurationError, match=r"q must be a number in \[0, 1\]"):
        quantile([1.0, 2.0], q)  # type: ignore[arg-type]


@given(
    values=st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=50),
    n=st.integers(2, 20),
)
def test_matches_statistics_quantiles_inclusive(values: list[float], n: int) -> None:
    cuts = statistics.quantiles(values, n=n, method="inclusive")
    ours = [quantile(values, k / n) for k in range(1, n)]
    assert ours == pytest.approx(cuts, rel=1e-9, abs=1e-6)
