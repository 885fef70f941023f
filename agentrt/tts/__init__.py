"""Latency-aware test-time scaling: answer specs, strategies, voting, scorers,
latency / length / accuracy models, the planner, and the anytime executor
(:class:`TTSExecutor`) that streams a call's branches on the pool.

Everything but the executor is pure and server-free; the executor talks to
the servers through the pool's :class:`~agentrt.pool.Backend` seam and tells
what it did to a :class:`CallObserver`.
"""

from agentrt.pool._endpoint import PLAIN_GROUP, SPEC_GROUP
from agentrt.tts._accuracy import (
    AccuracyEstimator,
    AccuracyModel,
    AccuracyPrior,
    MeasuredAccuracy,
    majority_accuracy,
    plurality_accuracy,
)
from agentrt.tts._actions import (
    Action,
    ActionSpec,
    InvalidToolCall,
    StructuredSpec,
    ToolCall,
    action_verifier,
    canonical_json,
    check_tool_definition,
    constrained_instructions,
    constrained_messages,
    constrained_schema,
    parse_action,
)
from agentrt.tts._answers import (
    Answer,
    AnswerSpec,
    BoxedAnswer,
    ChoiceLetter,
    JsonField,
    LastNumber,
    NormalisedString,
)
from agentrt.tts._branch import BranchSource, BranchView
from agentrt.tts._calibrate import CalibrationPlan, calibrate, load_latency_models
from agentrt.tts._calibration_store import CalibrationChoice, resolve_latency
from agentrt.tts._config import StrategyName, TTSConfig
from agentrt.tts._curve import Curve
from agentrt.tts._executor import CallModels, QueryAccuracy, TTSExecutor
from agentrt.tts._greedy_search import plan_greedy_parallelism
from agentrt.tts._hedging import HedgePolicy, TokenBucket
from agentrt.tts._latency import LatencyModel, SpeculativeModel, TTFTModel
from agentrt.tts._length import LengthModel
from agentrt.tts._length_online import LengthState, OnlineLength
from agentrt.tts._math_answers import MathEquivalent
from agentrt.tts._observer import CallObserver, CallRecorder, CallStarted, NoObserver
from agentrt.tts._online import (
    LatencyObservation,
    OnlineLatency,
    OnlineState,
    stream_observations,
)
from agentrt.tts._planner import (
    Plan,
    PlanInputs,
    Prediction,
    SearchSpace,
    plan_for_deadline,
    plan_with_penalty,
    predict,
)
from agentrt.tts._result import BranchCounts, Result
from agentrt.tts._scorers import MeanLogprobScorer, RewardModelScorer, Scorer, VerifierScorer
from agentrt.tts._strategies import (
    Beam,
    BestOfN,
    Majority,
    RequestOptions,
    Single,
    Strategy,
    Weighted,
    strategy_for,
)
from agentrt.tts._voting import (
    Decision,
    best_of_n_vote,
    majority_can_stop,
    majority_vote,
    weighted_can_stop,
    weighted_vote,
)

__all__ = [
    "PLAIN_GROUP",
    "SPEC_GROUP",
    "AccuracyEstimator",
    "AccuracyModel",
    "AccuracyPrior",
    "Action",
    "ActionSpec",
    "Answer",
    "AnswerSpec",
    "Beam",
    "BestOfN",
    "BoxedAnswer",
    "BranchCounts",
    "BranchSource",
    "BranchView",
    "CalibrationChoice",
    "CalibrationPlan",
    "CallModels",
    "CallObserver",
    "CallRecorder",
    "CallStarted",
    "ChoiceLetter",
    "Curve",
    "Decision",
    "HedgePolicy",
    "InvalidToolCall",
    "JsonField",
    "LastNumber",
    "LatencyModel",
    "LatencyObservation",
    "LengthModel",
    "LengthState",
    "Majority",
    "MathEquivalent",
    "MeanLogprobScorer",
    "MeasuredAccuracy",
    "NoObserver",
    "NormalisedString",
    "OnlineLatency",
    "OnlineLength",
    "OnlineState",
    "Plan",
    "PlanInputs",
    "Prediction",
    "QueryAccuracy",
    "RequestOptions",
    "Result",
    "RewardModelScorer",
    "Scorer",
    "SearchSpace",
    "Single",
    "SpeculativeModel",
    "Strategy",
    "StrategyName",
    "StructuredSpec",
    "TTFTModel",
    "TTSConfig",
    "TTSExecutor",
    "TokenBucket",
    "ToolCall",
    "VerifierScorer",
    "Weighted",
    "action_verifier",
    "best_of_n_vote",
    "calibrate",
    "canonical_json",
    "check_tool_definition",
    "constrained_instructions",
    "constrained_messages",
    "constrained_schema",
    "load_latency_models",
    "majority_accuracy",
    "majority_can_stop",
    "majority_vote",
    "parse_action",
    "plan_for_deadline",
    "plan_greedy_parallelism",
    "plan_with_penalty",
    "plurality_accuracy",
    "predict",
    "resolve_latency",
    "strategy_for",
    "stream_observations",
    "weighted_can_stop",
    "weighted_vote",
]
