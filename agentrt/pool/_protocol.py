"""The OpenAI-compatible wire format, as vLLM speaks it.

A :class:`ChatRequest` becomes a streaming ``/v1/chat/completions`` payload
(always with explicit ``max_tokens``, ``temperature`` and ``top_p``, and with
usage in the final chunk). Server-sent events are decoded into typed
:data:`StreamEvent` values: per-branch text deltas (and tool-call deltas, when
the server parses tool calls), branch finishes, usage. Anything that is not the
OpenAI format raises :class:`ProtocolError`.

Everything a server sends is bounded before it is held, and anything malformed is
a :class:`ProtocolError` naming the endpoint (never ``ValueError``,
``RecursionError``, ``TypeError``...):

- one line, and one event's data, at most :data:`MAX_LINE_BYTES` (1 MiB): an
  unterminated 128 MB line or a 64 MB ``content`` field stops at the cap;
- one stream at most :func:`stream_byte_limit` bytes (derived from what was asked);
- JSON nested at most :data:`MAX_JSON_DEPTH` levels, checked by a linear pre-scan
  before :func:`json.loads`, so a chunk nested 100,000 levels never recurses;
- every excerpt of server text in an error message is redacted, then cut
  (:func:`excerpt`), so a key the server echoes never reaches a message, even
  cut in half.

The event stream is framed by :class:`SSEDecoder`, our own incremental parser of
the WHATWG ``text/event-stream`` format rather than ``httpx-sse``: capping the
bytes of one line needs a parser that sees raw byte chunks and owns its line
buffer (``httpx-sse`` reads ``aiter_lines()``, which buffers a line of any
length). It follows the spec: CR, LF
and CRLF line ends (also split across chunks), comments, ``data``/``event``/``id``/
``retry``, one leading space after the colon dropped, ``data`` lines joined with
``\n``, an event dispatched on a blank line, an unterminated last event dropped.
One departure: a field the spec would ignore is a :class:`ProtocolError`, as an
OpenAI stream never sends one and a server speaking something else must be named.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentrt.core._errors import ConfigurationError, EndpointUnavailable, ProtocolError
from agentrt.core._redact import truncate_redacted

__all__ = [
    "EXCERPT_CHARS",
    "MAX_JSON_DEPTH",
    "MAX_LINE_BYTES",
    "MAX_TOOL_CALLS",
    "MIN_STREAM_BYTES",
    "STREAM_BYTES_PER_TOKEN",
    "BranchFinished",
    "ChatRequest",
    "Message",
    "PromptAccepted",
    "SSEDecoder",
    "ServerSentEvent",
    "StreamEvent",
    "TokenDelta",
    "ToolCallDelta",
    "Usage",
    "decode_chunk",
    "excerpt",
    "iter_sse_data",
    "json_too_deep",
    "load_json",
    "size_text",
    "stream_byte_limit",
]

Message = dict[str, Any]
"""One chat message, ``{"role": ..., "content": ...}`` (OpenAI format)."""

MAX_STOP_STRINGS = 4
MAX_TOP_LOGPROBS = 20
TOOL_CHOICES = ("none", "auto", "required")

MAX_TOOL_CALLS = 64
"""Tool calls one branch may make: a tool-call index at or past it is a
:class:`ProtocolError` (so a branch's calls, and their rendering, stay bounded)."""

MAX_LINE_BYTES = 1 << 20
"""Bytes one event-stream line (and one event's joined data) may hold: a vLLM
chunk is a few hundred bytes, a few KiB with 20 top logprobs."""

MIN_STREAM_BYTES = 4 << 20
STREAM_BYTES_PER_TOKEN = 64 << 10
"""One stream may carry ``max(MIN_STREAM_BYTES, STREAM_BYTES_PER_TOKEN x n x
max_tokens)`` bytes: generous (a real token costs well under 4 KiB of SSE even
with logprobs), and it bounds every branch's text, which is part of those bytes."""

MAX_JSON_DEPTH = 64
"""Nesting levels of ``[``/``{`` a JSON body may have (vLLM's chunks have 6)."""

EXCERPT_CHARS = 120
"""Characters of server text an error message quotes."""

_SECRET_WINDOW = 4096  # redacting this far past a cut catches any secret it splits


def stream_byte_limit(request: ChatRequest) -> int:
    """Bytes the stream of ``request`` may carry before it is a :class:`ProtocolError`."""
    return max(MIN_STREAM_BYTES, STREAM_BYTES_PER_TOKEN * request.n * request.max_tokens)


def size_text(size: int) -> str:
    """``size`` bytes for a message: ``1 MiB``, ``64 KiB``, ``300 bytes``."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} bytes"


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` redacted, *then* cut to ``limit`` characters, for an error message.

    Only a window a little past the cut is redacted (a secret is far shorter than
    :data:`_SECRET_WINDOW`), so quoting a 1 MiB line costs what a short one does.
    """
    window = text[: limit + _SECRET_WINDOW]
    clean = truncate_redacted(window, limit)
    if len(window) < len(text) and not clean.endswith("…"):
        clean = clean[: max(0, limit - 1)] + "…"
    return clean


# A JSON string, possessive so a scan is linear whatever the input; an unterminated
# one runs to the end (json.loads rejects that text anyway).
_JSON_STRINGS = re.compile(r'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]++")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``text`` nests ``[``/``{`` (outside strings) deeper than ``limit``.

    Linear and cheap: ``json.loads`` recurses once per level, so a chunk nested
    100,000 levels would raise ``RecursionError`` (or exhaust the C stack).
    """
    if text.count("[") + text.count("{") <= limit:
        return False  # the common case: too few brackets to be that deep
    brackets = _NOT_BRACKETS.sub("", _JSON_STRINGS.sub("", text))
    return max(itertools.accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0) > limit


def load_json(text: str, url: str, not_json: str) -> Any:
    """``json.loads(text)``, or a :class:`ProtocolError` of ``url`` starting with
    ``not_json`` for text that is not JSON, nests too deep, or will not parse."""
    if json_too_deep(text):
        raise ProtocolError(url, f"{not_json}: nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ProtocolError(url, f"{not_json}: {excerpt(text)!r}") from exc


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completion request with ``n`` parallel branches.

    ``model`` may be left ``None``: the pool fills in what the endpoint serves.
    ``tools`` are OpenAI tool definitions (``{"type": "function", "function":
    {"name", "description", "parameters", "strict"?}}``) and ``tool_choice``
    (``"none"``, ``"auto"``, ``"required"`` or ``{"type": "function",
    "function": {"name": ...}}``) picks among them; both need an endpoint whose
    server parses tool calls (``EndpointSpec.tool_calling == "native"``).
    ``response_format`` is passed as given (``{"type": "json_schema", ...}``).
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
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
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
        object.__setattr__(self, "tools", tuple(self.tools))  # a list given is kept as a tuple
        names = [_tool_name(i, tool) for i, tool in enumerate(self.tools)]
        _check_tool_choice(self.tool_choice, names)
        if self.response_format is not None and not (
            isinstance(self.response_format, dict)
            and isinstance(self.response_format.get("type"), str)
        ):
            raise ConfigurationError(
                "ChatRequest.response_format must be a dict with a string 'type' "
                f"(such as 'json_schema'), got {excerpt(repr(self.response_format))}"
            )

    def payload(
        self, model: str, *, stream: bool = True, vllm: bool = False, priority: int | None = None
    ) -> dict[str, Any]:
        """The JSON body for ``/v1/chat/completions``; ``vllm`` adds vLLM's
        ``return_token_ids`` so token counts per branch are exact, ``priority``
        vLLM's scheduling priority (lower first)."""
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
        if self.tools:
            body["tools"] = list(self.tools)
            if self.tool_choice is not None:
                body["tool_choice"] = self.tool_choice
        if self.response_format is not None:
            body["response_format"] = self.response_format
        if priority is not None:
            body["priority"] = priority
        body.update(self.extra)
        return body


def _tool_name(position: int, tool: Any) -> str:
    """The function name of ``ChatRequest.tools[position]``, or a ConfigurationError."""
    function = tool.get("function") if isinstance(tool, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(tool, dict) or tool.get("type") != "function":
        raise ConfigurationError(
            f"ChatRequest.tools[{position}] must be a dict with type 'function',"
            f" got {excerpt(repr(tool))}"
        )
    if not isinstance(name, str) or not name:
        raise ConfigurationError(
            f"ChatRequest.tools[{position}].function.name must be a non-empty string,"
            f" got {excerpt(repr(tool))}"
        )
    return name


def _check_tool_choice(choice: str | dict[str, Any] | None, names: list[str]) -> None:
    """``ChatRequest.tool_choice`` is one of :data:`TOOL_CHOICES` or names a tool given."""
    if choice is None:
        return
    if not names:
        raise ConfigurationError(
            f"ChatRequest.tool_choice is {excerpt(repr(choice))} but ChatRequest.tools is empty"
        )
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise ConfigurationError(
                f"ChatRequest.tool_choice must be one of {list(TOOL_CHOICES)} or"
                f" {{'type': 'function', 'function': {{'name': ...}}}}, got {excerpt(repr(choice))}"
            )
        return
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(choice, dict) or choice.get("type") != "function" or name not in names:
        raise ConfigurationError(
            "ChatRequest.tool_choice must be {'type': 'function', 'function': {'name': N}}"
            f" with N one of the tools {names}, got {excerpt(repr(choice))}"
        )


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of tool call ``index`` of one branch (the server's tool parser
    split it out of the text): its ``name`` when the call opens, then pieces of
    its JSON ``arguments`` string, to be concatenated."""

    index: int
    name: str | None
    arguments: str


@dataclass(frozen=True)
class TokenDelta:
    """New text for branch ``index``, received at clock time ``at``.

    ``tokens`` counts the tokens in this delta: exact when the server sent
    logprobs or token ids, else 1 per chunk (vLLM streams one chunk per
    decoding step; a speculative step may carry several tokens). A chunk's
    tool-call entries each become a delta with ``text=""`` and ``tool_call``
    set, after the chunk's text (if any); the chunk's tokens and logprobs are
    counted on its first delta only, so its other deltas have ``tokens=0``.
    """

    index: int
    text: str
    at: float
    tokens: int = 1
    logprobs: tuple[float, ...] = ()
    tool_call: ToolCallDelta | None = None


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
    chunking of the same bytes gives the same events. A line, or an event's
    data, longer than ``max_line_bytes`` is a :class:`ProtocolError` as soon as
    it is seen, so the buffer never grows past the cap. ``retry_ms`` holds the
    last reconnection time the server asked for (agentrt does not reconnect).
    """

    def __init__(self, url: str, *, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.url = url
        self.retry_ms: int | None = None
        self.max_line_bytes = max_line_bytes
        self._tail = bytearray()
        self._after_cr = False  # the last chunk ended in CR: a leading LF ends nothing
        self._first_line = True
        self._data: list[str] = []
        self._data_chars = 0
        self._event = ""
        self._last_id = ""

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """The events that ``chunk`` completes, in order."""
        if not chunk:
            return []
        whole = self._whole_events(chunk)
        if whole is not None:
            return whole
        start = 1 if self._after_cr and chunk[:1] == b"\n" else 0
        events: list[ServerSentEvent] = []
        for end in _LINE_END.finditer(chunk, start):
            if len(self._tail) + end.start() - start > self.max_line_bytes:
                raise self._too_long("line")
            line = chunk[start : end.start()]
            if self._tail:
                line = bytes(self._tail) + line
                self._tail.clear()
            event = self._line(line.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
            start = end.end()
        if len(self._tail) + len(chunk) - start > self.max_line_bytes:
            raise self._too_long("line")
        self._tail += chunk[start:]
        self._after_cr = chunk[-1:] == b"\r"
        return events

    def _whole_events(self, chunk: bytes) -> list[ServerSentEvent] | None:
        """What a streaming server nearly always sends: whole ``data: ...`` events,
        LF-terminated, nothing pending. Their events without the line-by-line
        parse (a few microseconds a token); ``None`` for anything else."""
        if (
            self._tail or self._data or self._event or self._first_line or self._after_cr
            or not chunk.endswith(b"\n\n") or b"\r" in chunk
        ):  # fmt: skip
            return None
        parts = chunk[:-2].split(b"\n\n")
        for part in parts:
            if not part.startswith(b"data: ") or b"\n" in part or len(part) > self.max_line_bytes:
                return None
        last_id = self._last_id
        return [ServerSentEvent(part[6:].decode("utf-8", errors="replace"), "message", last_id)
                for part in parts]  # fmt: skip

    def _too_long(self, what: str) -> ProtocolError:
        return ProtocolError(
            self.url,
            f"an event-stream {what} longer than {size_text(self.max_line_bytes)} (the line limit)",
        )

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
            self._data_chars += len(value) + 1
            if self._data_chars > self.max_line_bytes:
                raise self._too_long("event")
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
            raise ProtocolError(self.url, f"not a server-sent event line: {excerpt(line)!r}")
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event = self._data, self._event
        self._data, self._event, self._data_chars = [], "", 0
        if not data:
            return None  # a blank line with no data field before it
        return ServerSentEvent(data="\n".join(data), event=event or "message", id=self._last_id)


async def iter_sse_data(
    chunks: AsyncIterator[bytes],
    url: str,
    *,
    max_bytes: int | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> AsyncGenerator[str, None]:
    """Yield the ``data`` of each server-sent event in the byte stream until ``[DONE]``.

    More than ``max_bytes`` in all (no limit when ``None``), or one line past
    ``max_line_bytes``, is a :class:`ProtocolError`: what a stream holds is
    bounded by what was asked, whatever the server sends.
    """
    decoder = SSEDecoder(url, max_line_bytes=max_line_bytes)
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if max_bytes is not None and received > max_bytes:
            raise ProtocolError(
                url, f"the stream sent more than {size_text(max_bytes)} (the stream limit"
                f" for this request: max({size_text(MIN_STREAM_BYTES)},"
                f" {size_text(STREAM_BYTES_PER_TOKEN)} per requested token))",
            )  # fmt: skip
        for event in decoder.feed(chunk):
            if event.data == "[DONE]":
                return
            yield event.data


def decode_chunk(data: str, at: float, url: str) -> list[StreamEvent]:
    """Decode one ``chat.completion.chunk`` into events; raise on anything else.

    Only agentrt errors leave: :class:`ProtocolError` for what is not a chunk,
    :class:`EndpointUnavailable` for the server's own mid-stream error.
    """
    chunk = load_json(data, url, "chunk is not JSON")
    if not isinstance(chunk, dict):
        raise ProtocolError(url, f"chunk is not a JSON object: {excerpt(data)!r}")
    if "error" in chunk:
        error = chunk["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        # The server gave up on the request (e.g. its engine died): the endpoint,
        # not the request, is at fault, so this is retryable elsewhere. A server
        # may echo what it got (the key): redacted before it is cut.
        raise EndpointUnavailable(url, f"server error mid-stream: {excerpt(str(message), 300)}")
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        raise ProtocolError(url, f"chunk has no 'choices' list: {excerpt(data)!r}")
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
        raise ProtocolError(url, f"choice is not an object: {excerpt(repr(choice))}")
    index = choice.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ProtocolError(url, f"choice has no valid 'index': {excerpt(repr(choice))}")
    delta = choice.get("delta") or {}
    if not isinstance(delta, dict):
        raise ProtocolError(url, f"choice delta is not an object: {excerpt(repr(delta))}")
    events: list[StreamEvent] = []
    text = delta.get("content") or ""
    if not isinstance(text, str):
        raise ProtocolError(url, f"delta content is not a string: {excerpt(repr(text))}")
    calls = _tool_calls(delta.get("tool_calls"), url)
    logprobs = _logprobs(choice.get("logprobs"), url)
    token_ids = choice.get("token_ids")
    if logprobs:
        tokens = len(logprobs)
    elif isinstance(token_ids, list):
        tokens = len(token_ids)  # vLLM's return_token_ids: exact, includes a final EOS
    else:
        tokens = 1 if text or calls else 0
    if text or not calls:
        if tokens or text:
            events.append(
                TokenDelta(index=index, text=text, at=at, tokens=tokens, logprobs=logprobs)
            )
        tokens, logprobs = 0, ()
    for call in calls:  # the chunk's tokens go to its first delta only
        events.append(
            TokenDelta(
                index=index, text="", at=at, tokens=tokens, logprobs=logprobs, tool_call=call
            )
        )
        tokens, logprobs = 0, ()
    reason = choice.get("finish_reason")
    if reason is not None:
        if not isinstance(reason, str):
            raise ProtocolError(url, f"finish_reason is not a string: {excerpt(repr(reason))}")
        events.append(BranchFinished(index=index, reason=excerpt(reason, 40), at=at))
    return events


def _tool_calls(value: Any, url: str) -> list[ToolCallDelta]:
    """``delta.tool_calls`` (OpenAI streaming format; the call ``id`` is not kept)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ProtocolError(url, f"delta tool_calls is not a list: {excerpt(repr(value))}")
    if len(value) > MAX_TOOL_CALLS:
        raise ProtocolError(
            url, f"one delta carries {len(value)} tool calls, past the {MAX_TOOL_CALLS} allowed"
        )
    calls: list[ToolCallDelta] = []
    for entry in value:
        index = entry.get("index") if isinstance(entry, dict) else None
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ProtocolError(url, f"tool call has no valid 'index': {excerpt(repr(entry))}")
        if index >= MAX_TOOL_CALLS:
            raise ProtocolError(
                url, f"tool call index {index} is past the {MAX_TOOL_CALLS} calls a branch may make"
            )
        function = entry.get("function")
        if function is None:
            function = {}
        if not isinstance(function, dict):
            raise ProtocolError(
                url, f"tool call 'function' is not an object: {excerpt(repr(entry))}"
            )
        name = function.get("name")
        arguments = function.get("arguments")
        if name is not None and not isinstance(name, str):
            raise ProtocolError(url, f"tool call name is not a string: {excerpt(repr(entry))}")
        if arguments is not None and not isinstance(arguments, str):
            raise ProtocolError(
                url, f"tool call arguments are not a string: {excerpt(repr(entry))}"
            )
        calls.append(ToolCallDelta(index=index, name=name, arguments=arguments or ""))
    return calls


def _logprobs(value: Any, url: str) -> tuple[float, ...]:
    if not isinstance(value, dict):
        return ()
    content = value.get("content")
    if not isinstance(content, list):
        return ()
    try:
        return tuple(
            float(item["logprob"])
            for item in content
            if isinstance(item, dict) and isinstance(item.get("logprob"), int | float)
        )
    except OverflowError as exc:  # a JSON integer too large for a float
        raise ProtocolError(url, "a logprob is not a number a float can hold") from exc


def _int_field(obj: dict[str, Any], name: str, url: str) -> int:
    value = obj.get(name, 0)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError(url, f"usage.{name} is not an integer: {excerpt(repr(value))}")
    return value
