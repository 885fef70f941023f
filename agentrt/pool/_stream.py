"""One open streaming chat completion: events in, per-branch records out.

Leaving the ``async with`` block (or calling :meth:`ChatStream.aclose`) closes
the HTTP response, which makes vLLM abort every branch of the request. A stream
read past its deadline stops quietly, keeps what it had and says so
(``cut_by_deadline``): the caller decides from the branches it has. What a
stream holds is bounded by its request: a server that sends a branch more
than twice ``max_tokens``, more bytes than
:func:`~agentrt.pool._protocol.stream_byte_limit` allows (which bounds every
branch's text too), a line past 1 MiB, or a choice index it was not asked
for, is a :class:`~agentrt.core._errors.ProtocolError`.

Only agentrt errors leave a stream: a broken connection (any ``httpx`` error)
is :class:`~agentrt.core._errors.EndpointUnavailable`, a body that cannot be
decoded is a :class:`~agentrt.core._errors.ProtocolError`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx

from agentrt.core._clock import Clock, Cutoff
from agentrt.core._errors import EndpointError, EndpointUnavailable, ProtocolError
from agentrt.core._log import log_dropped
from agentrt.pool._protocol import (
    BranchFinished,
    ChatRequest,
    PromptAccepted,
    StreamEvent,
    TokenDelta,
    Usage,
    decode_chunk,
    iter_sse_data,
    stream_byte_limit,
)

__all__ = ["TOOL_CALL_CLOSE", "BranchRecord", "ChatStream", "tool_call_open"]

TOOL_CALL_CLOSE = "}\n</tool_call>"
"""What ends a tool call rendered into a branch's text (Hermes form)."""


def tool_call_open(name: str) -> str:
    """What starts a tool call named ``name`` in a branch's text; its arguments
    JSON follows, then :data:`TOOL_CALL_CLOSE`."""
    return f'<tool_call>\n{{"name": {json.dumps(name)}, "arguments": '


@dataclass
class BranchRecord:
    r"""Everything received for one branch (choice index) of a request.

    Tool calls the server parsed out (``TokenDelta.tool_call``) are rendered
    into ``text`` the Hermes way, so what reads text (voting, answer specs) reads
    them too: ``<tool_call>\n{"name": "add", "arguments": {"a": 2}}\n</tool_call>``,
    after the branch's content. A call is closed when another opens, content
    follows it, or the branch finishes; ``text`` closes a call still open, so a
    snapshot mid-stream is ``...arguments-so-far}\n</tool_call>``.
    ``token_times`` holds one time per chunk (a chunk's extra tool-call entries
    carry no tokens and add no time).
    """

    index: int
    parts: list[str] = field(default_factory=list)
    token_times: list[float] = field(default_factory=list)
    tokens: int = 0
    logprobs: list[float] = field(default_factory=list)
    first_token_at: float | None = None
    finished_at: float | None = None
    finish_reason: str | None = None
    tool_call_indices: list[int] = field(default_factory=list)
    """The tool calls opened, by the server's tool-call index, in order."""
    open_tool_call: int | None = None
    """The tool call whose arguments are arriving (its closing not yet in ``parts``)."""

    @property
    def text(self) -> str:
        text = "".join(self.parts)
        return text if self.open_tool_call is None else text + TOOL_CALL_CLOSE

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def add(self, delta: TokenDelta) -> None:
        """Record ``delta``; a tool call opened before and since closed cannot take
        more (``ValueError``: the stream maps it to a ProtocolError)."""
        call = delta.tool_call
        closed = [i for i in self.tool_call_indices if i != self.open_tool_call]
        if call is not None and call.index in closed:
            raise ValueError(
                f"tool call {call.index} continued after it was closed"
                f" (calls so far: {self.tool_call_indices})"
            )
        if self.first_token_at is None:
            self.first_token_at = delta.at
        if delta.text:
            self.close_tool_call()
        self.parts.append(delta.text)
        if call is not None:
            if call.index != self.open_tool_call:
                self.close_tool_call()
                self.parts.append(tool_call_open(call.name or ""))
                self.tool_call_indices.append(call.index)
                self.open_tool_call = call.index
            self.parts.append(call.arguments)
        if call is None or delta.tokens:
            self.token_times.append(delta.at)
        self.tokens += delta.tokens
        self.logprobs.extend(delta.logprobs)

    def close_tool_call(self) -> None:
        """Close the open tool call in ``parts`` (when the branch finishes, say)."""
        if self.open_tool_call is not None:
            self.parts.append(TOOL_CALL_CLOSE)
            self.open_tool_call = None

    def mean_logprob(self) -> float | None:
        """Mean token log-probability (self-certainty), if logprobs were asked for."""
        return sum(self.logprobs) / len(self.logprobs) if self.logprobs else None


class ChatStream:
    """An open streaming response from one endpoint.

    Iterate it for :data:`StreamEvent` values; the per-branch records in
    ``branches`` fill in as events arrive. All times are on the pool's clock.
    """

    def __init__(
        self,
        *,
        response: httpx.Response,
        request: ChatRequest,
        url: str,
        clock: Clock,
        started_at: float,
        deadline_at: float = math.inf,
        on_close: Callable[[ChatStream], None] | None = None,
    ) -> None:
        self.request = request
        self.url = url
        self.started_at = started_at
        self.headers_at = clock.now()
        self.branches: dict[int, BranchRecord] = {
            i: BranchRecord(index=i) for i in range(request.n)
        }
        self.usage: Usage | None = None
        self.prompt_tokens: int | None = None
        self.cut_by_deadline = False
        self.error: EndpointError | None = None
        self.closed_at: float | None = None
        self._response = response
        self._clock = clock
        self._deadline_at = deadline_at
        self._on_close = on_close
        self._done = False
        # What one branch may hold: its memory stays bounded by max_tokens whatever
        # the server sends (vLLM counts a final EOS; a speculative step carries several).
        self._token_cap = 2 * request.max_tokens + 8
        self.byte_limit = stream_byte_limit(request)

    # -- state ----------------------------------------------------------------

    @property
    def complete(self) -> bool:
        """Every branch finished (the server sent a finish reason for each)."""
        return all(b.finished for b in self.branches.values())

    @property
    def cancelled(self) -> bool:
        """Closed before every branch finished (vLLM aborted the rest)."""
        return self.closed_at is not None and not self.complete

    def finished_branches(self) -> list[BranchRecord]:
        return [b for b in self.branches.values() if b.finished]

    @property
    def completion_tokens(self) -> int:
        """Tokens generated: the server's usage when it arrived, else counted."""
        if self.usage is not None:
            return self.usage.completion_tokens
        return sum(b.tokens for b in self.branches.values())

    # -- reading --------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[StreamEvent]:
        if self._done:
            return
        data = iter_sse_data(self._response.aiter_bytes(), self.url, max_bytes=self.byte_limit)
        cutoff = Cutoff.at(self._deadline_at, clock=self._clock)  # one timer, not one per chunk
        try:
            while True:
                if self._clock.now() >= self._deadline_at:  # the clock is the judge
                    self.cut_by_deadline = True
                    break
                try:
                    payload = await cutoff.wait(data.__anext__())
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    self.cut_by_deadline = True
                    break
                for event in decode_chunk(payload, self._clock.now(), self.url):
                    self._record(event)
                    yield event
        except httpx.DecodingError as exc:  # a content encoding that does not decode
            self.error = ProtocolError(self.url, f"the stream does not decode: {exc!r}")
            await self.aclose()
            raise self.error from exc
        except (httpx.HTTPError, httpx.StreamError) as exc:
            self.error = EndpointUnavailable(
                self.url, f"stream broke after {self._received()} tokens: {exc!r}"
            )
            await self.aclose()
            raise self.error from exc
        except EndpointError as exc:  # malformed chunk, or the server reported an error
            self.error = exc
            await self.aclose()
            raise
        finally:
            cutoff.close()
            await data.aclose()
        self._done = True
        await self.aclose()

    async def collect(self) -> ChatStream:
        """Read to the end (or to the deadline) and return ``self``."""
        async for _ in self:
            pass
        return self

    async def aclose(self) -> None:
        """Close the response: vLLM aborts whatever is still generating."""
        if self.closed_at is not None:
            return
        self.closed_at = self._clock.now()
        try:
            await self._response.aclose()
        except (httpx.HTTPError, httpx.StreamError) as exc:  # the connection is gone anyway
            log_dropped(f"closing the stream from {self.url}", exc, level=logging.DEBUG)
        finally:  # even when cancelled mid-close: the pool's in-flight count must drop
            if self._on_close is not None:
                self._on_close(self)

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- internals ------------------------------------------------------------

    def _record(self, event: StreamEvent) -> None:
        if isinstance(event, TokenDelta):
            branch = self._branch(event.index)
            try:
                branch.add(event)
            except ValueError as exc:  # a tool call reopened: not a stream we can render
                raise ProtocolError(self.url, f"branch {event.index}: {exc}") from None
            if max(branch.tokens, len(branch.token_times)) > self._token_cap:
                raise ProtocolError(
                    self.url, f"branch {event.index} sent {branch.tokens} tokens in "
                    f"{len(branch.token_times)} chunks, past max_tokens {self.request.max_tokens}",
                )  # fmt: skip
        elif isinstance(event, BranchFinished):
            branch = self._branch(event.index)
            branch.close_tool_call()
            branch.finish_reason = event.reason
            branch.finished_at = event.at
        elif isinstance(event, PromptAccepted):
            self.prompt_tokens = event.prompt_tokens
        else:
            self.usage = event
            self.prompt_tokens = event.prompt_tokens

    def _branch(self, index: int) -> BranchRecord:
        if index not in self.branches:
            if not 0 <= index < self.request.n:
                raise ProtocolError(
                    self.url, f"choice index {index} is not one of the n={self.request.n} asked for"
                )
            self.branches[index] = BranchRecord(index=index)
        return self.branches[index]

    def _received(self) -> int:
        return sum(b.tokens for b in self.branches.values())
