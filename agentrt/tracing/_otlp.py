"""The OTLP exporters, for spans and for metrics, over gRPC or HTTP: imported on
first use (each transport is its own package) with one clear error when the
transport's package is missing."""

from __future__ import annotations

import importlib
from typing import Any, Literal

from agentrt.core._errors import ConfigurationError

__all__ = ["otlp_exporter"]

_CLASS = {"trace": "OTLPSpanExporter", "metric": "OTLPMetricExporter"}


def otlp_exporter(protocol: str, signal: Literal["trace", "metric"]) -> Any:
    """A new OTLP exporter of ``signal`` over ``protocol`` (``grpc``, else HTTP),
    configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables."""
    package = "grpc" if protocol == "grpc" else "http"
    try:
        module = importlib.import_module(
            f"opentelemetry.exporter.otlp.proto.{package}.{signal}_exporter"
        )
    except ImportError as exc:
        raise ConfigurationError(
            f"OTLP over {protocol} needs the package opentelemetry-exporter-otlp-proto-{package}"
        ) from exc
    return getattr(module, _CLASS[signal])()
