"""The endpoint pool: routing, ejection and re-admission, deadline-bounded retries.

:class:`EndpointPool` is the one seam between agentrt and the servers. It
routes each request to the least-loaded healthy endpoint of the group asked
for, ejects an endpoint whose connection fails and re-admits it once
``/health`` answers again, and retries connection failures and 503 admission
rejections with tenacity (seeded jitter, an optional shared retry budget:
:mod:`agentrt.pool._retry`), never past the caller's deadline. Everything it
does to the network goes through :class:`httpx.AsyncClient` instances it owns
(one per TLS setting, with a connection pool per endpoint origin), so tests can
hand it an :class:`httpx.MockTransport`.

Against a hostile server the pool neither hangs nor stops: every probe has a
total time limit (:mod:`agentrt.pool._client`), and the health monitor handles
each endpoint's failure on its own (logged with
:func:`~agentrt.core._log.log_dropped`), so one endpoint's junk never stops the
others' checks nor the loop. Only agentrt errors leave the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Protocol
from urllib.parse import urlsplit

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt
from tenacity.stop import stop_base

from agentrt.core._clock import Clock, current_clock, timeout_at
from agentrt.core._deadline import DEADLINE_HEADER, Deadline, current_deadline
from agentrt.core._errors import (
    EndpointConfigError,
    EndpointError,
    EndpointUnavailable,
    NoHealthyEndpoint,
    ProtocolError,
)
from agentrt.core._log import log_dropped
from agentrt.core._redact import truncate_redacted
from agentrt.core._token_bucket import TokenBucket
from agentrt.pool._client import EndpointClient
from agentrt.pool._endpoint import PLAIN_GROUP, EndpointSpec, EndpointState
from agentrt.pool._events import OnEndpoint, RequestSent
from agentrt.pool._protocol import ChatRequest
from agentrt.pool._retry import JitteredWait, RetrySettings, StopAtDeadline, StopWithoutBudget
from agentrt.pool._stream import ChatStream

__all__ = ["Backend", "EndpointPool", "RetrySettings"]

_LAST_ERROR_CHARS = 500  # what a snapshot row quotes of an endpoint's last error
_MAX_SERVER_LOAD = 1e6  # a /metrics figure past this is junk, not load

LOAD_METRICS = ("vllm:num_requests_running", "vllm:num_requests_waiting")
"""What the load check reads from each endpoint's ``/metrics``."""


class Backend(Protocol):
    """The narrow seam the executor talks to: open one streaming request.

    ``exclude`` lists endpoint URLs to avoid (a hedge or a re-issue goes
    elsewhere; they are used only when nothing else is healthy);
    ``on_endpoint`` is told each attempt (:class:`RequestSent`: endpoint, model,
    group), so a caller knows where a request waits even before its response
    headers come. Trace context comes in ``headers`` from the caller; the pool
    adds the time the request may take (``agentrt-timeout``, gRPC's
    ``grpc-timeout`` format) so routers and servers that read it can act.
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


CONNECTIONS_PER_ENDPOINT = 256
"""Connections the pool opens to one endpoint at most: a vLLM server's running
batch (``--max-num-seqs``, 256 by default on a GPU; 128 in the CPU build).
One request is one connection whatever its ``n``; past the server's batch a
request would only wait in the server's queue, so it waits here instead, where
its deadline still bounds the wait and cancelling it costs nothing."""


def _with_time_left(deadline: Deadline, headers: Mapping[str, str] | None) -> dict[str, str]:
    """``headers`` plus the time ``deadline`` leaves, unless it never expires."""
    out = dict(headers or {})
    if not math.isinf(deadline.hard_at):
        out[DEADLINE_HEADER] = deadline.to_header()
    return out


def _origin(spec: EndpointSpec) -> str:
    """``scheme://host:port`` of an endpoint: what httpx mounts a transport on."""
    parts = urlsplit(spec.url)
    return f"{parts.scheme}://{parts.netloc}"


def _http_clients(
    specs: Sequence[EndpointSpec],
    transport: httpx.AsyncBaseTransport | None,
    connections_per_endpoint: int,
) -> dict[bool, httpx.AsyncClient]:
    """One :class:`httpx.AsyncClient` per TLS setting in use (``verify_tls`` ->
    client), each with one connection pool per origin.

    httpx picks a transport by origin only, so one client cannot verify one
    endpoint and not another at the same ``host:port`` (two paths behind one
    proxy): each setting gets its own client, and an endpoint that opts out
    turns checking off for itself alone. With ``transport`` given (tests), it
    serves every client.
    """
    limits = httpx.Limits(
        max_connections=connections_per_endpoint,
        max_keepalive_connections=connections_per_endpoint,
    )
    verified = httpx.create_ssl_context()  # loading the CA bundle once, not per endpoint
    clients: dict[bool, httpx.AsyncClient] = {}
    for verify in sorted({s.verify_tls for s in specs}):
        mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
        if transport is None:
            for origin in sorted({_origin(s) for s in specs if s.verify_tls == verify}):
                mounts[origin] = httpx.AsyncHTTPTransport(
                    verify=verified if verify else False, limits=limits
                )
        clients[verify] = httpx.AsyncClient(
            transport=transport, limits=limits, verify=verified if verify else False,
            mounts=mounts,
        )  # fmt: skip
    return clients


def _load_figure(value: float) -> float:
    """A server's running/waiting count as routing load: junk (negative, huge,
    infinite) is clamped, so a hostile ``/metrics`` cannot attract all traffic."""
    return min(max(0.0, value), _MAX_SERVER_LOAD)


class EndpointPool:
    """A pool of OpenAI-compatible endpoints in named groups.

    Use it as an async context manager: entering probes every endpoint (model,
    version, health) and starts the health monitor; leaving stops it and closes
    connections.

    ``retry`` tunes retries; ``retry_seed`` seeds their jitter (the pool owns the
    ``random.Random``, so the same seed waits the same). ``retry_budget`` is a
    :class:`~agentrt.core._token_bucket.TokenBucket` shared by every pool on the
    same servers (``None``: retries are bounded by ``max_attempts`` and the
    deadline only); the suggested one is
    ``TokenBucket(DEFAULT_RETRY_RATIO, DEFAULT_RETRY_BURST)``, 0.2 and 10.
    """

    def __init__(
        self,
        specs: Sequence[EndpointSpec],
        *,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetrySettings | None = None,
        retry_seed: int = 0,
        retry_budget: TokenBucket | None = None,
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
        self._rng = random.Random(retry_seed)
        self._retry_budget = retry_budget
        self._health_interval_s = health_interval_s
        # One connection pool per endpoint (origin), so an endpoint that stalls
        # with its connections open cannot use up the others'; TLS is verified
        # except on the endpoints that opt out, one by one.
        self._http = _http_clients(specs, transport, connections_per_endpoint)
        self._states = [EndpointState(spec=s) for s in specs]
        self._clients = {
            s.url: EndpointClient(s, self._http[s.verify_tls], self._clock) for s in specs
        }
        self._monitor: asyncio.Task[None] | None = None

    @property
    def retry_budget(self) -> TokenBucket | None:
        """The shared retry budget this pool draws on (``None``: unbudgeted)."""
        return self._retry_budget

    # -- lifecycle --------------------------------------------------------------

    async def __aenter__(self) -> EndpointPool:
        try:
            await self.probe()
        except BaseException:
            await self.aclose()  # a pool that failed to open leaves no connection behind
            raise
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
        for http in self._http.values():
            await http.aclose()

    async def probe(self) -> None:
        """Ask every endpoint for its model and version; eject those that do not answer.

        Each probe has a total time limit (``PROBE_TIMEOUT_S`` per request), so a
        server trickling its answer is ejected, not waited for. A model name that
        an answering endpoint does not serve is a configuration mistake and raises
        :class:`~agentrt.core._errors.ModelNotServed`; a server that does not speak
        the OpenAI API raises :class:`~agentrt.core._errors.ProtocolError`. Every
        probe finishes before either is raised (the first, in endpoint order).
        """
        results = await asyncio.gather(
            *(self._probe_one(state) for state in self._states), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

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
        stop: stop_base = stop_after_attempt(self._retry.max_attempts) | StopAtDeadline(deadline)
        if self._retry_budget is not None:
            self._retry_budget.deposit()
            stop = stop | StopWithoutBudget(self._retry_budget)  # last: it spends
        retrying = AsyncRetrying(
            stop=stop,
            wait=JitteredWait(self._retry, self._rng),
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
                headers=_with_time_left(deadline, headers),
                on_close=lambda s: self._on_stream_closed(state, s),
                vllm=state.version is not None,
                priority=deadline.priority() if state.spec.deadline_priority else None,
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
        state.last_error = truncate_redacted(str(error), _LAST_ERROR_CHARS)

    def _readmit(self, state: EndpointState) -> None:
        state.ejected_until = -math.inf
        state.last_error = None

    async def check_health(self) -> None:
        """Probe every ejected endpoint; re-admit those whose ``/health`` answers
        and whose probe passes. Never raises: an endpoint whose check fails in
        any way stays ejected, and the others are checked all the same."""
        now = self._clock.now()
        ejected = [s for s in self._states if not s.healthy(now) or s.served_model is None]
        await self._each(ejected, self._recheck, "health check")

    async def _recheck(self, state: EndpointState) -> None:
        if not await self.client(state).health():
            return
        try:
            await self._probe_one(state)
        except Exception as exc:  # ProtocolError, ModelNotServed: still not usable
            self._eject(state, exc)
            raise

    async def refresh_load(self) -> None:
        """Read running/waiting sequences from each healthy endpoint's ``/metrics``.
        Never raises: an endpoint whose metrics cannot be read keeps its last figures."""
        now = self._clock.now()
        healthy = [s for s in self._states if s.healthy(now)]
        await self._each(healthy, self._refresh_one, "load check")

    async def _refresh_one(self, state: EndpointState) -> None:
        metrics = await self.client(state).metrics(names=LOAD_METRICS)
        state.metrics = metrics
        state.server_running = _load_figure(metrics.get("vllm:num_requests_running", 0.0))
        state.server_waiting = _load_figure(metrics.get("vllm:num_requests_waiting", 0.0))

    async def _each(
        self,
        states: Sequence[EndpointState],
        check: Callable[[EndpointState], Awaitable[None]],
        what: str,
    ) -> None:
        """Run ``check`` on every endpoint at once; log (not raise) each failure,
        so one endpoint's junk costs only its own check."""
        results = await asyncio.gather(*(check(s) for s in states), return_exceptions=True)
        for state, result in zip(states, results, strict=True):
            if isinstance(result, Exception):
                log_dropped(f"{what} of {state.url}", result, level=logging.DEBUG)
            elif isinstance(result, BaseException):  # cancelled, or the process is exiting
                raise result

    async def _monitor_loop(self) -> None:
        """Every ``health_interval_s``: re-check ejected endpoints, refresh load.
        Runs until cancelled, whatever an endpoint or a check does."""
        while True:
            await self._clock.sleep(self._health_interval_s)
            for step in (self.check_health, self.refresh_load):
                try:
                    await step()
                except Exception as exc:  # a bug here must not end the monitor for good
                    log_dropped(f"pool health monitor ({step.__name__})", exc)

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
