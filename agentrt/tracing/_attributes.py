"""Span names and attribute keys: the OpenTelemetry GenAI ones and agentrt's own.

Every ``gen_ai.*``, ``server.*``, ``error.*`` and ``exception.*`` key here is defined by the
OpenTelemetry semantic conventions (a test checks each against the
``opentelemetry-semantic-conventions`` package); everything agentrt adds lives
under ``agentrt.``. Seconds are ``_s``, tokens are counts.
"""

from __future__ import annotations

import asyncio

from agentrt.core._errors import DeadlineExceeded

__all__ = [
    "AGENTRT",
    "ERROR_TYPE",
    "EXCEPTION_MESSAGE",
    "EXCEPTION_STACKTRACE",
    "EXCEPTION_TYPE",
    "GEN_AI",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "error_type",
]


class GEN_AI:
    """Keys and values from the GenAI semantic conventions (development status)."""

    OPERATION_NAME = "gen_ai.operation.name"
    PROVIDER_NAME = "gen_ai.provider.name"
    REQUEST_MODEL = "gen_ai.request.model"
    REQUEST_CHOICE_COUNT = "gen_ai.request.choice.count"
    REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
    REQUEST_TEMPERATURE = "gen_ai.request.temperature"
    REQUEST_TOP_P = "gen_ai.request.top_p"
    REQUEST_SEED = "gen_ai.request.seed"
    REQUEST_STREAM = "gen_ai.request.stream"
    RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
    RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
    USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
    USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
    INPUT_MESSAGES = "gen_ai.input.messages"
    OUTPUT_MESSAGES = "gen_ai.output.messages"
    WORKFLOW_NAME = "gen_ai.workflow.name"
    TOOL_NAME = "gen_ai.tool.name"
    TOOL_TYPE = "gen_ai.tool.type"
    TOOL_CALL_ID = "gen_ai.tool.call.id"
    TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
    TOOL_CALL_RESULT = "gen_ai.tool.call.result"
    TOKEN_TYPE = "gen_ai.token.type"  # metrics: gen_ai.client.token.usage

    # values of gen_ai.operation.name
    CHAT = "chat"
    EXECUTE_TOOL = "execute_tool"
    INVOKE_WORKFLOW = "invoke_workflow"

    # values of gen_ai.token.type
    INPUT = "input"
    OUTPUT = "output"


SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_STACKTRACE = "exception.stacktrace"


class AGENTRT:
    """agentrt's own keys (never under ``gen_ai.``)."""

    # the run (workflow span)
    RUN_ID = "agentrt.run.id"
    GRAPH = "agentrt.graph"
    TASK_SEED = "agentrt.run.task_seed"
    PROFILE = "agentrt.run.profile"
    RUN_CORRECT = "agentrt.run.correct"
    RUN_ANSWER = "agentrt.run.answer"
    RUN_DEGRADED = "agentrt.run.degraded"
    RUN_DEADLINE_MET = "agentrt.run.deadline_met"
    RUN_CALLS = "agentrt.run.calls"
    RUN_TOKENS = "agentrt.run.tokens"

    # deadlines (workflow and chat spans)
    DEADLINE_S = "agentrt.deadline_s"
    TIME_LEFT_S = "agentrt.time_left_s"
    ELAPSED_S = "agentrt.elapsed_s"

    # a node visit
    NODE = "agentrt.node"
    NODE_STEP = "agentrt.node.step"
    NODE_VISIT = "agentrt.node.visit"
    NODE_ATTEMPT = "agentrt.node.attempt"

    # the budget of one call
    CALL_INDEX = "agentrt.call.index"
    CALL_SITE = "agentrt.call.site"
    SLICE_S = "agentrt.slice_s"
    PLANNED_SLICE_S = "agentrt.slice.planned_s"
    SLICE_STATUS = "agentrt.slice.status"
    POLICY = "agentrt.policy"
    PREDICTED_MIN_S = "agentrt.predicted.min_latency_s"

    # the executor's plan
    OBJECTIVE = "agentrt.tts.objective"
    STRATEGY = "agentrt.tts.strategy"
    N = "agentrt.tts.n"
    GROUP = "agentrt.tts.group"
    SLA_QUANTILE = "agentrt.tts.sla_quantile"
    PLAN_REASON = "agentrt.tts.reason"
    CONFIGS_CONSIDERED = "agentrt.tts.configs_considered"
    CONFIGS_FITTING = "agentrt.tts.configs_fitting"
    PROMPT_TOKENS_ESTIMATE = "agentrt.tts.prompt_tokens_estimate"

    # predicted vs actual
    PREDICTED_LATENCY_S = "agentrt.predicted.latency_s"
    PREDICTED_LATENCY_MEAN_S = "agentrt.predicted.latency_mean_s"
    PREDICTED_TOKENS = "agentrt.predicted.tokens"
    PREDICTED_ACCURACY = "agentrt.predicted.accuracy"
    ACTUAL_LATENCY_S = "agentrt.actual.latency_s"
    ACTUAL_TOKENS = "agentrt.actual.tokens"
    ACTUAL_CORRECT = "agentrt.actual.correct"
    WITHIN_SLICE = "agentrt.within_slice"

    # what happened to the branches
    BRANCHES_FINISHED = "agentrt.branches.finished"
    BRANCHES_EARLY_STOPPED = "agentrt.branches.early_stopped"
    BRANCHES_CANCELLED = "agentrt.branches.cancelled"
    TOKENS_SAVED = "agentrt.tokens_saved_by_early_stop"
    ANSWER = "agentrt.answer"
    VOTES = "agentrt.votes"
    DEGRADED = "agentrt.degraded"
    DEGRADED_REASON = "agentrt.degraded_reason"
    REQUESTS = "agentrt.requests"
    HEDGED = "agentrt.hedge.sent"
    HEDGE_WON = "agentrt.hedge.won"
    HEDGE_BRANCHES = "agentrt.hedge.branches"
    HEDGE_AFTER_S = "agentrt.hedge.after_s"

    # the online latency correction the plan used (agentrt.tts.OnlineLatency)
    ONLINE_TTFT_FACTOR = "agentrt.online.ttft_factor"
    ONLINE_PER_TOKEN_FACTOR = "agentrt.online.per_token_factor"
    ONLINE_UNCERTAINTY = "agentrt.online.uncertainty"
    ONLINE_OBSERVATIONS = "agentrt.online.observations"
    ONLINE_DRIFTS = "agentrt.online.drifts"

    # the endpoint a request went to
    ENDPOINT_URL = "agentrt.endpoint.url"
    ENDPOINT_GROUP = "agentrt.endpoint.group"
    DRAFT_TOKENS = "agentrt.endpoint.draft_tokens"

    # one branch (child span of a chat span)
    BRANCH_INDEX = "agentrt.branch.index"
    BRANCH_REQUEST = "agentrt.branch.request"
    BRANCH_OUTCOME = "agentrt.branch.outcome"
    BRANCH_FINISH_REASON = "agentrt.branch.finish_reason"
    BRANCH_TOKENS = "agentrt.branch.tokens"
    BRANCH_CHUNKS = "agentrt.branch.chunks"
    BRANCH_TTFT_S = "agentrt.branch.ttft_s"
    BRANCH_DECODE_S = "agentrt.branch.decode_s"
    BRANCH_CONCURRENCY = "agentrt.branch.concurrency"
    BRANCH_HEDGE = "agentrt.branch.hedge"

    # a tool call
    TOOL_DURATION_S = "agentrt.tool.duration_s"

    # metric attributes only (agentrt.tracing._instruments)
    RUN_OUTCOME = "agentrt.run.outcome"
    SLA_OUTCOME = "agentrt.sla.outcome"
    PREDICTION_DIRECTION = "agentrt.prediction.direction"
    ADMISSION_REASON = "agentrt.admission.reason"


def error_type(exc: BaseException) -> str:
    """The ``error.type`` of an exception: ``deadline_exceeded`` for a passed
    deadline, ``cancelled`` for a cancelled task or an interrupt, else the
    exception's qualified class name (the convention's fallback)."""
    if isinstance(exc, DeadlineExceeded | TimeoutError):
        return "deadline_exceeded"
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
        return "cancelled"
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
