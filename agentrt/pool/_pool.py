"""The endpoint pool: routing, ejection and re-admission, deadline-bounded retries.

:class:`EndpointPool` is the one seam between agentrt and the servers. It
routes each request to the least-loaded healthy endpoint of the group asked
for, ejects an endpoint whose connection fails and re-admits it once
``/health`` answers again, and retries connection failures and 503 admission
rejections with tenacity, never past the caller's deadline. Everything it does
to the network goes through one :class:`httpx.AsyncClient`, so tests can hand
it an :class:`httpx.MockTransport`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)
from tenacity.stop import stop_base

from agentrt.core._clock import Clock, current_clock, timeout_at
from agentrt.core._deadline import Deadline, current_deadline
from agentrt.core._errors import (
    EndpointConfigError,
    EndpointError,
    EndpointUnavailable,
    NoHealthyEndpoint,
    ProtocolError,
)
from agentrt.pool._client import EndpointClient
from agentrt.pool._endpoint import PLAIN_GROUP, EndpointSpec, EndpointState
from agentrt.pool._events import OnEndpoint, RequestSent
from agentrt.pool._protocol import ChatRequest
from agentrt.pool._stream import ChatStream

__all__ = ["Backend", "EndpointPool", "RetrySettings"]

LOAD_METRICS = ("vllm:num_requests_running", "vllm:num_requests_waiting")
"""What the load check reads from each endpoint's ``/metrics``."""


class Backend(Protocol):
    """The narrow seam the executor talks to: open one streaming request.

    ``exclude`` lists endpoint URLs to avoid (a hedge or a re-issue goes
    elsewhere; they are used only when nothing else is healthy);
    ``on_endpoint`` is told each attempt (:class:`RequestSent`: endpoint, model,
    group), so a caller knows where a request waits even before its response
    headers come. The pool adds no headers of its own: trace context comes in
    ``headers`` from the caller.
    """

    def stream(
        self,
        request: ChatRequest,
        *,
        group: str = PLAIN_GROUP,
        deadline: Deadline | None = None,
        headers: Mapping[str, str] | None = None,
        exclude: frozenset[str] = frozenset(),
        on_endpoint: OnEndpoint | None = None,
    ) -> contextlib.AbstractAsyncContextManager[ChatStream]: ...


@dataclass(frozen=True)
class RetrySettings:
    """How hard to retry opening a request. Waits grow exponentially (no jitter,
    so runs replay); no attempt starts when its wait would pass the deadline."""

    max_attempts: int = 4
    initial_wait_s: float = 0.05
    max_wait_s: float = 1.0


class _StopAtDeadline(stop_base):
    """Stop retrying when the next wait would end past the deadline."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        upcoming = retry_state.upcoming_sleep or 0.0
        return self.deadline.remaining() <= upcoming


CONNECTIONS_PER_ENDPOINT = 256
"""Connections the pool opens to one endpoint at most: a vLLM server's running
batch (``--max-num-seqs``, 256 by default on a GPU; 128 in the CPU build).
One request is one connection whatever its ``n``; past the server's batch a
request would only wait in the server's queue, so it waits here instead, where
its deadline still bounds the wait and cancelling it costs nothing."""


def _origins(specs: Sequence[EndpointSpec]) -> dict[str, bool]:
    """``scheme://host:port`` of each endpoint -> verify its TLS (all its specs must)."""
    origins: dict[str, bool] = {}
    for spec in specs:
        parts = urlsplit(spec.url)
        origin = f"{parts.scheme}://{parts.netloc}"
        origins[origin] = origins.get(origin, True) and spec.verify_tls
    return origins


class EndpointPool:
    """A pool of OpenAI-compatible endpoints in named groups.

    Use it as an async context manager: entering probes every endpoint (model,
    version, health) and starts the health monitor; leaving stops it and closes
    connections.
    """

    def __init__(
        self,
        specs: Sequence[EndpointSpec],
        *,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetrySettings | None = None,
        health_interval_s: float = 1.0,
        connections_per_endpoint: int = CONNECTIONS_PER_ENDPOINT,
    ) -> None:
        if not specs:
            raise EndpointConfigError("EndpointPool needs at least one endpoint, got none")
        urls = [s.url for s in specs]
        duplicates = sorted({u for u in urls if urls.count(u) > 1})
        if duplicates:
            raise EndpointConfigError(f"endpoints listed twice: {duplicates}")
        self._clock = clock or current_clock()
        self._retry = retry or RetrySettings()
        self._health_interval_s = health_interval_s
        # One connection pool per endpoint (origin), so an endpoint that stalls
        # with its connections open cannot use up the others'; TLS is verified
        # except on the endpoints that opt out, one by one.
        limits = httpx.Limits(
            max_connections=connections_per_endpoint,
            max_keepalive_connections=connections_per_endpoint,
        )
        verified = httpx.create_ssl_context()  # loading the CA bundle once, not per endpoint
        mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
        if transport is None:
            for origin, verify in _origins(specs).items():
                mounts[origin] = httpx.AsyncHTTPTransport(
                    verify=verified if verify else False, limits=limits
                )
        self._http = httpx.AsyncClient(
            transport=transport, limits=limits, verify=verified, mounts=mounts
        )
        self._states = [EndpointState(spec=s) for s in specs]
        self._clients = {s.url: EndpointClient(s, self._http, self._clock) for s in specs}
        self._monitor: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------

    async def __aenter__(self) -> EndpointPool:
        await self.probe()
        if self._health_interval_s > 0:
            self._monitor = asyncio.create_task(self._monitor_loop(), name="agentrt-pool-health")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        await self._http.aclose()

    async def probe(self) -> None:
        """Ask every endpoint for its model and version; eject those that do not answer.

        A model name that an answering endpoint does not serve is a configuration
        mistake and raises :class:`~agentrt.core._errors.ModelNotServed`.
        """
        await asyncio.gather(*(self._probe_one(state) for state in self._states))

    async def _probe_one(self, state: EndpointState) -> None:
        client = self._clients[state.url]
        try:
            state.served_model = await client.resolve_model(state.spec.model)
            state.version = await client.version()
        except EndpointUnavailable as exc:
            self._eject(state, exc)
            return
        self._readmit(state)

    # -- reading the pool -------------------------------------------------------

    @property
    def endpoints(self) -> list[EndpointState]:
        return list(self._states)

    @property
    def groups(self) -> dict[str, list[EndpointState]]:
        groups: dict[str, list[EndpointState]] = {}
        for state in self._states:
            groups.setdefault(state.spec.group, []).append(state)
        return groups

    def client(self, state: EndpointState) -> EndpointClient:
        return self._clients[state.url]

    def choose(
        self, group: str = PLAIN_GROUP, exclude: frozenset[str] = frozenset()
    ) -> EndpointState:
        """The least-loaded healthy endpoint of ``group`` not in ``exclude``.

        Excluded endpoints are used only when nothing else is healthy.
        """
        members = self.groups.get(group)
        if members is None:
            raise EndpointConfigError(
                f"unknown endpoint group {group!r}; configured groups: {sorted(self.groups)}"
            )
        now = self._clock.now()
        healthy = [s for s in members if s.healthy(now) and s.served_model is not None]
        preferred = [s for s in healthy if s.url not in exclude] or healthy
        if not preferred:
            raise NoHealthyEndpoint(group, len(members))
        return min(preferred, key=lambda s: (s.load, self._states.index(s)))

    # -- streaming ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def stream(
        self,
        request: ChatRequest,
        *,
        group: str = PLAIN_GROUP,
        deadline: Deadline | None = None,
        headers: Mapping[str, str] | None = None,
        exclude: frozenset[str] = frozenset(),
        on_endpoint: OnEndpoint | None = None,
    ) -> AsyncIterator[ChatStream]:
        """Open ``request`` on the best endpoint of ``group``; closing aborts it.

        ``deadline`` defaults to the ambient one. Opening is retried on
        connection failures and 503s while the deadline allows; reading stops
        quietly at the deadline (``stream.cut_by_deadline``). Endpoints in
        ``exclude`` are avoided while another is healthy; ``on_endpoint`` is
        told each attempt before it is sent.
        """
        stream = await self.open(
            request, group=group, deadline=deadline, headers=headers, exclude=exclude,
            on_endpoint=on_endpoint,
        )  # fmt: skip
        try:
            yield stream
        finally:
            await stream.aclose()

    async def open(
        self,
        request: ChatRequest,
        *,
        group: str = PLAIN_GROUP,
        deadline: Deadline | None = None,
        headers: Mapping[str, str] | None = None,
        exclude: frozenset[str] = frozenset(),
        on_endpoint: OnEndpoint | None = None,
    ) -> ChatStream:
        """Like :meth:`stream`, but the caller must ``aclose()`` the stream."""
        deadline = deadline or current_deadline() or Deadline.never(clock=self._clock)
        started_at = self._clock.now()
        tried: set[str] = set(exclude)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retry.max_attempts) | _StopAtDeadline(deadline),
            wait=wait_exponential(
                multiplier=self._retry.initial_wait_s, max=self._retry.max_wait_s
            ),
            retry=retry_if_exception_type((EndpointUnavailable, NoHealthyEndpoint)),
            sleep=self._clock.sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if deadline.expired:
                        raise deadline.exceeded()
                    try:
                        async with timeout_at(deadline.hard_at, clock=deadline.clock):
                            return await self._open_once(
                                request, group, deadline, headers, started_at,
                                frozenset(tried), on_endpoint,
                            )  # fmt: skip
                    except TimeoutError as exc:
                        raise deadline.exceeded() from exc
                if attempt.retry_state.outcome is not None and attempt.retry_state.outcome.failed:
                    error = attempt.retry_state.outcome.exception()
                    if isinstance(error, EndpointError):
                        tried.add(error.url)
        except (EndpointUnavailable, NoHealthyEndpoint) as exc:
            if deadline.expired:
                raise deadline.exceeded() from exc
            raise
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def _open_once(
        self,
        request: ChatRequest,
        group: str,
        deadline: Deadline,
        headers: Mapping[str, str] | None,
        started_at: float,
        exclude: frozenset[str],
        on_endpoint: OnEndpoint | None = None,
    ) -> ChatStream:
        try:
            state = self.choose(group, exclude)
        except NoHealthyEndpoint:
            await self.check_health()
            state = self.choose(group, exclude)
        assert state.served_model is not None
        if on_endpoint is not None:
            on_endpoint(
                RequestSent(
                    url=state.url, address=state.spec.address, group=state.spec.group,
                    model=state.served_model, vllm=state.version is not None,
                    draft_tokens=state.spec.draft_tokens,
                )
            )  # fmt: skip
        state.in_flight += request.n
        try:
            stream = await self.client(state).open_stream(
                request,
                model=state.served_model,
                started_at=started_at,
                deadline_at=deadline.hard_at,
                headers=headers,
                on_close=lambda s: self._on_stream_closed(state, s),
                vllm=state.version is not None,
            )
        except (EndpointUnavailable, ProtocolError) as exc:
            state.in_flight -= request.n
            if exc.status_code is None:  # no answer, or not the OpenAI protocol: not mere load
                self._eject(state, exc)
            raise
        except BaseException:
            state.in_flight -= request.n
            raise
        state.consecutive_failures = 0
        return stream

    def _on_stream_closed(self, state: EndpointState, stream: ChatStream) -> None:
        state.in_flight -= stream.request.n
        if isinstance(stream.error, EndpointUnavailable | ProtocolError):
            self._eject(state, stream.error)

    # -- health -------------------------------------------------------------------

    def _eject(self, state: EndpointState, error: Exception) -> None:
        state.ejected_until = math.inf
        state.consecutive_failures += 1
        state.last_error = str(error)

    def _readmit(self, state: EndpointState) -> None:
        state.ejected_until = -math.inf
        state.last_error = None

    async def check_health(self) -> None:
        """Probe every ejected endpoint; re-admit those whose ``/health`` answers."""
        now = self._clock.now()
        ejected = [s for s in self._states if not s.healthy(now) or s.served_model is None]
        await asyncio.gather(*(self._recheck(s) for s in ejected))

    async def _recheck(self, state: EndpointState) -> None:
        if await self.client(state).health():
            await self._probe_one(state)

    async def refresh_load(self) -> None:
        """Read running/waiting sequences from each healthy endpoint's ``/metrics``."""
        now = self._clock.now()
        await asyncio.gather(*(self._refresh_one(s) for s in self._states if s.healthy(now)))

    async def _refresh_one(self, state: EndpointState) -> None:
        try:
            metrics = await self.client(state).metrics(names=LOAD_METRICS)
        except EndpointError:
            return
        state.metrics = metrics
        state.server_running = metrics.get("vllm:num_requests_running", 0.0)
        state.server_waiting = metrics.get("vllm:num_requests_waiting", 0.0)

    async def _monitor_loop(self) -> None:
        while True:
            await self._clock.sleep(self._health_interval_s)
            with contextlib.suppress(Exception):
                await self.check_health()
                await self.refresh_load()

    # -- an overview ----------------------------------------------------------------

    def snapshot(self) -> list[dict[str, object]]:
        """One row per endpoint: group, model, health, load (for ``agentrt status``)."""
        now = self._clock.now()
        return [
            {
                "url": s.url,
                "group": s.spec.group,
                "model": s.served_model,
                "version": s.version,
                "healthy": s.healthy(now) and s.served_model is not None,
                "in_flight": s.in_flight,
                "running": s.server_running,
                "waiting": s.server_waiting,
                "speculative": s.spec.speculative,
                "last_error": s.last_error,
            }
            for s in self._states
        ]
