"""One OpenAI-compatible endpoint over httpx: probes and streaming requests.

This is the boundary where httpx and JSON errors become agentrt errors:
connection failures, resets and 503/429 are :class:`EndpointUnavailable`
(retryable elsewhere), other 4xx are :class:`EndpointRejected`, an unknown model
is :class:`ModelNotServed`, and a body that is not the OpenAI API is
:class:`ProtocolError`. The API key goes only to this endpoint's own URL.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Mapping
from typing import Any

import httpx

from agentrt.core._clock import Clock
from agentrt.core._errors import (
    EndpointRejected,
    EndpointUnavailable,
    ModelNotServed,
    ProtocolError,
)
from agentrt.pool._endpoint import EndpointSpec
from agentrt.pool._metrics import parse_prometheus_text
from agentrt.pool._protocol import ChatRequest
from agentrt.pool._stream import ChatStream

__all__ = ["EndpointClient"]

_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_ERROR_BODY_LIMIT = 2000


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
        if self.spec.api_key is not None:
            headers["Authorization"] = f"Bearer {self.spec.api_key.get_secret_value()}"
        return headers

    def _redact(self, text: str) -> str:
        """``text`` with this endpoint's key blanked (a server may echo what it got)."""
        if self.spec.api_key is None or not self.spec.api_key.get_secret_value():
            return text
        return text.replace(self.spec.api_key.get_secret_value(), "**********")

    # -- probes ---------------------------------------------------------------

    async def health(self, timeout_s: float = 2.0) -> bool:
        """``GET /health`` answered 200 within ``timeout_s``."""
        try:
            response = await self._http.get(
                f"{self.url}/health", headers=self._headers(), timeout=timeout_s
            )
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def models(self, timeout_s: float = 5.0) -> list[str]:
        """The model ids ``/v1/models`` lists."""
        body = await self._get_json("/v1/models", timeout_s)
        data = body.get("data")
        if not isinstance(data, list) or not all(
            isinstance(m, dict) and isinstance(m.get("id"), str) for m in data
        ):
            raise ProtocolError(self.url, f"/v1/models is not an OpenAI model list: {body!r:.200}")
        return [m["id"] for m in data]

    async def version(self, timeout_s: float = 5.0) -> str | None:
        """vLLM's ``/version``, or ``None`` for servers without it."""
        try:
            body = await self._get_json("/version", timeout_s)
        except (EndpointRejected, ProtocolError):
            return None
        version = body.get("version")
        return str(version) if version is not None else None

    async def metrics(
        self, timeout_s: float = 2.0, names: Collection[str] | None = None
    ) -> dict[str, float]:
        """vLLM's Prometheus ``/metrics``, summed by metric name (only ``names`` if given)."""
        response = await self._request("GET", "/metrics", timeout_s)
        return parse_prometheus_text(response.text, names)

    async def resolve_model(self, wanted: str | None) -> str:
        """The model to ask for: ``wanted`` if served, else the first served one."""
        served = await self.models()
        if not served:
            raise ProtocolError(self.url, "/v1/models lists no model")
        if wanted is None:
            return served[0]
        if wanted not in served:
            raise ModelNotServed(self.url, wanted, served)
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
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
    ) -> ChatStream:
        """Send ``request`` and return once the response headers are in."""
        timeout = httpx.Timeout(
            connect=connect_timeout_s, read=read_timeout_s, write=connect_timeout_s, pool=None
        )
        http_request = self._http.build_request(
            "POST",
            f"{self.url}/v1/chat/completions",
            json=request.payload(model, stream=True, vllm=vllm),
            headers=self._headers(headers),
            timeout=timeout,
        )
        try:
            response = await self._http.send(http_request, stream=True)
        except httpx.TimeoutException as exc:
            raise EndpointUnavailable(self.url, f"no response headers in time: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise EndpointUnavailable(self.url, f"connection failed: {exc!r}") from exc
        if response.status_code != 200:
            try:
                body = (await response.aread())[:_ERROR_BODY_LIMIT]
            finally:
                await response.aclose()
            raise self._status_error(response.status_code, body, model)
        content_type = response.headers.get("content-type", "")
        if "text/event-stream" not in content_type:
            await response.aclose()
            raise ProtocolError(
                self.url, f"expected a text/event-stream, got content-type {content_type!r}"
            )
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

    async def _request(self, method: str, path: str, timeout_s: float) -> httpx.Response:
        try:
            response = await self._http.request(
                method, f"{self.url}{path}", headers=self._headers(), timeout=timeout_s
            )
        except httpx.TransportError as exc:
            raise EndpointUnavailable(self.url, f"{path}: connection failed: {exc!r}") from exc
        if response.status_code != 200:
            raise self._status_error(response.status_code, response.content[:_ERROR_BODY_LIMIT])
        return response

    async def _get_json(self, path: str, timeout_s: float) -> dict[str, Any]:
        response = await self._request("GET", path, timeout_s)
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProtocolError(
                self.url, self._redact(f"{path} did not answer JSON: {response.text[:200]!r}")
            ) from exc
        if not isinstance(body, dict):
            raise ProtocolError(
                self.url, self._redact(f"{path} did not answer a JSON object: {body!r:.200}")
            )
        return body

    def _status_error(
        self, status: int, body: bytes, model: str | None = None
    ) -> EndpointUnavailable | EndpointRejected | ModelNotServed:
        message = self._redact(_error_message(body))
        if status in _RETRYABLE_STATUS:
            return EndpointUnavailable(self.url, f"HTTP {status}: {message}", status)
        if status == 404 and model is not None and "model" in message.lower():
            return ModelNotServed(self.url, model, [])
        return EndpointRejected(self.url, f"HTTP {status}: {message}", status)


def _error_message(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return text[:300]
    if isinstance(parsed, dict):
        error = parsed.get("error", parsed)
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])[:300]
        if "message" in parsed:
            return str(parsed["message"])[:300]
    return text[:300]
