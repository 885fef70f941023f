"""One OpenAI-compatible endpoint over httpx: probes and streaming requests.

This is the boundary where httpx and JSON errors become agentrt errors:
connection failures, resets and 503/429 are :class:`EndpointUnavailable`
(retryable elsewhere), other 4xx are :class:`EndpointRejected`, an unknown model
is :class:`ModelNotServed`, and a body that is not the OpenAI API is
:class:`ProtocolError`. Nothing else leaves this module. The API key goes only
to this endpoint's own URL.

A hostile or broken server cannot hang or bloat the caller here:

- every probe (``/health``, ``/v1/models``, ``/version``, ``/metrics``) runs
  under a *total* time limit on the pool's clock, not only httpx's per-read
  timeouts, so a server trickling one byte a second fails the probe in
  ``timeout_s`` (:class:`EndpointUnavailable`);
- every body is read with a byte cap (streamed, stopped at the cap), never
  ``response.content`` of an unbounded body: error bodies
  (:data:`ERROR_BODY_BYTES`), model lists, versions and metrics;
- bodies are asked for uncompressed (``Accept-Encoding: identity``) and a
  compressed one is refused, so a small gzip bomb cannot expand past the caps;
- server text in messages is redacted before it is cut
  (:func:`~agentrt.pool._protocol.excerpt`): a key a server echoes back never
  reaches an error, whole or in part.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from agentrt.core._clock import Clock, timeout_after
from agentrt.core._errors import (
    ConfigurationError,
    EndpointError,
    EndpointRejected,
    EndpointUnavailable,
    ModelNotServed,
    ProtocolError,
)
from agentrt.pool._endpoint import EndpointSpec
from agentrt.pool._metrics import parse_prometheus_text
from agentrt.pool._protocol import ChatRequest, excerpt, load_json, size_text
from agentrt.pool._stream import ChatStream

__all__ = [
    "ERROR_BODY_BYTES",
    "HEALTH_TIMEOUT_S",
    "METRICS_BODY_BYTES",
    "MODELS_BODY_BYTES",
    "PROBE_TIMEOUT_S",
    "EndpointClient",
]

_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})

PROBE_TIMEOUT_S = 5.0
"""Total seconds ``/v1/models`` and ``/version`` each get to answer in full."""
HEALTH_TIMEOUT_S = 2.0
"""Total seconds ``/health`` and ``/metrics`` each get."""

ERROR_BODY_BYTES = 64 << 10
"""Bytes of an error body read (its message is quoted, cut to 300 characters)."""
MODELS_BODY_BYTES = 1 << 20
"""Bytes a ``/v1/models`` or ``/version`` answer may have (vLLM's is ~300)."""
METRICS_BODY_BYTES = 8 << 20
"""Bytes a ``/metrics`` answer may have (vLLM's is ~100-300 KiB)."""

MESSAGE_CHARS = 300
"""Characters of a server's error message quoted in ours."""
MAX_MODEL_ID_CHARS = 1024
"""Characters a served model id may have (it goes into every request)."""
_SHOWN_MODELS = 20  # served models a ModelNotServed lists


@dataclass(frozen=True)
class _Answer:
    """A response read under the caps: status, body, and whether it was cut."""

    status: int
    body: bytes
    complete: bool


class EndpointClient:
    """Talks to one endpoint through a shared :class:`httpx.AsyncClient`."""

    def __init__(self, spec: EndpointSpec, http: httpx.AsyncClient, clock: Clock) -> None:
        self.spec = spec
        self._http = http
        self._clock = clock

    @property
    def url(self) -> str:
        return self.spec.url

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        headers["Accept-Encoding"] = "identity"  # nothing to decompress: the caps hold
        if self.spec.api_key is not None:
            headers["Authorization"] = f"Bearer {self.spec.api_key.get_secret_value()}"
        return headers

    # -- probes ---------------------------------------------------------------

    async def health(self, timeout_s: float = HEALTH_TIMEOUT_S) -> bool:
        """``GET /health`` answered 200 within ``timeout_s`` (in total)."""
        try:
            answer = await self._fetch("/health", timeout_s, ERROR_BODY_BYTES)
        except EndpointError:
            return False
        return answer.status == 200

    async def models(self, timeout_s: float = PROBE_TIMEOUT_S) -> list[str]:
        """The model ids ``/v1/models`` lists."""
        body = await self._get_json("/v1/models", timeout_s)
        data = body.get("data")
        if not isinstance(data, list) or not all(
            isinstance(m, dict)
            and isinstance(m.get("id"), str)
            and 0 < len(m["id"]) <= MAX_MODEL_ID_CHARS
            for m in data
        ):
            raise ProtocolError(
                self.url, f"/v1/models is not an OpenAI model list: {excerpt(repr(body), 200)}"
            )
        return [m["id"] for m in data]

    async def version(self, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
        """vLLM's ``/version``, or ``None`` for servers without it."""
        try:
            body = await self._get_json("/version", timeout_s)
        except (EndpointRejected, ProtocolError):
            return None
        version = body.get("version")
        return excerpt(str(version), 100) if version is not None else None

    async def metrics(
        self, timeout_s: float = HEALTH_TIMEOUT_S, names: Collection[str] | None = None
    ) -> dict[str, float]:
        """vLLM's Prometheus ``/metrics``, summed by metric name (only ``names`` if given)."""
        body = await self._get_ok("/metrics", timeout_s, METRICS_BODY_BYTES)
        try:
            return parse_prometheus_text(body.decode("utf-8", errors="replace"), names)
        except (ValueError, TypeError, IndexError, KeyError) as exc:  # the parser's junk
            raise ProtocolError(self.url, f"/metrics is not Prometheus text: {exc!r}") from exc

    async def resolve_model(self, wanted: str | None) -> str:
        """The model to ask for: ``wanted`` if served, else the first served one."""
        served = await self.models()
        if not served:
            raise ProtocolError(self.url, "/v1/models lists no model")
        if wanted is None:
            return served[0]
        if wanted not in served:
            raise ModelNotServed(self.url, wanted, _shown_models(served))
        return wanted

    # -- streaming --------------------------------------------------------------

    async def open_stream(
        self,
        request: ChatRequest,
        *,
        model: str,
        started_at: float,
        deadline_at: float = math.inf,
        headers: Mapping[str, str] | None = None,
        on_close: Callable[[ChatStream], None] | None = None,
        vllm: bool = False,
        priority: int | None = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
    ) -> ChatStream:
        """Send ``request`` and return once the response headers are in."""
        timeout = httpx.Timeout(
            connect=connect_timeout_s, read=read_timeout_s, write=connect_timeout_s, pool=None
        )
        try:
            http_request = self._http.build_request(
                "POST",
                f"{self.url}/v1/chat/completions",
                json=request.payload(model, stream=True, vllm=vllm, priority=priority),
                headers=self._headers(headers),
                timeout=timeout,
            )
        except (TypeError, ValueError) as exc:  # e.g. a message holding a non-JSON value
            raise ConfigurationError(f"the chat request is not JSON-serialisable: {exc}") from exc
        try:
            response = await self._http.send(http_request, stream=True)
        except httpx.TimeoutException as exc:
            raise EndpointUnavailable(self.url, f"no response headers in time: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise EndpointUnavailable(self.url, f"connection failed: {exc!r}") from exc
        try:
            if response.status_code != 200:
                body = await self._error_body(response)
                raise self._status_error(response.status_code, body, model)
            self._check_encoding(response, "/v1/chat/completions")
            content_type = response.headers.get("content-type", "")
            if "text/event-stream" not in content_type:
                raise ProtocolError(
                    self.url, f"expected a text/event-stream, got content-type "
                    f"{excerpt(content_type)!r}",
                )  # fmt: skip
        except BaseException:
            await _close_quietly(response)
            raise
        return ChatStream(
            response=response,
            request=request,
            url=self.url,
            clock=self._clock,
            started_at=started_at,
            deadline_at=deadline_at,
            on_close=on_close,
        )

    # -- internals --------------------------------------------------------------

    async def _fetch(self, path: str, timeout_s: float, limit: int) -> _Answer:
        """``GET path``, its body read up to ``limit`` bytes, all within ``timeout_s``."""
        body = bytearray()
        try:
            async with (
                timeout_after(timeout_s, clock=self._clock),
                self._http.stream(
                    "GET", f"{self.url}{path}", headers=self._headers(), timeout=timeout_s
                ) as response,
            ):
                self._check_encoding(response, path)
                cap = limit if response.status_code == 200 else ERROR_BODY_BYTES
                complete = await _read_capped(response, cap, body)
                return _Answer(response.status_code, bytes(body), complete)
        except TimeoutError as exc:  # our total limit, not httpx's per-read one
            raise EndpointUnavailable(
                self.url, f"{path}: no complete answer within {timeout_s:g} s"
            ) from exc
        except httpx.TimeoutException as exc:
            raise EndpointUnavailable(self.url, f"{path}: timed out: {exc!r}") from exc
        except (httpx.HTTPError, httpx.StreamError) as exc:
            raise EndpointUnavailable(self.url, f"{path}: connection failed: {exc!r}") from exc

    async def _get_ok(self, path: str, timeout_s: float, limit: int) -> bytes:
        answer = await self._fetch(path, timeout_s, limit)
        if answer.status != 200:
            raise self._status_error(answer.status, answer.body)
        if not answer.complete:
            raise ProtocolError(
                self.url, f"{path} answered more than {size_text(limit)} (the limit for it)"
            )
        return answer.body

    async def _get_json(self, path: str, timeout_s: float) -> dict[str, Any]:
        body = await self._get_ok(path, timeout_s, MODELS_BODY_BYTES)
        parsed = load_json(
            body.decode("utf-8", errors="replace"), self.url, f"{path} did not answer JSON"
        )
        if not isinstance(parsed, dict):
            raise ProtocolError(
                self.url, f"{path} did not answer a JSON object: {excerpt(repr(parsed), 200)}"
            )
        return parsed

    async def _error_body(self, response: httpx.Response) -> bytes:
        """Up to :data:`ERROR_BODY_BYTES` of an error body, within
        :data:`HEALTH_TIMEOUT_S`: what arrived by then is all the message gets."""
        body = bytearray()
        try:
            async with timeout_after(HEALTH_TIMEOUT_S, clock=self._clock):
                await _read_capped(response, ERROR_BODY_BYTES, body)
        except (TimeoutError, httpx.HTTPError, httpx.StreamError):
            pass  # a slow or broken error body: the status says enough
        return bytes(body)

    def _check_encoding(self, response: httpx.Response, path: str) -> None:
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise ProtocolError(
                self.url, f"{path}: sent a {excerpt(encoding, 40)!r}-encoded body although "
                "asked for identity (compressed bodies are refused: they defeat the size caps)",
            )  # fmt: skip

    def _status_error(
        self, status: int, body: bytes, model: str | None = None
    ) -> EndpointUnavailable | EndpointRejected | ModelNotServed:
        message = _error_message(body, self.url)
        if status in _RETRYABLE_STATUS:
            return EndpointUnavailable(self.url, f"HTTP {status}: {message}", status)
        if status == 404 and model is not None and "model" in message.lower():
            return ModelNotServed(self.url, model, [])
        return EndpointRejected(self.url, f"HTTP {status}: {message}", status)


async def _read_capped(response: httpx.Response, limit: int, into: bytearray) -> bool:
    """Append ``response``'s body to ``into`` up to ``limit`` bytes; ``False`` if
    there was more (the rest is never read: closing the response drops it)."""
    async for chunk in response.aiter_bytes():
        room = limit - len(into)
        if len(chunk) > room:
            into += chunk[:room]
            return False
        into += chunk
    return True


async def _close_quietly(response: httpx.Response) -> None:
    with contextlib.suppress(httpx.HTTPError, httpx.StreamError):  # gone either way
        await response.aclose()


def _error_message(body: bytes, url: str) -> str:
    """The message an error body carries (OpenAI's ``error.message`` when it is
    JSON), redacted then cut to :data:`MESSAGE_CHARS`."""
    text = body.decode("utf-8", errors="replace")
    try:
        parsed = load_json(text, url, "error body")
    except ProtocolError:
        return excerpt(text, MESSAGE_CHARS)
    if isinstance(parsed, dict):
        error = parsed.get("error", parsed)
        if isinstance(error, dict) and "message" in error:
            return excerpt(str(error["message"]), MESSAGE_CHARS)
        if "message" in parsed:
            return excerpt(str(parsed["message"]), MESSAGE_CHARS)
    return excerpt(text, MESSAGE_CHARS)


def _shown_models(served: list[str]) -> list[str]:
    """What a :class:`ModelNotServed` lists: the first few ids, redacted and cut."""
    shown = [excerpt(m, 100) for m in served[:_SHOWN_MODELS]]
    if len(served) > _SHOWN_MODELS:
        shown.append(f"... {len(served) - _SHOWN_MODELS} more")
    return shown
