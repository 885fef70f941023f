"""Text that may quote a server or a configuration, made safe for a span.

Error messages, degraded reasons, endpoint URLs and stack traces can carry an
echoed API key or URL credentials. Each is redacted
(:func:`agentrt.core._redact.redact`) *before* it is cut to length, so a
secret cut in half cannot leak its first half, and cut so one runaway
message cannot bloat every exporter's payload.
"""

from __future__ import annotations

import traceback

from opentelemetry import trace

from agentrt.core._redact import redact, truncate_redacted
from agentrt.tracing._attributes import EXCEPTION_MESSAGE, EXCEPTION_STACKTRACE, EXCEPTION_TYPE

__all__ = [
    "MAX_STACKTRACE_CHARS",
    "MAX_TEXT_CHARS",
    "exception_message",
    "record_exception_event",
    "safe_text",
]

MAX_TEXT_CHARS = 2_000
"""A status description, reason or message on a span, at most."""
MAX_STACKTRACE_CHARS = 16_000
"""An ``exception.stacktrace``, at most (its end is kept: the raise is there)."""


def safe_text(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """``text`` redacted, then cut to ``limit`` characters."""
    return truncate_redacted(text, limit)


def exception_message(exc: BaseException) -> str:
    """``str(exc)``, or a placeholder when the exception cannot print itself
    (a hostile ``__str__`` must not replace the error being recorded)."""
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__} with an unprintable message>"


def _qualified(exc: BaseException) -> str:
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def record_exception_event(span: trace.Span, exc: BaseException) -> None:
    """The semantic conventions' ``exception`` event, as ``Span.record_exception``
    writes it, but with its message and stack trace redacted and bounded."""
    stack = redact("".join(traceback.format_exception(exc)))
    if len(stack) > MAX_STACKTRACE_CHARS:
        stack = "…" + stack[-(MAX_STACKTRACE_CHARS - 1) :]
    span.add_event(
        "exception",
        {
            EXCEPTION_TYPE: _qualified(exc),
            EXCEPTION_MESSAGE: safe_text(exception_message(exc)),
            EXCEPTION_STACKTRACE: stack,
        },
    )
