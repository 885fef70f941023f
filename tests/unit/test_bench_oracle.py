"""Scoring against deadlines and the oracle (best static config in hindsight)."""

from __future__ import annotations

import pytest

from benchmarks.frontier import FrontierPlan, frontier_rows, static_configs
from benchmarks.oracle import Outcome, best_static, score


def test_an_overrun_counts_as_wrong_and_outside() -> None:
    outcomes = [
        Outcome("single", 0, correct=True, latency_s=0.4),
        Outcome("single", 1, correct=True, latency_s=0.65),
    ]
    at = score(outcomes, 0.5, margin_s=0.1)["single"]
    assert at == pytest.approx(
        {"accuracy": 0.5, "inside": 0.5, "tokens": 0.0, "latency_s": 0.525, "tasks": 2.0}
    )
    assert score(outcomes, 0.5, margin_s=0.15)["single"]["accuracy"] == 1.0


def test_the_boundary_is_inclusive() -> None:
    outcomes = [Outcome("single", 0, correct=True, latency_s=1.0)]
    assert score(outcomes, 1.0, margin_s=0.0)["single"]["inside"] == 1.0


def test_planner_outcomes_count_only_at_their_own_deadline() -> None:
    outcomes = [
        Outcome("agentrt", 0, correct=True, latency_s=0.3, deadline_s=0.5),
        Outcome("agentrt", 0, correct=False, latency_s=0.9, deadline_s=1.0),
    ]
    assert score(outcomes, 0.5, 0.1)["agentrt"]["accuracy"] == 1.0
    assert score(outcomes, 1.0, 0.1)["agentrt"]["accuracy"] == 0.0
    assert "agentrt" not in score(outcomes, 2.0, 0.1)


def test_best_static_breaks_ties_by_tokens_then_name() -> None:
    scores = {
        "majority@4": {"accuracy": 0.6, "tokens": 100.0},
        "majority@2": {"accuracy": 0.6, "tokens": 50.0},
        "single": {"accuracy": 0.4, "tokens": 10.0},
        "agentrt": {"accuracy": 0.9, "tokens": 10.0},
    }
    assert best_static(scores, ["single", "majority@2", "majority@4"]) == ("majority@2", 0.6)
    assert best_static(scores, ["majority@8"]) is None


def test_frontier_rows_carry_the_oracle_and_the_bars() -> None:
    plan = FrontierPlan(deadlines_s=(1.0, 2.0), ns=(2,), margin_s=0.1)
    outcomes = [
        Outcome("single", 0, correct=True, latency_s=0.5),
        Outcome("single", 1, correct=False, latency_s=0.5),
        Outcome("majority@2", 0, correct=True, latency_s=1.5),
        Outcome("majority@2", 1, correct=True, latency_s=1.5),
    ]
    for d in plan.deadlines_s:
        outcomes += [
            Outcome("agentrt", 0, correct=True, latency_s=d - 0.2, deadline_s=d),
            Outcome("agentrt", 1, correct=d > 1.5, latency_s=d - 0.2, deadline_s=d),
        ]
    rows, bars = frontier_rows(outcomes, plan)
    oracle = {r["deadline_s"]: r["candidate"] for r in rows if r["candidate"].startswith("oracle")}
    assert oracle == {1.0: "oracle (single)", 2.0: "oracle (majority@2)"}
    assert [(b["deadline_s"], b["accuracy_gap"], b["meets_accuracy_bar"]) for b in bars] == [
        (1.0, 0.0, True),
        (2.0, 0.0, True),
    ]
    assert all(b["meets_inside_bar"] for b in bars)


def test_static_configs_are_single_and_majority_per_n() -> None:
    configs = static_configs(FrontierPlan(ns=(2, 8), max_tokens=32))
    assert list(configs) == ["single", "majority@2", "majority@8"]
    assert configs["majority@8"].n == 8
    assert {c.max_tokens for c in configs.values()} == {32}
