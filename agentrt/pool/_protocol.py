"""The OpenAI-compatible wire format, as vLLM speaks it.

A :class:`ChatRequest` becomes a streaming ``/v1/chat/completions`` payload
(always with explicit ``max_tokens``, ``temperature`` and ``top_p``, and with
usage in the final chunk). Server-sent events are decoded into typed
:data:`StreamEvent` values: per-branch text deltas, branch finishes, usage.
Anything that is not the OpenAI format raises :class:`ProtocolError`.

The event stream is framed by :class:`SSEDecoder`, our own incremental parser of
the WHATWG ``text/event-stream`` format rather than ``httpx-sse``: a later change
caps the bytes of one line and of one branch, so an unterminated 128 MB line becomes
a :class:`ProtocolError` instead of unbounded memory, and that needs a parser that
sees raw byte chunks and owns its line buffer (``httpx-sse`` reads
``aiter_lines()``, which buffers a line of any length). It follows the spec: CR, LF
and CRLF line ends (also split across chunks), comments, ``data``/``event``/``id``/
``retry``, one leading space after the colon dropped, ``data`` lines joined with
``\n``, an event dispatched on a blank line, an unterminated last event dropped.
One departure: a field the spec would ignore is a :class:`ProtocolError`, as an
OpenAI stream never sends one and a server speaking something else must be named.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentrt.core._errors import ConfigurationError, EndpointUnavailable, ProtocolError

__all__ = [
    "BranchFinished",
    "ChatRequest",
    "Message",
    "PromptAccepted",
    "SSEDecoder",
    "ServerSentEvent",
    "StreamEvent",
    "TokenDelta",
    "Usage",
    "decode_chunk",
    "iter_sse_data",
]

Message = dict[str, Any]
"""One chat message, ``{"role": ..., "content": ...}`` (OpenAI format)."""

MAX_STOP_STRINGS = 4
MAX_TOP_LOGPROBS = 20


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completion request with ``n`` parallel branches.

    ``model`` may be left ``None``: the pool fills in what the endpoint serves.
    ``extra`` is merged into the payload last (vLLM sampling extras such as
    ``min_tokens`` or ``use_beam_search``).
    """

    messages: Sequence[Message]
    max_tokens: int = 256
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    model: str | None = None
    seed: int | None = None
    stop: Sequence[str] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.messages:
            raise ConfigurationError("ChatRequest.messages must not be empty")
        for i, message in enumerate(self.messages):
            if not isinstance(message, dict) or "role" not in message:
                raise ConfigurationError(
                    f"ChatRequest.messages[{i}] must be a dict with a 'role', got {message!r}"
                )
        if self.max_tokens < 1:
            raise ConfigurationError(f"ChatRequest.max_tokens must be >= 1, got {self.max_tokens}")
        if self.n < 1:
            raise ConfigurationError(f"ChatRequest.n must be >= 1, got {self.n}")
        if not 0.0 <= self.temperature <= 2.0 or math.isnan(self.temperature):
            raise ConfigurationError(
                f"ChatRequest.temperature must be in [0, 2], got {self.temperature}"
            )
        if self.n > 1 and self.temperature == 0.0 and not self.extra.get("use_beam_search"):
            # vLLM answers 400 for n > 1 at temperature 0 (identical branches); beam
            # search is the exception: its width is n and it is deterministic.
            raise ConfigurationError(
                f"ChatRequest.n={self.n} needs temperature > 0 (greedy branches are identical)"
            )
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigurationError(f"ChatRequest.top_p must be in (0, 1], got {self.top_p}")
        if len(self.stop) > MAX_STOP_STRINGS:
            raise ConfigurationError(
                f"ChatRequest.stop takes at most {MAX_STOP_STRINGS} strings, got {len(self.stop)}"
            )
        if not 0 <= self.top_logprobs <= MAX_TOP_LOGPROBS:
            raise ConfigurationError(
                f"ChatRequest.top_logprobs must be in [0, {MAX_TOP_LOGPROBS}],"
                f" got {self.top_logprobs}"
            )

    def payload(self, model: str, *, stream: bool = True, vllm: bool = False) -> dict[str, Any]:
        """The JSON body for ``/v1/chat/completions``; ``vllm`` adds vLLM's
        ``return_token_ids`` so token counts per branch are exact."""
        body: dict[str, Any] = {
            "model": self.model or model,
            "messages": list(self.messages),
            "n": self.n,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        if self.seed is not None:
            body["seed"] = self.seed
        if self.stop:
            body["stop"] = list(self.stop)
        if vllm and stream:
            body["return_token_ids"] = True
        if self.logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = self.top_logprobs
        body.update(self.extra)
        return body


@dataclass(frozen=True)
class TokenDelta:
    """New text for branch ``index``, received at clock time ``at``.

    ``tokens`` counts the tokens in this delta: exact when the server sent
    logprobs or token ids, else 1 per chunk (vLLM streams one chunk per
    decoding step; a speculative step may carry several tokens).
    """

    index: int
    text: str
    at: float
    tokens: int = 1
    logprobs: tuple[float, ...] = ()


@dataclass(frozen=True)
class BranchFinished:
    """Branch ``index`` finished with ``reason`` (``stop``, ``length``, ...)."""

    index: int
    reason: str
    at: float


@dataclass(frozen=True)
class PromptAccepted:
    """The server reported the prompt's token count (vLLM, with ``return_token_ids``)."""

    prompt_tokens: int
    at: float


@dataclass(frozen=True)
class Usage:
    """Token usage for the whole request, from the final chunk."""

    prompt_tokens: int
    completion_tokens: int
    at: float


StreamEvent = TokenDelta | BranchFinished | PromptAccepted | Usage


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched server-sent event: its ``data`` lines joined with ``\\n``,
    its type (``message`` when none was named) and the last event id seen."""

    data: str
    event: str = "message"
    id: str = ""


_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = "\ufeff"


class SSEDecoder:
    """Incremental ``text/event-stream`` parser (WHATWG): byte chunks in, events out.

    Only the unterminated tail of the stream is buffered between chunks; any
    chunking of the same bytes gives the same events. ``retry_ms`` holds the last
    reconnection time the server asked for (agentrt does not reconnect).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.retry_ms: int | None = None
        self._tail = bytearray()
        self._after_cr = False  # the last chunk ended in CR: a leading LF ends nothing
        self._first_line = True
        self._data: list[str] = []
        self._event = ""
        self._last_id = ""

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """The events that ``chunk`` completes, in order."""
        if not chunk:
            return []
        start = 1 if self._after_cr and chunk[:1] == b"\n" else 0
        events: list[ServerSentEvent] = []
        for end in _LINE_END.finditer(chunk, start):
            line = chunk[start : end.start()]
            if self._tail:
                line = bytes(self._tail) + line
                self._tail.clear()
            event = self._line(line.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
            start = end.end()
        self._tail += chunk[start:]
        self._after_cr = chunk[-1:] == b"\r"
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if self._first_line:
            self._first_line = False
            line = line.removeprefix(_BOM)
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None  # a comment (keep-alive)
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self.retry_ms = int(value)
        else:
            raise ProtocolError(self.url, f"not a server-sent event line: {line[:120]!r}")
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None  # a blank line with no data field before it
        return ServerSentEvent(data="\n".join(data), event=event or "message", id=self._last_id)


async def iter_sse_data(chunks: AsyncIterator[bytes], url: str) -> AsyncGenerator[str, None]:
    """Yield the ``data`` of each server-sent event in the byte stream until ``[DONE]``."""
    decoder = SSEDecoder(url)
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            if event.data == "[DONE]":
                return
            yield event.data


def decode_chunk(data: str, at: float, url: str) -> list[StreamEvent]:
    """Decode one ``chat.completion.chunk`` into events; raise on anything else."""
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ProtocolError(url, f"chunk is not JSON: {data[:120]!r}") from exc
    if not isinstance(chunk, dict):
        raise ProtocolError(url, f"chunk is not a JSON object: {data[:120]!r}")
    if "error" in chunk:
        error = chunk["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        # The server gave up on the request (e.g. its engine died): the endpoint,
        # not the request, is at fault, so this is retryable elsewhere.
        raise EndpointUnavailable(url, f"server error mid-stream: {message}")
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        raise ProtocolError(url, f"chunk has no 'choices' list: {data[:120]!r}")
    events: list[StreamEvent] = []
    prompt_ids = chunk.get("prompt_token_ids")
    if isinstance(prompt_ids, list):
        events.append(PromptAccepted(prompt_tokens=len(prompt_ids), at=at))
    for choice in choices:
        events.extend(_decode_choice(choice, at, url))
    usage = chunk.get("usage")
    if isinstance(usage, dict) and not choices:
        events.append(
            Usage(
                prompt_tokens=_int_field(usage, "prompt_tokens", url),
                completion_tokens=_int_field(usage, "completion_tokens", url),
                at=at,
            )
        )
    return events


def _decode_choice(choice: Any, at: float, url: str) -> list[StreamEvent]:
    if not isinstance(choice, dict):
        raise ProtocolError(url, f"choice is not an object: {choice!r:.120}")
    index = choice.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ProtocolError(url, f"choice has no valid 'index': {choice!r:.120}")
    delta = choice.get("delta") or {}
    if not isinstance(delta, dict):
        raise ProtocolError(url, f"choice delta is not an object: {delta!r:.120}")
    events: list[StreamEvent] = []
    text = delta.get("content") or ""
    if not isinstance(text, str):
        raise ProtocolError(url, f"delta content is not a string: {text!r:.120}")
    logprobs = _logprobs(choice.get("logprobs"))
    token_ids = choice.get("token_ids")
    if logprobs:
        tokens = len(logprobs)
    elif isinstance(token_ids, list):
        tokens = len(token_ids)  # vLLM's return_token_ids: exact, includes a final EOS
    else:
        tokens = 1 if text else 0
    if tokens or text:
        events.append(TokenDelta(index=index, text=text, at=at, tokens=tokens, logprobs=logprobs))
    reason = choice.get("finish_reason")
    if reason is not None:
        events.append(BranchFinished(index=index, reason=str(reason), at=at))
    return events


def _logprobs(value: Any) -> tuple[float, ...]:
    if not isinstance(value, dict):
        return ()
    content = value.get("content")
    if not isinstance(content, list):
        return ()
    return tuple(
        float(item["logprob"])
        for item in content
        if isinstance(item, dict) and isinstance(item.get("logprob"), int | float)
    )


def _int_field(obj: dict[str, Any], name: str, url: str) -> int:
    value = obj.get(name, 0)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError(url, f"usage.{name} is not an integer: {value!r}")
    return value
