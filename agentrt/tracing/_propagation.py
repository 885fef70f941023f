"""The W3C ``traceparent`` header on every chat request.

A vLLM server started with ``--otlp-traces-endpoint`` continues the trace it
receives: its ``llm_request`` span (queue, prefill, decode times) lands under
the call's ``chat`` span. Only the W3C trace context is sent (no baggage),
whatever propagators the application configured.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agentrt.tracing._chat import note_endpoint

__all__ = ["TRACEPARENT", "outgoing_headers"]

TRACEPARENT = "traceparent"
_W3C = TraceContextTextMapPropagator()


def outgoing_headers(
    headers: Mapping[str, str] | None,
    *,
    url: str,
    address: tuple[str, int],
    model: str,
    group: str,
    vllm: bool,
    draft_tokens: int | None = None,
) -> dict[str, str]:
    """``headers`` plus ``traceparent`` (and ``tracestate``) for the span current
    now; notes the endpoint on the call being traced, if any."""
    out = dict(headers or {})
    _W3C.inject(out)
    note_endpoint(
        url=url, address=address, model=model, group=group, vllm=vllm, draft_tokens=draft_tokens
    )
    return out
