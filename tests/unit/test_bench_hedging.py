"""The hedging benchmark's pure parts: the straggle schedule and the per-mode rows."""

from __future__ import annotations

import pytest

from agentrt.core._errors import ConfigurationError
from benchmarks.catalog import CATALOG
from benchmarks.hedging import HedgingPlan, mode_rows, straggle_schedule


def test_the_schedule_is_seeded_and_near_its_fraction() -> None:
    first = straggle_schedule(0, 2000, 0.04)
    assert first == straggle_schedule(0, 2000, 0.04)
    assert first != straggle_schedule(1, 2000, 0.04)
    assert 0.02 < sum(first) / len(first) < 0.06
    assert not any(straggle_schedule(0, 100, 0.0))
    with pytest.raises(ConfigurationError, match="straggle_fraction must be in"):
        straggle_schedule(0, 10, 1.5)


def test_mode_rows_summarise_each_mode() -> None:
    def call(
        mode: str, latency: float, straggled: bool = False, hedged: bool = False
    ) -> dict[str, object]:
        return {"mode": mode, "latency_s": latency, "straggled": straggled, "hedged": hedged,
                "hedge_won": hedged, "tokens": 10, "degraded": False, "correct": True}  # fmt: skip

    rows = [call("off", 0.5)] * 9 + [call("off", 2.5, straggled=True)]
    rows += [call("on", 0.5)] * 9 + [call("on", 1.0, straggled=True, hedged=True)]
    off, on = mode_rows(rows)
    assert (off["hedging"], on["hedging"]) == ("off", "on")
    assert off["max_s"] == 2.5 and on["max_s"] == 1.0
    assert on["hedge_rate"] == 0.1 and on["hedges_won"] == 1 and off["hedge_rate"] == 0.0
    assert on["hedged_straggled"] == 1
    assert off["straggled"] == 1 and on["straggled_median_s"] == 1.0
    assert off["tokens_per_call"] == 10.0 and on["accuracy"] == 1.0


def test_the_benchmark_is_registered_with_a_quick_form() -> None:
    assert CATALOG["hedging"].pool == (2, 0)
    assert HedgingPlan.quick().calls < HedgingPlan().calls
    assert HedgingPlan().config.n == 4
