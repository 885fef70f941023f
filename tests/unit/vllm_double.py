"""An in-process double of a vLLM OpenAI server, for httpx.MockTransport.

It produces what a real server cannot on demand: 503 bursts, resets
mid-stream, malformed SSE, slow headers, non-OpenAI bodies.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from agentrt.core._clock import Clock

MODEL = "smollm2-135m-instruct"


def sse(chunk: dict[str, Any] | str) -> bytes:
    data = chunk if isinstance(chunk, str) else json.dumps(chunk)
    return f"data: {data}\n\n".encode()


def token_chunk(index: int, text: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "object": "chat.completion.chunk",
        "choices": [
            {"index": index, "delta": {"content": text}, "finish_reason": finish, "token_ids": [1]}
        ],
    }


def usage_chunk(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "object": "chat.completion.chunk",
        "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion},
    }


def answers_chunks(answers: list[str], finish_order: list[int] | None = None) -> list[bytes]:
    """One branch per answer ("The answer is X"), finishing in ``finish_order``."""
    order = finish_order or list(range(len(answers)))
    out = [sse(token_chunk(i, "The answer is ")) for i in range(len(answers))]
    out += [sse(token_chunk(i, answers[i], "stop")) for i in order]
    out.append(sse(usage_chunk(10, 2 * len(answers))))
    out.append(sse("[DONE]"))
    return out


def branch_chunks(n: int, words: list[str]) -> list[bytes]:
    """``n`` interleaved branches, each saying ``words`` then stopping, then usage, then DONE."""
    out: list[bytes] = []
    for position, word in enumerate(words):
        last = position == len(words) - 1
        for index in range(n):
            out.append(sse(token_chunk(index, word, "stop" if last else None)))
    out.append(sse(usage_chunk(10, n * len(words))))
    out.append(sse("[DONE]"))
    return out


class _Body(httpx.AsyncByteStream):
    def __init__(
        self,
        parts: list[bytes],
        fail_after: int | None,
        on_close: Callable[[bool], None],
        stall_after: int | None = None,
        on_part: Callable[[], None] | None = None,
    ):
        self.parts = parts
        self.on_part = on_part
        self.fail_after = fail_after
        self.stall_after = stall_after
        self.on_close = on_close
        self.sent_all = not parts

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i, part in enumerate(self.parts):
            if self.fail_after is not None and i >= self.fail_after:
                raise httpx.ReadError("connection reset by peer")
            if self.stall_after is not None and i >= self.stall_after:
                await asyncio.sleep(3600)  # a server that stops sending (cancelled by the reader)
            await asyncio.sleep(0)
            if self.on_part is not None:
                self.on_part()
            self.sent_all = i == len(self.parts) - 1
            yield part

    async def aclose(self) -> None:
        self.on_close(self.sent_all)


@dataclass
class FakeVLLM:
    """One fake server. Script it by setting the attributes before a request."""

    models: list[str] = field(default_factory=lambda: [MODEL])
    healthy: bool = True
    chat_statuses: list[int] = field(default_factory=list)  # consumed first: 503 bursts
    chunks: list[bytes] = field(default_factory=lambda: branch_chunks(2, ["7", "!"]))
    fail_after_chunks: int | None = None
    stall_after_chunks: int | None = None
    header_delay_s: float = 0.0
    content_type: str = "text/event-stream"
    models_body: bytes | None = None
    metrics_text: str = "vllm:num_requests_running 0\nvllm:num_requests_waiting 0\n"
    refuse_connections: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    request_headers: list[httpx.Headers] = field(default_factory=list)
    closed_streams: int = 0
    aborted_streams: int = 0  # closed by the client before the whole body was sent
    chunks_sent: int = 0
    clock: Clock | None = None  # when set, request_times records each chat request's arrival
    request_times: list[float] = field(default_factory=list)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if self.refuse_connections:
            raise httpx.ConnectError("connection refused", request=request)
        path = request.url.path
        if path == "/health":
            return httpx.Response(200 if self.healthy else 503)
        if path == "/v1/models":
            if self.models_body is not None:
                return httpx.Response(200, content=self.models_body)
            return httpx.Response(200, json={"data": [{"id": m} for m in self.models]})
        if path == "/version":
            return httpx.Response(200, json={"version": "0.32.0"})
        if path == "/metrics":
            return httpx.Response(200, text=self.metrics_text)
        if path == "/v1/chat/completions":
            return await self._chat(request)
        return httpx.Response(404, json={"error": {"message": f"no route {path}"}})

    async def _chat(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        if self.clock is not None:
            self.request_times.append(self.clock.now())
        self.request_headers.append(request.headers)
        if self.header_delay_s:
            await asyncio.sleep(self.header_delay_s)
        if self.chat_statuses:
            status = self.chat_statuses.pop(0)
            return httpx.Response(status, json={"error": {"message": f"status {status}"}})
        if body.get("model") not in self.models:
            return httpx.Response(
                404, json={"error": {"message": f"The model `{body.get('model')}` does not exist."}}
            )

        def closed(sent_all: bool) -> None:
            self.closed_streams += 1
            self.aborted_streams += 0 if sent_all else 1

        return httpx.Response(
            200,
            headers={"content-type": self.content_type},
            stream=_Body(
                list(self.chunks),
                self.fail_after_chunks,
                closed,
                self.stall_after_chunks,
                on_part=self._sent,
            ),
        )

    def _sent(self) -> None:
        self.chunks_sent += 1


class FakeCluster:
    """Several fake servers behind one MockTransport, addressed by host:port."""

    def __init__(self, **servers: FakeVLLM) -> None:
        self.servers = servers

    def url(self, name: str) -> str:
        return f"http://{name}.test:8000"

    @property
    def transport(self) -> httpx.MockTransport:
        async def handler(request: httpx.Request) -> httpx.Response:
            name = request.url.host.removesuffix(".test")
            return await self.servers[name].handle(request)

        return httpx.MockTransport(handler)
