"""What the pool tells its caller about a request, as typed records.

The pool does no instrumentation of its own: it reports where each attempt
goes (:class:`RequestSent`) to the caller's ``on_endpoint`` hook, and the
layers above (the executor, and through it the tracing observer) decide what
to record. Outgoing headers such as W3C ``traceparent`` come in from the
caller in ``headers``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["OnEndpoint", "RequestSent"]


@dataclass(frozen=True)
class RequestSent:
    """One attempt of a request, told before it is sent: the endpoint it goes
    to and what the pool knows of that endpoint."""

    url: str
    address: tuple[str, int]
    group: str
    model: str
    vllm: bool
    """Whether the endpoint answered ``/version`` as vLLM does."""
    draft_tokens: int | None = None
    """Speculative tokens per step, on a speculative-decoding endpoint."""


OnEndpoint = Callable[[RequestSent], None]
"""Told each attempt a request makes, before its response headers arrive."""
