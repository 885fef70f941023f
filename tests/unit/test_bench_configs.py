"""Paper 2's table from outcomes, and the router's curve over lambda (pure parts)."""

from __future__ import annotations

from agentrt.tts._latency import LatencyModel
from agentrt.tts._length import LengthModel
from benchmarks.configs import ConfigsPlan, config_rows, router_curve, table_configs
from benchmarks.oracle import Outcome


def test_config_rows_are_means_p90_and_accuracy() -> None:
    outcomes = [
        Outcome("majority@2/plain", 0, True, 1.0, 20),
        Outcome("majority@2/plain", 1, False, 3.0, 40),
        Outcome("single/plain", 0, True, 0.5, 10),
        Outcome("single/plain", 1, True, 0.7, 12),
    ]
    rows = config_rows(outcomes)
    assert [r["config"] for r in rows] == ["single/plain", "majority@2/plain"]
    assert rows[1] == {"config": "majority@2/plain", "tokens": 30.0, "latency_s": 2.0,
                       "p90_latency_s": 3.0, "accuracy": 0.5, "tasks": 2}  # fmt: skip


def test_the_router_spends_less_as_the_penalties_grow() -> None:
    plan = ConfigsPlan(ns=(2, 8), lambdas_tokens=(0.0, 1.0), lambdas_latency_s=(0.0,))
    labels = table_configs(plan, ("plain",))
    assert list(labels) == ["single/plain", "majority@2/plain", "majority@8/plain"]
    rows = [{"config": name, "tokens": 1.0, "latency_s": 1.0, "accuracy": 0.5} for name in labels]
    curve = router_curve(rows, plan, {"plain": LatencyModel.prior("plain")},
                         LengthModel.from_quantiles(10, 20), "What is 1 plus 2?")  # fmt: skip
    assert [c["lambda_tokens"] for c in curve] == [0.0, 1.0]
    assert curve[0]["config"] == "majority@8/plain"
    assert curve[1]["config"] == "single/plain"
    assert curve[1]["accuracy"] == 0.5
