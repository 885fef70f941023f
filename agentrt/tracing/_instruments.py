"""agentrt's metric instruments, and what one LLM call or one run records on them.

Per LLM call (one executor call: one ``chat`` span), the OpenTelemetry GenAI
client metrics with the conventions' names, units, attributes and bucket
boundaries: ``gen_ai.client.operation.duration``, ``gen_ai.client.token.usage``
and ``gen_ai.client.operation.time_to_first_chunk``; and agentrt's own, under
``agentrt.``: the slice allocated and used and the latency-prediction error of
each call; runs by outcome, SLA met or missed and the overshoot of each run;
admission refusals.

The spans hand over typed records as they end (:class:`CallMeasurement`,
:class:`RunMeasurement`); the decisions (a run's outcome, whether it met its
SLA, a refusal's reason) are pure functions. Values that come from a
configuration or a server (model, address, graph, node, group) are redacted
and cut, and nothing per run is an attribute (no ids, no prompts), so the
series stay few.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.metrics import MeterProvider
from opentelemetry.util.types import AttributeValue

from agentrt.core._redact import redact, truncate_redacted
from agentrt.tracing._attributes import AGENTRT, ERROR_TYPE, GEN_AI, SERVER_ADDRESS, SERVER_PORT

__all__ = [
    "DURATION_BUCKETS_S",
    "METER_NAME",
    "METRIC",
    "OTHER",
    "OVERSHOOT_BUCKETS_S",
    "PREDICTION_ERROR_BUCKETS_S",
    "SLA_GRACE_S",
    "TOKEN_BUCKETS",
    "CallMeasurement",
    "Metrics",
    "RunMeasurement",
    "admission_reason",
    "error_class",
    "overshoot_s",
    "run_measurement",
    "run_outcome",
    "sla_met",
]

METER_NAME = "agentrt"


class METRIC:
    """Metric names: the GenAI conventions' three, then agentrt's own."""

    OPERATION_DURATION = "gen_ai.client.operation.duration"
    TOKEN_USAGE = "gen_ai.client.token.usage"
    TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"

    RUNS = "agentrt.runs"
    SLA_RUNS = "agentrt.sla.runs"
    OVERSHOOT = "agentrt.run.overshoot"
    SLICE_ALLOCATED = "agentrt.call.slice.allocated"
    SLICE_USED = "agentrt.call.slice.used"
    PREDICTION_ERROR = "agentrt.call.latency.prediction_error"
    ADMISSION_REFUSALS = "agentrt.admission.refusals"


DURATION_BUCKETS_S = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24,
                      20.48, 40.96, 81.92)  # fmt: skip
"""The conventions' boundaries for operation duration and time to first chunk
(also the slices': they span the same range)."""
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)  # fmt: skip
"""The conventions' boundaries for ``gen_ai.client.token.usage``."""
OVERSHOOT_BUCKETS_S = (0.0, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                       10.0)  # fmt: skip
"""Seconds past the deadline: the first bucket holds the runs on time, 0.05 is the SLA's grace."""
PREDICTION_ERROR_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                              30.0)  # fmt: skip
SLA_GRACE_S = 0.050
"""A run meets its SLA when it returns at most this long after its deadline."""
MAX_LABEL_CHARS = 128
"""An attribute value from a configuration or a server, at most (after redaction)."""
MAX_REASONS = 32
"""Distinct admission-refusal reasons kept; later new ones count as :data:`OTHER`."""
OTHER = "_OTHER"
"""The conventions' fallback value (``error.type``), used for any value not kept."""

_CLASS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,127}(?=:|$)")
_REASON = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


@dataclass(frozen=True)
class CallMeasurement:
    """What one executor call measured, as its ``chat`` span ended.

    ``input_tokens``/``output_tokens`` are ``None`` for a call that raised (no
    usage is recorded for it); ``error`` is its ``error.type``, ``None`` when
    it succeeded. ``prediction_error_s`` is actual minus predicted latency
    (the plan's SLA-quantile latency, :attr:`agentrt.tts.Result.latency_error_s`).
    """

    duration_s: float
    provider: str
    model: str | None = None
    server: tuple[str, int] | None = None
    error: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    first_chunk_s: float | None = None
    slice_s: float | None = None
    used_s: float | None = None
    within_slice: bool | None = None
    prediction_error_s: float | None = None
    group: str | None = None
    graph: str | None = None
    node: str | None = None


@dataclass(frozen=True)
class RunMeasurement:
    """How one run ended: its outcome (``ok``, ``degraded``, ``failed``), the
    ``error.type`` of a failed run, its elapsed seconds and its deadline
    (``None``: no finite deadline, so no SLA and no overshoot)."""

    graph: str
    outcome: str
    error: str | None = None
    elapsed_s: float | None = None
    deadline_s: float | None = None


def run_measurement(
    graph: str,
    *,
    elapsed_s: float | None,
    deadline_s: float | None,
    degraded: bool,
    error: str | None = None,
    raised: str | None = None,
) -> RunMeasurement:
    """How a run ended, from what its workflow span saw: ``error`` is the graph's
    failure as the runner wrote it (``"Type: message"``), ``raised`` the
    ``error.type`` of an exception that left the run. A failed run's
    ``error.type`` is the graph's failure when known, else what was raised."""
    kind = error_class(str(error)) if error is not None else raised
    return RunMeasurement(
        graph=graph,
        outcome=run_outcome(raised=raised is not None, error=error, degraded=degraded),
        error=kind,
        elapsed_s=elapsed_s,
        deadline_s=deadline_s if deadline_s is not None and math.isfinite(deadline_s) else None,
    )


def run_outcome(*, raised: bool, error: str | None, degraded: bool) -> str:
    """``failed`` when an exception left the run or its graph failed (``error``),
    ``degraded`` when it returned less than planned, else ``ok``."""
    if raised or error is not None:
        return "failed"
    return "degraded" if degraded else "ok"


def sla_met(elapsed_s: float, deadline_s: float, grace_s: float = SLA_GRACE_S) -> bool:
    """Whether a run returned by its deadline plus the grace."""
    return elapsed_s <= deadline_s + grace_s


def overshoot_s(elapsed_s: float, deadline_s: float) -> float:
    """Seconds past the deadline at return (0 inside it)."""
    return max(0.0, elapsed_s - deadline_s)


def error_class(text: str) -> str:
    """The ``error.type`` of a failure written ``"Type: message"`` (the runner's
    ``RunResult.error``): its class name, else :data:`OTHER`."""
    match = _CLASS_NAME.match(text.strip())
    return match.group(0) if match is not None else OTHER


def admission_reason(reason: str) -> str:
    """``reason`` when it is a short identifier-like word with nothing to redact
    (``queue_full``, ``deadline_too_short``), else :data:`OTHER`: a refusal's
    free text never becomes a series."""
    reason = reason.strip() if isinstance(reason, str) else ""
    if _REASON.fullmatch(reason) is None or redact(reason) != reason:
        return OTHER
    return reason


@functools.lru_cache(maxsize=1024)
def _label(value: str) -> str:
    """A label as recorded: redacted and cut. Cached: a server sees the same few
    models, hosts, graphs and nodes on every call."""
    return truncate_redacted(value, MAX_LABEL_CHARS)


def _seconds(value: float | None) -> float | None:
    """``value`` when it is a finite, non-negative figure to record, else ``None``."""
    return value if value is not None and math.isfinite(value) and value >= 0 else None


class Metrics:
    """agentrt's instruments on one meter provider (see the module).

    Recording is a few in-memory updates under the SDK's locks: no I/O, so
    it is safe on the event loop; readers export on their own threads (OTLP)
    or when scraped (Prometheus).
    """

    def __init__(self, provider: MeterProvider, version: str = "") -> None:
        meter = provider.get_meter(METER_NAME, version or None)
        self.operation_duration = meter.create_histogram(
            METRIC.OPERATION_DURATION, unit="s", description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )  # fmt: skip
        self.token_usage = meter.create_histogram(
            METRIC.TOKEN_USAGE, unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )  # fmt: skip
        self.time_to_first_chunk = meter.create_histogram(
            METRIC.TIME_TO_FIRST_CHUNK, unit="s",
            description="Time to receive the first chunk, measured from when the client issues "
            "the generation request to when the first chunk is received in the response stream.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )  # fmt: skip
        self.runs = meter.create_counter(
            METRIC.RUNS, unit="{run}", description="Runs that ended, by outcome."
        )
        self.sla_runs = meter.create_counter(
            METRIC.SLA_RUNS, unit="{run}",
            description="Runs with a deadline, by whether they returned by it plus 50 ms.",
        )  # fmt: skip
        self.overshoot = meter.create_histogram(
            METRIC.OVERSHOOT, unit="s", description="Seconds past its deadline a run returned.",
            explicit_bucket_boundaries_advisory=OVERSHOOT_BUCKETS_S,
        )  # fmt: skip
        self.slice_allocated = meter.create_histogram(
            METRIC.SLICE_ALLOCATED, unit="s", description="The time slice an LLM call was given.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )  # fmt: skip
        self.slice_used = meter.create_histogram(
            METRIC.SLICE_USED, unit="s", description="The time an LLM call took of its slice.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )  # fmt: skip
        self.prediction_error = meter.create_histogram(
            METRIC.PREDICTION_ERROR, unit="s",
            description="|actual - predicted| latency of an LLM call; "
            "agentrt.prediction.direction says which way.",
            explicit_bucket_boundaries_advisory=PREDICTION_ERROR_BUCKETS_S,
        )  # fmt: skip
        self.admission_refusals = meter.create_counter(
            METRIC.ADMISSION_REFUSALS, unit="{request}",
            description="Requests the server refused to admit, by reason.",
        )  # fmt: skip
        self._reasons: set[str] = set()
        self._lock = threading.Lock()

    def record_call(self, m: CallMeasurement) -> None:
        """The GenAI client metrics and agentrt's per-call ones for one call."""
        genai: dict[str, AttributeValue] = {
            GEN_AI.OPERATION_NAME: GEN_AI.CHAT,
            GEN_AI.PROVIDER_NAME: _label(m.provider),
        }
        if m.model is not None:
            genai[GEN_AI.REQUEST_MODEL] = _label(m.model)
        if m.server is not None:
            genai[SERVER_ADDRESS] = _label(m.server[0])
            genai[SERVER_PORT] = m.server[1]
        duration = genai if m.error is None else {**genai, ERROR_TYPE: _label(m.error)}
        self.operation_duration.record(max(0.0, m.duration_s), duration)
        if m.input_tokens is not None:
            self.token_usage.record(m.input_tokens, {**genai, GEN_AI.TOKEN_TYPE: GEN_AI.INPUT})
        if m.output_tokens is not None:
            self.token_usage.record(m.output_tokens, {**genai, GEN_AI.TOKEN_TYPE: GEN_AI.OUTPUT})
        if (first_s := _seconds(m.first_chunk_s)) is not None:
            self.time_to_first_chunk.record(first_s, genai)
        own = _where(m.graph, m.node)
        if (slice_s := _seconds(m.slice_s)) is not None:
            self.slice_allocated.record(slice_s, own)
        if (used_s := _seconds(m.used_s)) is not None:
            used = own if m.within_slice is None else {**own, AGENTRT.WITHIN_SLICE: m.within_slice}
            self.slice_used.record(used_s, used)
        error_s = m.prediction_error_s
        if error_s is not None and math.isfinite(error_s):
            attrs = {**own, AGENTRT.PREDICTION_DIRECTION: "slower" if error_s > 0 else "faster"}
            if m.group is not None:
                attrs[AGENTRT.GROUP] = _label(m.group)
            self.prediction_error.record(abs(error_s), attrs)

    def record_run(self, m: RunMeasurement) -> None:
        """The run's outcome and, with a finite deadline, its SLA and overshoot."""
        graph: dict[str, AttributeValue] = {AGENTRT.GRAPH: _label(m.graph)}
        outcome: dict[str, AttributeValue] = {**graph, AGENTRT.RUN_OUTCOME: m.outcome}
        if m.error is not None:
            outcome[ERROR_TYPE] = _label(m.error)
        self.runs.add(1, outcome)
        if m.elapsed_s is None or m.deadline_s is None or not math.isfinite(m.deadline_s):
            return
        met = sla_met(m.elapsed_s, m.deadline_s)
        self.sla_runs.add(1, {**graph, AGENTRT.SLA_OUTCOME: "met" if met else "missed"})
        self.overshoot.record(overshoot_s(m.elapsed_s, m.deadline_s), graph)

    def count_admission_refusal(self, reason: str) -> None:
        """One request refused; at most :data:`MAX_REASONS` distinct reasons are kept."""
        kept = admission_reason(reason)
        with self._lock:
            if kept not in self._reasons:
                if len(self._reasons) >= MAX_REASONS:
                    kept = OTHER
                self._reasons.add(kept)
        self.admission_refusals.add(1, {AGENTRT.ADMISSION_REASON: kept})


def _where(graph: str | None, node: str | None) -> Mapping[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {}
    if graph is not None:
        attrs[AGENTRT.GRAPH] = _label(graph)
    if node is not None:
        attrs[AGENTRT.NODE] = _label(node)
    return attrs
