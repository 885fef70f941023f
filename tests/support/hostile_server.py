"""A hostile OpenAI-compatible server, run as its own process, for fault tests.

Standard library only (asyncio, one request per connection, ``Connection:
close``), so what it sends is exactly what is written here: unterminated lines,
trickled bytes, bodies of hundreds of megabytes made lazily and never held.

Run it::

    python -m tests.support.hostile_server --port PORT --behaviour NAME
        [--host 127.0.0.1] [--model hostile] [--delay-s 30] [--size-bytes N]
        [--answer-tokens N] [--token-interval-s S]

``--port 0`` takes a free port. Once listening it prints one line to stdout,
``listening on http://HOST:PORT``, and serves until killed. From a test, use
the context manager, which starts it on a free port, waits until ``/health``
answers, yields the base URL and kills the process on exit::

    with hostile_server("huge_line") as url:
        spec = EndpointSpec(url=url, api_key=key)

Keyword options map to the flags above (``delay_s=5`` -> ``--delay-s 5``).

Routes, whatever the behaviour unless it says otherwise:

- ``GET /health``: 200, empty body;
- ``GET /v1/models``: ``{"object": "list", "data": [{"id": "hostile", ...}]}``
  (the id is ``--model``);
- ``GET /version``: 404 (not vLLM, so no ``return_token_ids``);
- ``GET /metrics``: ``vllm:num_requests_running 0`` and ``..._waiting 0``;
- ``POST /v1/chat/completions``: streams (``text/event-stream``).

Behaviours (:data:`HOSTILE_BEHAVIOURS`):

``normal``
    Streams "The answer is 42." as five tokens (``--answer-tokens N``: " 42"
    N times; ``--token-interval-s``: a pause before each) for every branch of any ``n``
    (fewer if ``max_tokens`` is smaller, finishing with ``length``), each branch
    finishing with ``stop``, then a usage chunk, then ``[DONE]``.
``error_chunk``
    Two tokens per branch, then ``data: {"error": {"message": ...}}``.
``http400``
    Every chat request: 400 with an OpenAI error body.
``http401_echo``
    Every chat request: 401 whose error message echoes the ``Authorization``
    header it got (the key).
``bad_json``
    ``data: {not json``.
``deep_json``
    One chunk nested 100,000 levels (``[[[...]]]``, 200 kB).
``huge_line``
    ``data: {"choices": [{"index": 0, "delta": {"content": "xxx...`` for
    ``--size-bytes`` (default 128 MB) with no line end, then the connection closes.
``huge_content``
    One chunk whose ``content`` is ``--size-bytes`` (default 64 MB) long, then
    ``[DONE]``.
``trickle_models``
    ``/v1/models`` sends its headers, then one byte a second, forever; chat is
    ``normal``.
``junk_metrics``
    ``/metrics`` answers ``--size-bytes`` (default 64 MB) of junk lines,
    half of them starting like vLLM's load metrics; chat is ``normal``.
``echo_secret_stream``
    One token, then a mid-stream error chunk echoing the ``Authorization``
    header.
``always_503``
    Every chat request: 503 with ``Retry-After: 1`` and vLLM's "engine is
    currently busy" body.
``slow_headers``
    Every chat request waits ``--delay-s`` (default 30) before its response
    headers, then streams like ``normal``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import select
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["HOSTILE_BEHAVIOURS", "hostile_server", "main"]

HOSTILE_BEHAVIOURS = (
    "normal",
    "error_chunk",
    "http400",
    "http401_echo",
    "bad_json",
    "deep_json",
    "huge_line",
    "huge_content",
    "trickle_models",
    "junk_metrics",
    "echo_secret_stream",
    "always_503",
    "slow_headers",
)

ANSWER_TOKENS = ("The", " answer", " is", " 42", ".")
_PIECE = 64 << 10  # bytes written at a time in the big bodies
_DEFAULT_SIZES = {"huge_line": 128 << 20, "huge_content": 64 << 20, "junk_metrics": 64 << 20}
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            503: "Service Unavailable"}  # fmt: skip
_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Options:
    behaviour: str
    model: str = "hostile"
    delay_s: float = 30.0
    size_bytes: int | None = None
    answer_tokens: int | None = None
    """``normal`` answers with this many tokens (`` 42`` repeated) instead of five."""
    token_interval_s: float = 0.0
    """``normal`` waits this long before each token, as a decoding server does."""

    def answer(self) -> tuple[str, ...]:
        return ANSWER_TOKENS if self.answer_tokens is None else (" 42",) * self.answer_tokens

    def size(self) -> int:
        return self.size_bytes if self.size_bytes is not None else _DEFAULT_SIZES[self.behaviour]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


# -- HTTP/1.1, one request per connection --------------------------------------------


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = [*lines[0].split(" "), "", ""][:3]
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(length) if length else b""
    return Request(method, path.split("?")[0], headers, body)


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in {**headers, "Connection": "close"}.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _send(
    writer: asyncio.StreamWriter, status: int, body: bytes, content_type: str, **extra: str
) -> None:
    headers = {"Content-Type": content_type, "Content-Length": str(len(body)), **extra}
    writer.write(_head(status, headers) + body)
    await writer.drain()


async def _send_json(writer: asyncio.StreamWriter, status: int, value: Any, **extra: str) -> None:
    await _send(writer, status, json.dumps(value).encode(), "application/json", **extra)


async def _stream(writer: asyncio.StreamWriter, parts: AsyncIterator[bytes], kind: str) -> None:
    """A body without a length: it ends when the connection closes."""
    writer.write(_head(200, {"Content-Type": kind, "Cache-Control": "no-cache"}))
    async for part in parts:
        writer.write(part)
        await writer.drain()


# -- what the server says --------------------------------------------------------------


def _sse(value: Any) -> bytes:
    data = value if isinstance(value, str) else json.dumps(value)
    return f"data: {data}\n\n".encode()


def _chunk(model: str, index: int, text: str | None, finish: str | None) -> dict[str, Any]:
    delta: dict[str, Any] = {} if text is None else {"content": text}
    return {
        "id": "chatcmpl-hostile",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }


def _asked(request: Request) -> tuple[int, int]:
    """``(n, max_tokens)`` of a chat request, with OpenAI's defaults."""
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        body = {}
    n = body.get("n", 1) if isinstance(body, dict) else 1
    max_tokens = body.get("max_tokens", 16) if isinstance(body, dict) else 16
    return max(1, int(n)), max(1, int(max_tokens))


async def _answer(options: Options, request: Request) -> AsyncIterator[bytes]:
    n, max_tokens = _asked(request)
    answer = options.answer()
    tokens = answer[:max_tokens]
    for position, token in enumerate(tokens):
        last = position == len(tokens) - 1
        finish = ("stop" if len(tokens) == len(answer) else "length") if last else None
        if options.token_interval_s > 0:
            await asyncio.sleep(options.token_interval_s)
        for index in range(n):
            yield _sse(_chunk(options.model, index, token, finish))
    usage = {"prompt_tokens": 10, "completion_tokens": n * len(tokens),
             "total_tokens": 10 + n * len(tokens)}  # fmt: skip
    yield _sse({"id": "chatcmpl-hostile", "object": "chat.completion.chunk", "created": 0,
                "model": options.model, "choices": [], "usage": usage})  # fmt: skip
    yield _sse("[DONE]")


async def _error_chunk(options: Options, request: Request) -> AsyncIterator[bytes]:
    n, _ = _asked(request)
    for token in ANSWER_TOKENS[:2]:
        for index in range(n):
            yield _sse(_chunk(options.model, index, token, None))
    yield _sse({"error": {"message": "EngineCore encountered an issue", "code": 500}})
    yield _sse("[DONE]")


async def _echo_secret(options: Options, request: Request) -> AsyncIterator[bytes]:
    yield _sse(_chunk(options.model, 0, "The", None))
    auth = request.headers.get("authorization", "")
    yield _sse({"error": {"message": f"upstream refused the request: Authorization: {auth}"}})


async def _one(part: bytes) -> AsyncIterator[bytes]:
    yield part


async def _huge_line(options: Options) -> AsyncIterator[bytes]:
    yield b'data: {"choices": [{"index": 0, "delta": {"content": "'
    piece = b"x" * _PIECE
    for _ in range(options.size() // _PIECE):
        yield piece


async def _huge_content(options: Options) -> AsyncIterator[bytes]:
    yield b'data: {"choices": [{"index": 0, "delta": {"content": "'
    piece = b"x" * _PIECE
    for _ in range(options.size() // _PIECE):
        yield piece
    yield b'"}, "finish_reason": "stop"}]}\n\n'
    yield _sse("[DONE]")


async def _trickle() -> AsyncIterator[bytes]:
    yield b'{"object": "list", "data": ['
    while True:
        await asyncio.sleep(1.0)
        yield b" "


async def _junk_metrics(options: Options) -> AsyncIterator[bytes]:
    lines = (b'vllm:num_requests_running{model_name="\xff\x00 }} NaN junk\n'
             b"#!{{ not prometheus at all ]] 1 2 3 4 5\n") * 256  # fmt: skip
    for _ in range(options.size() // len(lines)):
        yield lines


async def _chat(options: Options, request: Request, writer: asyncio.StreamWriter) -> None:
    behaviour = options.behaviour
    sse = "text/event-stream"
    if behaviour == "http400":
        error = {"message": "hostile: bad request", "type": "BadRequestError", "code": 400}
        await _send_json(writer, 400, {"error": error})
    elif behaviour == "http401_echo":
        auth = request.headers.get("authorization", "")
        await _send_json(writer, 401, {"error": {"message": f"invalid key in {auth!r}"}})
    elif behaviour == "always_503":
        busy = {"message": "The engine is currently busy", "code": 503}
        await _send_json(writer, 503, {"error": busy}, **{"Retry-After": "1"})
    elif behaviour == "error_chunk":
        await _stream(writer, _error_chunk(options, request), sse)
    elif behaviour == "echo_secret_stream":
        await _stream(writer, _echo_secret(options, request), sse)
    elif behaviour == "bad_json":
        await _stream(writer, _one(b"data: {not json\n\n"), sse)
    elif behaviour == "deep_json":
        await _stream(writer, _one(b"data: " + b"[" * 100_000 + b"]" * 100_000 + b"\n\n"), sse)
    elif behaviour == "huge_line":
        await _stream(writer, _huge_line(options), sse)
    elif behaviour == "huge_content":
        await _stream(writer, _huge_content(options), sse)
    else:
        if behaviour == "slow_headers":
            await asyncio.sleep(options.delay_s)
        await _stream(writer, _answer(options, request), sse)


async def _route(options: Options, request: Request, writer: asyncio.StreamWriter) -> None:
    behaviour = options.behaviour
    if request.path == "/health":
        await _send(writer, 200, b"", "text/plain")
    elif request.path == "/v1/models":
        if behaviour == "trickle_models":
            await _stream(writer, _trickle(), "application/json")
        else:
            model = {"id": options.model, "object": "model", "owned_by": "hostile"}
            await _send_json(writer, 200, {"object": "list", "data": [model]})
    elif request.path == "/metrics":
        if behaviour == "junk_metrics":
            await _stream(writer, _junk_metrics(options), "text/plain; version=0.0.4")
        else:
            text = b"vllm:num_requests_running 0\nvllm:num_requests_waiting 0\n"
            await _send(writer, 200, text, "text/plain; version=0.0.4")
    elif request.path == "/v1/chat/completions" and request.method == "POST":
        await _chat(options, request, writer)
    else:
        await _send_json(writer, 404, {"error": {"message": f"no route {request.path}"}})


async def _serve(options: Options, host: str, port: int) -> None:
    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _read_request(reader)
            if request is not None:
                await _route(options, request, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: expected, it stops reading at its caps
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(connection, host, port, limit=1 << 20)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on http://{host}:{bound}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="0 takes a free port")
    parser.add_argument("--behaviour", choices=HOSTILE_BEHAVIOURS, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--model", default="hostile")
    parser.add_argument("--delay-s", type=float, default=30.0)
    parser.add_argument("--size-bytes", type=int, default=None)
    parser.add_argument("--answer-tokens", type=int, default=None)
    parser.add_argument("--token-interval-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    options = Options(args.behaviour, args.model, args.delay_s, args.size_bytes,
                      args.answer_tokens, args.token_interval_s)  # fmt: skip
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(options, args.host, args.port))


# -- from a test -------------------------------------------------------------------------


@contextlib.contextmanager
def hostile_server(
    behaviour: str, *, start_timeout_s: float = 20.0, **options: object
) -> Iterator[str]:
    """Run the server with ``behaviour`` on a free loopback port; yield its base URL
    once ``/health`` answers; kill it on exit. ``options`` become flags."""
    if behaviour not in HOSTILE_BEHAVIOURS:
        raise ValueError(f"unknown behaviour {behaviour!r}; known: {HOSTILE_BEHAVIOURS}")
    args = [sys.executable, "-m", "tests.support.hostile_server", "--port", "0",
            "--behaviour", behaviour]  # fmt: skip
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(args, cwd=_ROOT, stdout=subprocess.PIPE, stderr=errors)
        try:
            url = _started(process, errors, start_timeout_s)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
            if process.stdout is not None:
                process.stdout.close()


def _started(process: subprocess.Popen[bytes], errors: Any, timeout_s: float) -> str:
    """The URL the process printed, once its ``/health`` answers 200."""
    assert process.stdout is not None
    until = time.monotonic() + timeout_s
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    line = process.stdout.readline().decode() if ready else ""
    if not line.startswith("listening on "):
        process.kill()
        process.wait(timeout=5)
        errors.seek(0)
        raise RuntimeError(f"hostile server did not start: {errors.read().decode()[-2000:]}")
    url = line.removeprefix("listening on ").strip()
    while time.monotonic() < until:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                if response.status == 200:
                    return url
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise RuntimeError(f"hostile server at {url} did not answer /health in {timeout_s} s")


if __name__ == "__main__":
    main()
