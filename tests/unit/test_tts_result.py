"""The executor's result type and the tts namespace."""

from __future__ import annotations

import inspect

import pytest

import agentrt.tts
from agentrt.core._errors import ConfigurationError
from agentrt.tts._answers import LastNumber
from agentrt.tts._branch import BranchView
from agentrt.tts._config import TTSConfig
from agentrt.tts._planner import Plan, Prediction
from agentrt.tts._result import BranchCounts, Result
from agentrt.tts._voting import majority_vote

CONFIG = TTSConfig("majority", 4, temperature=0.7)
PLAN = Plan(
    objective="deadline",
    config=CONFIG,
    prediction=Prediction(CONFIG, 2.0, 1.5, 400.0, 0.6, 0.95),
    reason="deadline: test",
    slice_s=3.0,
    considered=10,
    fitting=4,
)
DECISION = majority_vote(
    [BranchView(0, "= 7", True), BranchView(1, "= 7", True), BranchView(2, "= 5", True)],
    LastNumber(),
)


def result(**overrides: object) -> Result:
    base: dict[str, object] = {
        "text": "= 7",
        "answer": DECISION.answer,
        "decision": DECISION,
        "plan": PLAN,
        "latency_s": 2.5,
        "completion_tokens": 300,
        "prompt_tokens": 20,
        "branches": BranchCounts(requested=4, finished=3, early_stopped=1),
        "tokens_saved_by_early_stop": 80,
    }
    base.update(overrides)
    return Result(**base)  # type: ignore[arg-type]


def test_result_reports_predicted_against_actual() -> None:
    r = result()
    assert r.config == CONFIG and r.votes == {"7": 2.0, "5": 1.0}
    assert r.predicted_latency_s == 2.0 and r.predicted_tokens == 400.0
    assert r.latency_error_s == pytest.approx(0.5)
    assert not r.degraded and r.degraded_reason is None


def test_degraded_needs_a_reason_and_vice_versa() -> None:
    assert result(degraded=True, degraded_reason="cut by the deadline").degraded
    with pytest.raises(ConfigurationError, match="degraded"):
        result(degraded=True)
    with pytest.raises(ConfigurationError, match="degraded"):
        result(degraded_reason="why?")


def test_refused_plan_has_no_predictions() -> None:
    refused = Plan("deadline", None, None, "refused: too slow", 0.1, 10, 0)
    r = result(plan=refused, degraded=True, degraded_reason="refused")
    assert refused.refused and r.config is None
    assert r.predicted_latency_s is None and r.latency_error_s is None


def test_branch_counts_must_add_up() -> None:
    with pytest.raises(ConfigurationError, match="exceed requested"):
        BranchCounts(requested=2, finished=2, cancelled=1)
    with pytest.raises(ConfigurationError, match="finished"):
        BranchCounts(requested=2, finished=-1)


def test_tts_exports_exactly_its_public_names() -> None:
    exported = agentrt.tts.__all__
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n))
    for name in exported:
        assert getattr(agentrt.tts, name) is not None
    public = {
        n
        for n in dir(agentrt.tts)
        if not n.startswith("_") and not inspect.ismodule(getattr(agentrt.tts, n))
    }
    assert public == set(exported)
