"""The W3C ``traceparent`` header on every chat request.

A vLLM server started with ``--otlp-traces-endpoint`` continues the trace it
receives: its ``llm_request`` span (queue, prefill, decode times) lands under
the call's ``chat`` span. Only the W3C trace context is sent (no baggage),
whatever propagators the application configured. The executor asks its
observer for these headers (:meth:`CallTrace.outgoing_headers`) and hands
them to the pool, which adds none of its own.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["TRACEPARENT", "outgoing_headers"]

TRACEPARENT = "traceparent"
_W3C = TraceContextTextMapPropagator()


def outgoing_headers(headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """``headers`` plus ``traceparent`` (and ``tracestate``) for the span current now."""
    out = dict(headers or {})
    _W3C.inject(out)
    return out
