"""The Runtime: one object that owns a pool and everything learned about it.

``async with agentrt.Runtime(...) as rt: await rt.run(graph, input, deadline=8)``.
A runtime holds

* the endpoint pool: one it was given (``pool=``), one it opens on
  ``async with`` from ``endpoints=``, ``AGENTRT_ENDPOINTS`` or the embedded
  local pool (``Runtime.local()`` starts that one if it is not up), or, used
  without ``async with``, one it opens for each run and closes after it;
* per pool (:class:`PoolKnowledge`, keyed by the pool's endpoints): the latency
  models it plans with (the pool fingerprint's calibration, measured on first
  use of an uncalibrated local pool, or the prior), the online corrections of
  them (:class:`~agentrt.tts.OnlineLatency`), the output lengths learned per
  call site (:class:`~agentrt.tts.OnlineLength`) and the hedge token bucket;
* the parsed budget profiles and the topologies of the compiled graphs it ran;
* the graphs cut at their hard deadline and still unwinding (:meth:`settle`);
* one event-loop lag monitor per event loop it runs on;
* optionally the tracer provider its runs' spans go to.

So what one run learns, the next run plans with. :func:`run` and
:func:`run_sync` are thin wrappers over the process-default runtime
(:func:`default_runtime`), the one piece of module state in the library.
A runtime is not thread-safe: use it from one event loop at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import TracerProvider

from agentrt.budget._profile import BudgetProfile, load_profile
from agentrt.budget._topology import GraphTopology
from agentrt.core._clock import Clock, current_clock, timeout_after
from agentrt.core._errors import ConfigurationError
from agentrt.core._lag import LoopLag
from agentrt.core._loop import run_coroutine
from agentrt.core._token_bucket import TokenBucket
from agentrt.langgraph._loading import graph_key
from agentrt.langgraph._runner import ON_ERROR, RunObserver, RunResult, drive_run
from agentrt.pool._endpoint import EndpointSpec, greedy_only_groups
from agentrt.pool._local import LocalPool, pool_endpoints
from agentrt.pool._pool import EndpointPool
from agentrt.pool._retry import DEFAULT_RETRY_BURST, DEFAULT_RETRY_RATIO
from agentrt.tracing._chat import ChatSpans
from agentrt.tracing._setup import flush_traces_async, request_flush, use_tracer_provider
from agentrt.tts._answers import AnswerSpec
from agentrt.tts._calibration_store import resolve_latency
from agentrt.tts._executor import CallModels, TTSExecutor
from agentrt.tts._hedging import HedgePolicy
from agentrt.tts._latency import LatencyModel
from agentrt.tts._length_online import LengthState, OnlineLength
from agentrt.tts._online import OnlineLatency, OnlineState
from agentrt.tts._planner import SearchSpace

if TYPE_CHECKING:
    from agentrt.langgraph._chat_model import TTSChatModel

__all__ = [
    "PoolKnowledge",
    "PoolState",
    "Runtime",
    "default_runtime",
    "run",
    "run_sync",
]

UNWIND_WAIT_S = 5.0
"""How long closing a runtime's held pool waits for graphs cut at their hard
deadline to unwind (their streams close, their spans end) before it closes the pool."""
RUN_UNWIND_WAIT_S = 0.05
"""How long a run on a pool opened for it waits, after its result, for its cut
graph to unwind before closing that pool: part of the margin by which the caller
gets control back (a cancelled graph unwinds in a few turns of the event loop;
closing the pool closes whatever is left, which aborts it in vLLM)."""
PROFILE_CACHE_SIZE = 64
ON_EXPIRY = ("degrade", "raise")

PoolKey = tuple[tuple[str, str, str], ...]


def pool_key(pool: EndpointPool) -> PoolKey:
    """What identifies a pool to a runtime: its endpoints (URL, group, model)."""
    return specs_key([e.spec for e in pool.endpoints])


def specs_key(specs: Sequence[EndpointSpec]) -> PoolKey:
    """:func:`pool_key` of the pool these endpoints would make."""
    return tuple(sorted((s.url, s.group, s.model or "") for s in specs))


@dataclass
class PoolKnowledge:
    """What a runtime knows about one pool, kept from run to run.

    ``latency`` are the calibrated (or prior) models per group; ``calibration``
    says where they came from (None when the caller gave them, or for a pool
    the caller opened). ``online`` and ``lengths`` are None when the runtime
    was made with ``learn=False``.
    """

    latency: dict[str, LatencyModel]
    calibration: str | None
    online: OnlineLatency | None
    lengths: OnlineLength | None
    buckets: dict[HedgePolicy, TokenBucket] = field(default_factory=dict)

    def bucket(self, policy: HedgePolicy | None) -> TokenBucket | None:
        """The pool's one bucket for ``policy``: hedges load the servers, so their
        budget is shared by every executor and run on the pool."""
        if policy is None:
            return None
        if policy not in self.buckets:
            self.buckets[policy] = policy.bucket()
        return self.buckets[policy]


@dataclass(frozen=True)
class PoolState:
    """A snapshot of one pool's knowledge, for reading (``Runtime.state()``).

    ``groups``/``endpoints``: the online latency corrections per group and per
    endpoint URL (factors on the calibrated model and their log-space sds);
    ``lengths``: the output length learned per call site; ``hedge_tokens``:
    hedges left in each policy's bucket.
    """

    endpoints_key: PoolKey
    calibration: str | None
    groups: tuple[OnlineState, ...]
    endpoints: tuple[OnlineState, ...]
    lengths: tuple[LengthState, ...]
    hedge_tokens: tuple[float, ...]


class Runtime:
    """Owns a pool and what is learned about it; runs graphs and serves calls on it.

    ``endpoints``: the servers to use (else ``AGENTRT_ENDPOINTS``, else the local
    pool); ``pool``: an :class:`EndpointPool` the caller opened and closes;
    ``local``: the embedded local pool, started on ``async with`` if it is not
    up (and stopped again on exit), with ``plain``/``spec`` servers.
    ``latency``: latency models to plan with instead of the pool's calibration.
    ``hedge``: the hedging policy (``True`` the default, ``False`` none).
    ``learn``: correct the latency models and learn output lengths from every
    call (on by default). ``tracer_provider``: where the runs' spans go (else
    the configured or global OpenTelemetry provider). ``clock``: the time
    source of deadlines (a :class:`~agentrt.core.FakeClock` in tests).
    """

    def __init__(
        self,
        *,
        endpoints: Sequence[EndpointSpec] | None = None,
        pool: EndpointPool | None = None,
        local: bool = False,
        plain: int = 1,
        spec: int = 0,
        latency: Mapping[str, LatencyModel] | None = None,
        hedge: HedgePolicy | bool | None = True,
        learn: bool = True,
        tracer_provider: TracerProvider | None = None,
        clock: Clock | None = None,
    ) -> None:
        chosen = [n for n, v in (("endpoints", endpoints), ("pool", pool)) if v] + (
            ["local"] if local else []
        )
        if len(chosen) > 1:
            raise ConfigurationError(
                f"Runtime takes one of endpoints=, pool=, local=; got {chosen}"
            )
        if endpoints is not None and not endpoints:
            raise ConfigurationError("Runtime: endpoints= is empty; give at least one endpoint")
        for name, count in (("plain", plain), ("spec", spec)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ConfigurationError(f"Runtime: {name} must be an integer >= 0, got {count!r}")
        self._endpoints = list(endpoints) if endpoints else None
        self._given_pool = pool
        self._local = local
        self._plain, self._spec = plain, spec
        self._latency = dict(latency) if latency is not None else None
        self.hedge = HedgePolicy.coerce(hedge)
        self.learn = learn
        self.tracer_provider = tracer_provider
        self.clock = clock
        self._opened: EndpointPool | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._knowledge: dict[PoolKey, PoolKnowledge] = {}
        self._profiles: dict[tuple[str, int, int], BudgetProfile] = {}
        self._topologies: weakref.WeakKeyDictionary[Any, GraphTopology] = (
            weakref.WeakKeyDictionary()
        )
        self._unwinding: set[asyncio.Task[None]] = set()
        self._lags: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopLag] = (
            weakref.WeakKeyDictionary()
        )
        self._retry_buckets: dict[PoolKey, TokenBucket] = {}

    @classmethod
    def local(cls, *, plain: int = 1, spec: int = 0, **options: Any) -> Runtime:
        """A runtime on the embedded local vLLM pool (started on ``async with`` if not up)."""
        return cls(local=True, plain=plain, spec=spec, **options)

    # -- the pool -------------------------------------------------------------------

    async def __aenter__(self) -> Runtime:
        if self._stack is not None:
            raise ConfigurationError("this Runtime is already open (async with it once)")
        self._stack = contextlib.AsyncExitStack()
        try:
            if self._given_pool is None:
                self._opened = await self._stack.enter_async_context(self._open_pool())
            await self.knowledge(self.pool)  # calibrate (if needed) before any deadline starts
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        stack, self._stack = self._stack, None
        try:
            await self.settle(UNWIND_WAIT_S)
            if stack is not None:
                await stack.aclose()
        finally:
            self._opened = None
            await flush_traces_async()  # off the loop, bounded: other runs keep going

    @property
    def pool(self) -> EndpointPool:
        """The pool this runtime holds open (the one given, or opened by ``async with``)."""
        pool = self._given_pool or self._opened
        if pool is None:
            raise ConfigurationError(
                "this Runtime holds no open pool: use `async with Runtime(...) as rt`, "
                "or give it pool="
            )
        return pool

    @property
    def holds_pool(self) -> bool:
        return (self._given_pool or self._opened) is not None

    @contextlib.asynccontextmanager
    async def _open_pool(self) -> AsyncIterator[EndpointPool]:
        """Open the pool this runtime is for: its endpoints, else the configured ones,
        else the local pool (started for the block when none is up)."""
        if self._endpoints:
            async with self._endpoint_pool(self._endpoints) as pool:
                yield pool
            return
        if self._local:
            async with (
                LocalPool().ensure(plain=self._plain, spec=self._spec) as specs,
                self._endpoint_pool(specs) as pool,
            ):
                yield pool
            return
        async with (
            pool_endpoints(plain=self._plain, spec=self._spec) as specs,
            self._endpoint_pool(specs) as pool,
        ):
            yield pool

    def _endpoint_pool(self, specs: Sequence[EndpointSpec]) -> EndpointPool:
        """A pool on ``specs`` drawing on this runtime's one retry budget for those
        endpoints: a pool opened per run must not start each run with a fresh one."""
        key = specs_key(specs)
        bucket = self._retry_buckets.get(key)
        if bucket is None:
            bucket = self._retry_buckets[key] = TokenBucket(
                ratio=DEFAULT_RETRY_RATIO, capacity=DEFAULT_RETRY_BURST
            )
        return EndpointPool(specs, retry_budget=bucket)

    @contextlib.asynccontextmanager
    async def _pool_for_run(self) -> AsyncIterator[EndpointPool]:
        """The held pool, or one opened for this run and closed after it (its cut
        graphs given :data:`UNWIND_WAIT_S` to unwind first)."""
        if self.holds_pool:
            yield self.pool
            return
        async with self._open_pool() as pool:
            try:
                yield pool
            finally:
                await self.settle(RUN_UNWIND_WAIT_S)
                request_flush()  # the flusher thread writes it; the caller does not wait

    async def knowledge(self, pool: EndpointPool) -> PoolKnowledge:
        """What this runtime knows of ``pool``, set up on first use: the latency
        models (the fingerprint's calibration for a pool the runtime chose itself,
        measured now on an uncalibrated local pool), fresh online state."""
        key = pool_key(pool)
        known = self._knowledge.get(key)
        if known is not None:
            return known
        calibration = None
        models: Mapping[str, LatencyModel] | None = self._latency
        if models is None and self._given_pool is None and not self._endpoints:
            choice = await resolve_latency(pool)
            models, calibration = choice.models, choice.describe()
        return self._remember(pool, models, calibration)

    def _remember(
        self, pool: EndpointPool, models: Mapping[str, LatencyModel] | None, calibration: str | None
    ) -> PoolKnowledge:
        groups = [g for g in sorted(pool.groups) if models is None or g in models]
        if not groups:
            raise ConfigurationError(
                f"no latency model for any endpoint group of the pool {sorted(pool.groups)}"
            )
        latency = {
            g: models[g] if models and g in models else LatencyModel.prior(g) for g in groups
        }
        known = PoolKnowledge(
            latency=latency,
            calibration=calibration,
            online=OnlineLatency() if self.learn else None,
            lengths=OnlineLength() if self.learn else None,
        )
        self._knowledge[pool_key(pool)] = known
        return known

    def _known(self, pool: EndpointPool) -> PoolKnowledge:
        """The knowledge of a held pool (set up on ``async with``, or now for a
        given pool, which plans with ``latency=`` or the priors)."""
        known = self._knowledge.get(pool_key(pool))
        return known if known is not None else self._remember(pool, self._latency, None)

    # -- executors and chat models ---------------------------------------------------

    def loop_lag(self) -> LoopLag:
        """The lag monitor of the running event loop."""
        loop = asyncio.get_running_loop()
        lag = self._lags.get(loop)
        if lag is None:
            lag = self._lags[loop] = LoopLag()
        return lag

    def _running_lag(self) -> LoopLag | None:
        try:
            return self.loop_lag()
        except RuntimeError:  # no running loop: the executor reads no lag margin
            return None

    def executor(
        self, *, space: SearchSpace | None = None, pool: EndpointPool | None = None, **options: Any
    ) -> TTSExecutor:
        """A :class:`TTSExecutor` on the held pool (or ``pool``) that plans with this
        runtime's models and teaches them, draws on its hedge bucket and is traced
        (``ChatSpans``). ``options`` are the executor's own (``objective``,
        ``sla_quantile``, ``scorer``, ``run_seed``, ...)."""
        target = pool or self.pool
        known = self._known(target)
        models = options.pop("models", None) or CallModels(latency=dict(known.latency))
        if space is None:
            space = SearchSpace(
                groups=tuple(models.latency),
                greedy_only_groups=greedy_only_groups(e.spec for e in target.endpoints),
            )
        elif any(g not in models.latency for g in space.groups):
            # Plan only over the groups the runtime has a latency model of.
            known_groups = tuple(g for g in space.groups if g in models.latency)
            space = replace(space, groups=known_groups or tuple(models.latency))
        defaults: dict[str, Any] = {"observer": ChatSpans(), "clock": self.clock}
        return TTSExecutor(
            target,
            models=models,
            space=space,
            online=known.online,
            lengths=known.lengths,
            hedge=self.hedge,
            hedge_bucket=known.bucket(self.hedge),
            retry_bucket=target.retry_budget,
            lag=self._running_lag(),
            **{**defaults, **options},
        )

    def chat_model(self, **fields: Any) -> TTSChatModel:
        """A :class:`~agentrt.TTSChatModel` whose calls outside a run use this runtime."""
        from agentrt.langgraph._chat_model import TTSChatModel

        return TTSChatModel(runtime=self, **fields)

    def _run_executor(
        self, pool: EndpointPool, known: PoolKnowledge, profile: BudgetProfile, run_seed: int
    ) -> TTSExecutor:
        spec = profile.spec
        penalised = spec.lambda_tokens > 0 or spec.lambda_latency > 0
        return self.executor(
            pool=pool,
            # Without a verifier, scores are only self-certainty: plan over greedy and voting.
            space=SearchSpace(
                strategies=("single", "majority"),
                groups=tuple(known.latency),
                max_tokens_choices=(32, 64),
                greedy_only_groups=greedy_only_groups(e.spec for e in pool.endpoints),
            ),
            objective="penalty" if penalised else "deadline",
            sla_quantile=spec.sla_quantile,
            lambda_tokens=spec.lambda_tokens,
            lambda_latency_s=spec.lambda_latency,
            on_refusal="raise" if spec.on_expiry == "raise" else "degrade",
            run_seed=run_seed,
            clock=self.clock or current_clock(),
        )

    # -- runs -----------------------------------------------------------------------

    async def run(
        self,
        graph: Any,
        input: Any,
        *,
        deadline: float,
        profile: BudgetProfile | str | Path | None = None,
        config: Mapping[str, Any] | None = None,
        context: Any = None,
        policy: str | None = None,
        on_expiry: str | None = None,
        on_error: str = "degrade",
        answer_spec: AnswerSpec | None = None,
        graph_path: str | None = None,
        run_seed: int = 0,
        observer: RunObserver | None = None,
    ) -> RunResult:
        """Run ``graph`` on ``input`` within ``deadline`` seconds, end to end.

        ``profile`` (a :class:`BudgetProfile` or a TOML path) says how the budget
        is split; ``policy`` overrides its slice policy and ``on_expiry``
        (``"degrade"`` or ``"raise"``) what happens at the deadline. ``config`` and
        ``context`` go to LangGraph as they are. ``observer`` hears node events and
        labels the run (benchmarks, tuning). Opening a pool (and calibrating it)
        happens before the deadline starts.

        Once the graph has started, the run returns a :class:`RunResult` whatever
        fails (a node, the graph, a server): ``degraded``, with the last consistent
        state, every call's result and a ``reason`` naming what failed.
        ``on_error="raise"`` raises :class:`RunFailed` carrying that result instead.
        Configuration mistakes found before the start raise at once.
        """
        if not hasattr(graph, "astream") or not hasattr(graph, "get_graph"):
            raise ConfigurationError(
                f"graph must be a compiled LangGraph graph (StateGraph(...).compile()), "
                f"got {type(graph).__name__}"
            )
        seconds = _check_deadline(deadline)
        if on_expiry is not None and on_expiry not in ON_EXPIRY:
            raise ConfigurationError(f"on_expiry must be one of {ON_EXPIRY}, got {on_expiry!r}")
        if on_error not in ON_ERROR:
            raise ConfigurationError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        resolved = self._profile(profile)
        if (
            resolved.graph is not None
            and graph_path is not None
            and graph_key(resolved.graph) != graph_key(graph_path)
        ):
            raise ConfigurationError(
                f"the budget profile is for graph {resolved.graph!r}, not {graph_path!r}; "
                "pass the profile tuned for this graph (or none)"
            )
        # The wrap-up reserve never takes more than a quarter of a short deadline.
        changes: dict[str, Any] = {
            "deadline_s": seconds, "reserve_s": min(resolved.spec.reserve_s, seconds / 4),
        }  # fmt: skip
        if on_expiry is not None:
            changes["on_expiry"] = on_expiry
        resolved = resolved.with_spec(**changes)
        topology = self._topology(graph)
        tracing = (
            use_tracer_provider(self.tracer_provider)
            if self.tracer_provider is not None
            else contextlib.nullcontext()
        )
        with tracing:
            async with self._pool_for_run() as pool:
                known = await self.knowledge(pool)
                executor = self._run_executor(pool, known, resolved, run_seed)
                result = await drive_run(
                    graph, input, executor=executor, profile=resolved, topology=topology,
                    lag=self.loop_lag(), policy=policy, config=config, context=context,
                    answer_spec=answer_spec, graph_path=graph_path, observer=observer,
                    profile_name=None if isinstance(profile, BudgetProfile) else profile,
                    on_cut=self._unwind, on_error=on_error,
                )  # fmt: skip
                return replace(result, calibration=known.calibration)

    def _profile(self, profile: BudgetProfile | str | Path | None) -> BudgetProfile:
        """The profile, a file parsed once per version (its size and modification
        time): many concurrent runs of one graph share one parse."""
        if profile is None:
            return BudgetProfile.default()
        if isinstance(profile, BudgetProfile):
            return profile
        path = Path(profile)
        try:
            stat = path.stat()
        except OSError:
            return load_profile(path)  # names the file in its error
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        cached = self._profiles.get(key)
        if cached is None:
            if len(self._profiles) >= PROFILE_CACHE_SIZE:
                self._profiles.clear()
            cached = self._profiles[key] = load_profile(path)
        return cached

    def _topology(self, graph: Any) -> GraphTopology:
        """The graph's topology, drawn once per compiled graph (a compiled graph does
        not change; drawing it costs ~0.4 ms a run)."""
        try:
            cached = self._topologies.get(graph)
        except TypeError:  # not weakly referenceable or not hashable
            return GraphTopology.from_langgraph(graph)
        if cached is None:
            cached = self._topologies[graph] = GraphTopology.from_langgraph(graph)
        return cached

    # -- cut runs -------------------------------------------------------------------

    def _unwind(self, task: asyncio.Task[None]) -> None:
        """A graph cut at its hard deadline: keep it referenced until it has unwound."""
        self._unwinding.add(task)
        task.add_done_callback(self._unwound)

    def _unwound(self, task: asyncio.Task[None]) -> None:
        self._unwinding.discard(task)
        if not task.cancelled():
            task.exception()  # a cut graph may end in an error: it is retrieved, not raised

    @property
    def unwinding(self) -> int:
        """Graphs cut at their hard deadline and still unwinding."""
        return len(self._unwinding)

    async def settle(self, timeout_s: float = math.inf) -> None:
        """Wait (up to ``timeout_s``) for the graphs cut at their hard deadline to
        finish unwinding: their LLM streams closed, their spans ended."""
        pending = {t for t in self._unwinding if t.get_loop() is asyncio.get_running_loop()}
        if not pending:
            return
        with contextlib.suppress(TimeoutError):
            async with timeout_after(timeout_s):
                await asyncio.wait(pending)

    # -- reading what was learned -----------------------------------------------------

    def slowdown(self) -> float:
        """How many times longer than on an idle server a call would take now: the
        latency model's :meth:`~agentrt.tts.LatencyModel.slowdown` at the load of
        the least loaded healthy endpoint, in the group where that is least (where
        the planner's cheapest config would go). 1.0 with no pool held. What a
        server's admission check scales a graph's minimum run time by."""
        if not self.holds_pool:
            return 1.0
        pool = self.pool
        now = (self.clock or current_clock()).now()
        factors = []
        for group, model in self._known(pool).latency.items():
            loads = [e.load for e in pool.endpoints if e.spec.group == group and e.healthy(now)]
            if loads:
                factors.append(model.slowdown(min(loads)))
        return min(factors, default=1.0)

    def state(self) -> tuple[PoolState, ...]:
        """What this runtime has learned, per pool it has used."""
        states = []
        for key, known in self._knowledge.items():
            online = known.online
            groups = tuple(online.state(g) for g in known.latency) if online else ()
            endpoints = tuple(
                online.state(group, url) for url, group, _ in key if group in known.latency
            ) if online else ()  # fmt: skip
            lengths = known.lengths
            states.append(
                PoolState(
                    endpoints_key=key,
                    calibration=known.calibration,
                    groups=groups,
                    endpoints=endpoints,
                    lengths=tuple(lengths.state(s) for s in lengths.sites()) if lengths else (),
                    hedge_tokens=tuple(b.tokens for b in known.buckets.values()),
                )
            )
        return tuple(states)


def _check_deadline(deadline: float) -> float:
    if isinstance(deadline, bool) or not isinstance(deadline, int | float) or not deadline > 0:
        raise ConfigurationError(f"deadline must be a positive number of seconds, got {deadline!r}")
    if math.isinf(deadline) or math.isnan(deadline):
        raise ConfigurationError(f"deadline must be a finite number of seconds, got {deadline!r}")
    return float(deadline)


_default: Runtime | None = None
"""The process-default runtime behind :func:`run` (created on first use)."""


def default_runtime() -> Runtime:
    """The process-default runtime: the configured or the local pool, opened for
    each run; what it learns lasts for the process."""
    global _default
    if _default is None:
        _default = Runtime()
    return _default


async def run(graph: Any, input: Any, *, deadline: float, **options: Any) -> RunResult:
    """Run ``graph`` on ``input`` within ``deadline`` seconds on the process-default
    runtime (:meth:`Runtime.run` documents the options)."""
    return await default_runtime().run(graph, input, deadline=deadline, **options)


def run_sync(graph: Any, input: Any, *, deadline: float, **options: Any) -> RunResult:
    """The sync twin of :func:`run` (starts its own event loop). It returns by the
    deadline even when a sync node is still running in its worker thread (the
    result names it in ``uncancelled``): the loop does not wait for its threads."""
    return run_coroutine(run(graph, input, deadline=deadline, **options))
