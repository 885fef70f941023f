"""Whether message content may be recorded: only when the standard opt-in asks.

``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` is off by default. It
turns on with ``true`` (or ``1``, ``yes``), and with the newer values
``span_only`` / ``span_and_event``; ``false``, ``no_content`` and
``event_only`` leave spans without content. Credentials (API keys, headers,
user info in URLs) are never recorded, whatever it says.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "CAPTURE_CONTENT_ENV",
    "capture_content",
    "input_messages_json",
    "output_messages_json",
    "safe_url",
]

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_ON = frozenset({"true", "1", "yes", "on", "span_only", "span_and_event"})


def capture_content(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the opt-in variable asks for message content on spans."""
    env = os.environ if environ is None else environ
    return env.get(CAPTURE_CONTENT_ENV, "").strip().lower() in _ON


def _text_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, Sequence):
        parts = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text":
                parts.append({"type": "text", "content": str(part.get("text", ""))})
        return parts
    return []


def input_messages_json(messages: Sequence[Mapping[str, Any]]) -> str:
    """``gen_ai.input.messages``: role and text parts only (no other fields)."""
    return json.dumps(
        [
            {"role": str(m.get("role", "user")), "parts": _text_parts(m.get("content"))}
            for m in messages
        ],
        ensure_ascii=False,
    )


def output_messages_json(text: str, finish_reason: str | None) -> str:
    """``gen_ai.output.messages`` for the one answer a call returns."""
    message: dict[str, Any] = {"role": "assistant", "parts": _text_parts(text)}
    if finish_reason is not None:
        message["finish_reason"] = finish_reason
    return json.dumps([message], ensure_ascii=False)


def safe_url(url: str) -> str:
    """``url`` without user info, query or fragment: what may go on a span."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{netloc}{parts.path}"
