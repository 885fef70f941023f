"""OpenTelemetry metrics of every run and LLM call, recorded where their spans end.

The ``chat`` span of each executor call records the GenAI client metrics and
agentrt's per-call ones as it ends (:func:`record_call`); the workflow span of
each run records the run's outcome, SLA and overshoot (:func:`record_run`); an
HTTP server counts what it refuses to admit (:func:`count_admission_refusal`)
and serves :func:`metrics_exposition` at ``GET /metrics``. Names, units and
attributes are in :mod:`agentrt.tracing._instruments` and docs/tracing.md.

Instruments go to, in order: a meter provider made current with
:func:`use_meter_provider` (tests), the one :func:`configure_tracing` set up
beside its tracer provider, or the application's global OpenTelemetry one.

Recording is always on and cheap (in-memory aggregation, no I/O), so it never
blocks the event loop; a failure while recording is logged on the ``agentrt``
logger (``log_dropped``) and never raised into a run or a call.
"""

from __future__ import annotations

import contextvars
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import metrics
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from agentrt.core._log import log_dropped
from agentrt.tracing._instruments import CallMeasurement, Metrics, RunMeasurement
from agentrt.tracing._setup import _version, current_tracing

if TYPE_CHECKING:
    from agentrt.tracing._chat import CallTrace

__all__ = [
    "EXPOSITION_CONTENT_TYPE",
    "call_measurement",
    "count_admission_refusal",
    "current_metrics",
    "metrics_exposition",
    "record_call",
    "record_run",
    "use_meter_provider",
]

EXPOSITION_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The Prometheus text format 0.0.4, which every Prometheus version scrapes."""

_override: contextvars.ContextVar[Metrics | None] = contextvars.ContextVar(
    "agentrt_meter_provider", default=None
)
_lock = threading.Lock()
_global: tuple[metrics.MeterProvider, Metrics] | None = None
"""Instruments on the application's global meter provider, made once per provider
(process-wide, as that provider is: making them again would duplicate them)."""


@contextmanager
def use_meter_provider(provider: metrics.MeterProvider) -> Iterator[Metrics]:
    """Record agentrt's metrics on ``provider`` inside the block (tests, embedding)."""
    instruments = Metrics(provider, _version())
    token = _override.set(instruments)
    try:
        yield instruments
    finally:
        _override.reset(token)


def current_metrics() -> Metrics:
    """The instruments agentrt records on in this context (see the module)."""
    override = _override.get()
    if override is not None:
        return override
    tracing = current_tracing()
    if tracing is not None:
        return tracing.metrics
    global _global
    provider = metrics.get_meter_provider()
    with _lock:
        if _global is None or _global[0] is not provider:
            _global = (provider, Metrics(provider, _version()))
        return _global[1]


def record_call(measurement: CallMeasurement) -> None:
    """Record one executor call (what its ``chat`` span calls as it ends)."""
    try:
        current_metrics().record_call(measurement)
    except Exception as exc:  # metrics must never cost a call its result
        log_dropped("recording call metrics failed", exc)


def record_run(measurement: RunMeasurement) -> None:
    """Record one run (what its workflow span calls as it ends)."""
    try:
        current_metrics().record_run(measurement)
    except Exception as exc:  # metrics must never cost a run its result
        log_dropped("recording run metrics failed", exc)


def count_admission_refusal(reason: str) -> None:
    """Count one request the server refused to admit, by ``reason``: a short
    identifier (``queue_full``, ``deadline_too_short``, ``draining``); free
    text, or anything that looks like a credential, counts as ``_OTHER``."""
    try:
        current_metrics().count_admission_refusal(reason)
    except Exception as exc:  # counting must never fail the request it refuses
        log_dropped("counting an admission refusal failed", exc)


def metrics_exposition() -> tuple[bytes, str]:
    """The Prometheus text exposition of agentrt's metrics and its content
    type, for ``GET /metrics``: the reader of the provider
    :func:`configure_tracing` set up (an empty body before it is, or without
    a Prometheus reader). Collecting is CPU work proportional to the series
    (milliseconds); a server may run it in a worker thread."""
    tracing = current_tracing()
    registry = tracing.metrics_registry if tracing is not None else None
    body = b"" if registry is None else generate_latest(registry)
    return body, EXPOSITION_CONTENT_TYPE


def call_measurement(
    call: CallTrace,
    duration_s: float,
    error: str | None,
    *,
    graph: str | None = None,
    node: str | None = None,
) -> CallMeasurement:
    """What :func:`record_call` records for the call ``call`` traced: ``error``
    is the ``error.type`` of an exception that left it, else ``deadline_exceeded``
    when its slice cut branches short (as on the span)."""
    result = call.result
    if result is None:  # the call raised: its duration, and no usage
        return CallMeasurement(
            duration_s, call.provider, call.model, call.server, error,
            slice_s=call.slice_s, used_s=duration_s, graph=graph, node=node,
        )  # fmt: skip
    plan = result.plan
    slice_s = plan.slice_s if math.isfinite(plan.slice_s) else None
    return CallMeasurement(
        duration_s=duration_s,
        provider=call.provider,
        model=call.model,
        server=call.server,
        error=error or ("deadline_exceeded" if call.cut else None),
        input_tokens=result.prompt_tokens,
        output_tokens=result.completion_tokens,
        first_chunk_s=call.first_chunk_s,
        slice_s=slice_s,
        used_s=result.latency_s,
        within_slice=None if slice_s is None else result.latency_s <= slice_s,
        prediction_error_s=result.latency_error_s,
        group=plan.config.group if plan.config is not None else None,
        graph=graph,
        node=node,
    )
