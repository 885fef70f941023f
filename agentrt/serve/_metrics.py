"""Where the server's metrics go: the one place that wires ``agentrt serve`` to
agentrt's OpenTelemetry metrics (:mod:`agentrt.tracing`, docs/tracing.md).

A refused run is counted on ``agentrt.admission.refusals`` by reason
(:func:`count_refusal`); ``GET /metrics`` answers the Prometheus text exposition
of every agentrt metric (:func:`metrics_response`), collected in a worker thread
so a scrape never holds up the event loop. The exposition is empty until the
meter provider is configured: ``agentrt serve`` does that at each worker's
start-up (:func:`start_telemetry`, no JSONL trace files: a server exports spans
over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set); an application embedding
:func:`~agentrt.serve.create_app` configures its own or passes ``telemetry=True``.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from agentrt.tracing import (
    TracingSettings,
    count_admission_refusal,
    ensure_tracing,
    metrics_exposition,
)

__all__ = ["count_refusal", "metrics_response", "start_telemetry"]


def count_refusal(reason: str) -> None:
    """Count one refused run (``reason``: ``in_flight``, ``deadline_too_short``)."""
    count_admission_refusal(reason)


async def metrics_response(request: Request) -> Response:
    """``GET /metrics``: the Prometheus text exposition and its content type."""
    body, content_type = await asyncio.to_thread(metrics_exposition)
    return Response(body, media_type=content_type)


def start_telemetry() -> None:
    """Configure agentrt's tracer and meter providers from the environment, as a
    server does (no JSONL files; OTLP when configured; a Prometheus reader)."""
    ensure_tracing(TracingSettings.from_env(local=False))
