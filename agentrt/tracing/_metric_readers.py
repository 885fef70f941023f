"""Where metrics go: a meter provider with agentrt's metric readers.

``prometheus`` is a pull reader: :class:`PrometheusMetricReader` on a
:class:`~prometheus_client.CollectorRegistry` of its own (never the process's
global one, so configuring twice in one process, as tests do, registers
nothing twice), read by :func:`agentrt.tracing.metrics_exposition` when the
server's ``GET /metrics`` is scraped. ``otlp`` and ``console`` push from a
:class:`PeriodicExportingMetricReader` thread every
``OTEL_METRIC_EXPORT_INTERVAL`` ms (default 60 s), never from the event loop;
the OTLP exporter reads its endpoint, headers and timeout from the
``OTEL_EXPORTER_OTLP[_METRICS]_*`` variables itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry

from agentrt.core._errors import ConfigurationError
from agentrt.tracing._otlp import otlp_exporter

__all__ = ["METRIC_EXPORTER_NAMES", "MeterSetup", "build_meter_provider"]

METRIC_EXPORTER_NAMES = ("prometheus", "otlp", "console")


@dataclass(frozen=True)
class MeterSetup:
    """A meter provider, its readers and, with a Prometheus reader, the registry it fills."""

    provider: MeterProvider
    readers: tuple[MetricReader, ...]
    registry: CollectorRegistry | None


def _prometheus_reader(registry: CollectorRegistry) -> MetricReader:
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
    except ImportError as exc:
        raise ConfigurationError(
            "the prometheus metric exporter needs the package opentelemetry-exporter-prometheus"
        ) from exc
    return PrometheusMetricReader(registry=registry)


def build_meter_provider(
    exporters: Sequence[str], resource: Resource, *, otlp_protocol: str = "http/protobuf"
) -> MeterSetup:
    """A meter provider with one reader per name in ``exporters``
    (:data:`METRIC_EXPORTER_NAMES`); none: a provider that records and keeps nothing."""
    readers: list[MetricReader] = []
    registry: CollectorRegistry | None = None
    for name in dict.fromkeys(exporters):
        if name == "prometheus":
            registry = CollectorRegistry()
            readers.append(_prometheus_reader(registry))
        elif name == "otlp":
            readers.append(PeriodicExportingMetricReader(otlp_exporter(otlp_protocol, "metric")))
        elif name == "console":
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
        else:
            raise ConfigurationError(
                f"unknown metric exporter {name!r}; choose from {list(METRIC_EXPORTER_NAMES)}"
            )
    provider = MeterProvider(metric_readers=readers, resource=resource)
    return MeterSetup(provider, tuple(readers), registry)
