"""The ``policies`` benchmark's pure parts: job order, rows, the best policies, the plot."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from agentrt.budget._policies import policy_from_name
from benchmarks.catalog import CATALOG
from benchmarks.policies import (
    GRAPHS,
    POLICIES,
    PoliciesPlan,
    PolicyRun,
    best_policies,
    graph_label,
    interleaved_jobs,
    plot_policies,
    policy_rows,
    stopped_by_deadline,
)

MATH = "graphs/math.py:graph"
CALC = "graphs/calculator.py:graph"


def run(graph: str = MATH, deadline_s: float = 2.0, policy: str = "equal", *, task: int = 0,
        correct: bool = True, elapsed_s: float = 1.0, degraded: bool = False, calls: int = 3,
        tokens: int = 30, branches: float = 1.0, stopped: bool = False) -> PolicyRun:  # fmt: skip
    return PolicyRun(graph, deadline_s, policy, task, correct, elapsed_s, degraded, calls, tokens,
                     branches, stopped)  # fmt: skip


def test_every_policy_name_parses_and_the_plans_cover_every_graph() -> None:
    for name in POLICIES:
        assert policy_from_name(name).name == name
    assert {graph_label(g) for g in GRAPHS} == {"math", "mapreduce", "calculator"}
    assert all(len(d) == 2 and d[0] < d[1] for d in GRAPHS.values())
    assert PoliciesPlan.quick().tasks < PoliciesPlan().tasks
    assert CATALOG["policies"].plot is plot_policies


def test_jobs_are_every_pair_once_in_a_seeded_order() -> None:
    jobs = interleaved_jobs((2.0, 4.0), POLICIES, random.Random(3))
    assert sorted(jobs) == sorted((d, p) for d in (2.0, 4.0) for p in POLICIES)
    assert jobs == interleaved_jobs((2.0, 4.0), POLICIES, random.Random(3))
    assert jobs != interleaved_jobs((2.0, 4.0), POLICIES, random.Random(4))


def test_an_overrun_is_wrong_and_outside() -> None:
    runs = [
        run(task=0, correct=True, elapsed_s=2.1),  # inside: 2.0 + 0.1 margin
        run(task=1, correct=True, elapsed_s=2.11),  # past the margin: wrong
        run(task=2, correct=False, elapsed_s=1.0, degraded=True, stopped=True),
        run(task=3, correct=True, elapsed_s=0.5, calls=1, tokens=10, branches=4.0),
    ]
    (row,) = policy_rows(runs, margin_s=0.1)
    assert row == {
        "graph": "math", "deadline_s": 2.0, "policy": "equal", "accuracy": 0.5,
        "inside": 0.75, "degraded": 0.25, "stopped": 0.25, "llm_calls": 2.5,
        "tokens": 25.0, "branches": 1.75, "elapsed_s": 1.427, "tasks": 4,
    }  # fmt: skip


def test_rows_go_by_graph_then_deadline_then_policy_order() -> None:
    runs = [
        run(CALC, 5.0, "critical_path"),
        run(MATH, 4.0, "marginal_utility"),
        run(CALC, 3.0, "equal"),
        run(MATH, 2.0, "critical_path"),
        run(MATH, 2.0, "equal"),
        run(MATH, 2.0, "my_own"),
    ]
    keys = [(r["graph"], r["deadline_s"], r["policy"]) for r in policy_rows(runs, 0.1)]
    assert keys == [
        ("calculator", 3.0, "equal"),
        ("calculator", 5.0, "critical_path"),
        ("math", 2.0, "equal"),
        ("math", 2.0, "critical_path"),
        ("math", 2.0, "my_own"),
        ("math", 4.0, "marginal_utility"),
    ]


def test_best_policies_list_ties_and_the_spread() -> None:
    runs = [
        run(policy="equal", correct=True),
        run(policy="critical_path", correct=True),
        run(policy="proportional", correct=False, elapsed_s=3.0),
    ]
    (best,) = best_policies(policy_rows(runs, 0.1))
    assert best == {"graph": "math", "deadline_s": 2.0, "best": "equal, critical_path",
                    "best_accuracy": 1.0, "spread": 1.0, "min_inside": 0.0, "tasks": 1}  # fmt: skip


@pytest.mark.parametrize(
    ("reason", "stopped"),
    [
        (None, False),
        ("drained at the soft deadline (0.250s reserve)", True),
        ("hard deadline of 2.000s reached", True),
        ("1 of 3 LLM calls degraded (cut, refused, failed over)", False),
    ],
)
def test_stopped_reads_the_run_reason(reason: str | None, stopped: bool) -> None:
    assert stopped_by_deadline(reason) is stopped


def test_the_plot_is_written(tmp_path: Path) -> None:
    runs = [run(g, d, p, correct=i % 2 == 0) for i, (g, d, p) in enumerate(
        (g, d, p) for g in (MATH, CALC) for d in (2.0, 4.0) for p in POLICIES)]  # fmt: skip
    path = plot_policies(policy_rows(runs, 0.1), tmp_path / "p.png", "title")
    assert path.read_bytes().startswith(b"\x89PNG")
