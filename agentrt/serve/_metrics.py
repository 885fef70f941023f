"""Where the server's metrics go: the one place that wires ``agentrt serve`` to
agentrt's OpenTelemetry metrics (:mod:`agentrt.tracing`, docs/tracing.md).

A refused run is counted on ``agentrt.admission.refusals`` by reason
(:func:`count_refusal`); ``GET /metrics`` answers the Prometheus text exposition
of every agentrt metric (:func:`metrics_response`), collected in a worker thread
so a scrape never holds up the event loop. With several worker processes on one
port (``--workers N``) a scrape reaches one of them, so each worker also
publishes its exposition to a directory they share (:class:`SharedMetrics`,
every :data:`PUBLISH_S`), and the one scraped answers all of them, each series
labelled ``worker="<pid>"``. The exposition is empty until the
meter provider is configured: ``agentrt serve`` does that at each worker's
start-up (:func:`start_telemetry`, no JSONL trace files: a server exports spans
over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set); an application embedding
:func:`~agentrt.serve.create_app` configures its own or passes ``telemetry=True``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from agentrt.core._files import atomic_write_text
from agentrt.core._log import log_dropped
from agentrt.tracing import (
    TracingSettings,
    count_admission_refusal,
    ensure_tracing,
    merge_expositions,
    metrics_exposition,
)
from agentrt.tracing._metrics import EXPOSITION_CONTENT_TYPE

__all__ = ["PUBLISH_S", "SharedMetrics", "count_refusal", "metrics_response", "start_telemetry"]

PUBLISH_S = 2.0
"""How often each worker publishes its metrics for the others to answer."""
STALE_S = 5 * PUBLISH_S
"""A worker's published metrics older than this are left out (it has exited)."""


def count_refusal(reason: str) -> None:
    """Count one refused run (``reason``: ``in_flight``, ``deadline_too_short``)."""
    count_admission_refusal(reason)


async def metrics_response(request: Request) -> Response:
    """``GET /metrics``: the Prometheus text exposition and its content type (every
    worker's, with a :class:`SharedMetrics` in ``app.state.shared_metrics``)."""
    shared: SharedMetrics | None = getattr(request.app.state, "shared_metrics", None)
    if shared is not None:
        body = await asyncio.to_thread(shared.collect)
        return Response(body, media_type=EXPOSITION_CONTENT_TYPE)
    body, content_type = await asyncio.to_thread(metrics_exposition)
    return Response(body, media_type=content_type)


class SharedMetrics:
    """The metrics of the worker processes of one ``agentrt serve``: each writes
    its exposition to ``directory/worker-<pid>.prom`` (atomically, every
    :data:`PUBLISH_S`, and at shutdown); :meth:`collect` merges the fresh ones,
    this worker's read live."""

    def __init__(self, directory: Path, worker: str | None = None) -> None:
        self.directory = directory
        self.worker = worker or str(os.getpid())

    @property
    def path(self) -> Path:
        return self.directory / f"worker-{self.worker}.prom"

    def publish(self) -> None:
        atomic_write_text(self.path, metrics_exposition()[0].decode())

    async def publish_forever(self) -> None:
        """Publish every :data:`PUBLISH_S` until cancelled (then once more)."""
        try:
            while True:
                try:
                    await asyncio.to_thread(self.publish)
                except OSError as exc:  # a full or vanished directory: the next try
                    log_dropped("publishing this worker's metrics", exc)
                await asyncio.sleep(PUBLISH_S)
        finally:
            with contextlib.suppress(OSError):
                self.publish()

    def collect(self) -> bytes:
        """Every live worker's exposition as one, each series labelled by worker."""
        texts = {self.worker: metrics_exposition()[0].decode()}
        now = time.time()
        for path in self.directory.glob("worker-*.prom"):
            worker = path.stem.removeprefix("worker-")
            if worker == self.worker:
                continue
            try:
                if now - path.stat().st_mtime <= STALE_S:
                    texts[worker] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):  # gone between listing and reading
                continue
        return merge_expositions(texts).encode()


def start_telemetry() -> None:
    """Configure agentrt's tracer and meter providers from the environment, as a
    server does (no JSONL files; OTLP when configured; a Prometheus reader)."""
    ensure_tracing(TracingSettings.from_env(local=False))
