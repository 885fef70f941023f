"""The anytime TTS executor: plan a call for its slice, stream it, return the best answer.

One call: the planner turns the slice into a config; the executor opens the
branches on the pool (the :class:`~agentrt.pool.Backend` seam), checks the vote
each time a branch finishes and cancels the rest once the leader cannot be
overtaken, stops reading at the end of the slice (closing the stream aborts
the work in vLLM) and decides from the finished branches, or from partial
text when the answer spec allows. A branch lost to a failing endpoint is
re-issued elsewhere while the slice leaves time for it.

A failure of one request (a leg: the primary, a hedge, a re-issue) is
recorded, never fatal: whatever it raised, the branches other legs finished
count. Re-issues are bounded three ways: at most :data:`MAX_ROUNDS` rounds
per call, a seeded, jittered wait before each, and a retry bucket shared by
the pool (a :class:`~agentrt.core._token_bucket.TokenBucket`), so a storm of
503s on many concurrent runs does not multiply the load. A call every one of
whose requests failed for a lasting reason (refused, not the OpenAI protocol)
returns its result with ``failure`` set; the chat model raises it. One emptied
by failures that pass (resets, 503s) returns degraded and empty, as a call cut
by its deadline does.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from agentrt.core._clock import Clock, current_clock, timeout_at
from agentrt.core._deadline import Deadline, current_deadline
from agentrt.core._errors import (
    BudgetRefused,
    ConfigurationError,
    DeadlineExceeded,
    EndpointError,
    EndpointUnavailable,
    ModelNotServed,
    NoHealthyEndpoint,
    ProtocolError,
)
from agentrt.core._lag import LoopLag
from agentrt.core._log import log_dropped
from agentrt.core._token_bucket import TokenBucket
from agentrt.pool._endpoint import PLAIN_GROUP, greedy_only_groups
from agentrt.pool._events import RequestSent
from agentrt.pool._pool import Backend
from agentrt.pool._protocol import BranchFinished, ChatRequest, Message
from agentrt.pool._stream import BranchRecord, ChatStream
from agentrt.tts._accuracy import AccuracyEstimator, AccuracyModel
from agentrt.tts._answers import AnswerSpec, LastNumber
from agentrt.tts._branch import BranchView
from agentrt.tts._config import TTSConfig
from agentrt.tts._hedging import HedgePolicy, hedge_at, hedge_delay_s
from agentrt.tts._latency import LatencyModel
from agentrt.tts._length import LengthModel
from agentrt.tts._length_online import OnlineLength
from agentrt.tts._observer import CallObserver, CallRecorder, CallStarted, NoObserver
from agentrt.tts._online import OnlineLatency, stream_observations
from agentrt.tts._output import OutputFormat
from agentrt.tts._planner import (
    Plan,
    PlanInputs,
    SearchSpace,
    plan_fallback,
    plan_for_deadline,
    plan_with_penalty,
    predict,
)
from agentrt.tts._result import BranchCounts, Result
from agentrt.tts._scorers import MeanLogprobScorer, Scorer, score_branches
from agentrt.tts._strategies import Strategy, strategy_for

__all__ = ["CallModels", "QueryAccuracy", "TTSExecutor", "estimate_prompt_tokens"]

DECIDE_MARGIN_S = 0.01
"""Reading stops this long before the slice ends, to decide and return inside it."""
FALLBACK_MIN_TOKENS = 8
"""The tightest token cap the fallback (:meth:`TTSExecutor._fallback_plan`) gives a
greedy call: fewer tokens rarely hold an answer."""
MAX_ROUNDS = 4
"""Rounds of requests one call sends at most: the first, then re-issues of lost branches."""
RETRY_WAIT_S = 0.02
"""The wait before a call's first re-issue, doubling each round (up to
:data:`RETRY_WAIT_MAX_S`), each drawn uniformly in [0.5, 1] of it from a seeded
generator: concurrent calls hit by the same failure do not retry in step."""
RETRY_WAIT_MAX_S = 0.2
LAG_SHARE_MAX = 0.5
"""Reading also stops early by the event loop's recent lag (:mod:`agentrt.core._lag`),
but by at most this share of the time left: a late loop returns the result late
by its lag, and inside a run the hard cut is armed early by the same lag, so a
call that did not stop early would hand its answer over after the run returned."""


def estimate_prompt_tokens(messages: Sequence[Message]) -> int:
    """A tokenizer-free estimate: ~4 characters a token plus a few per message."""
    chars = sum(len(str(m.get("content") or "")) for m in messages)
    return max(1, chars // 4 + 4 * len(messages))


QueryAccuracy = Callable[[Sequence[Message]], AccuracyEstimator]
"""Builds an accuracy estimator for one query (paper 2's per-query probe)."""


@dataclass(frozen=True)
class CallModels:
    """What the planner predicts with for one call site.

    ``per_query``, when set, replaces ``accuracy`` with an estimator built for
    each call's messages (a probe that reads the query).
    """

    latency: Mapping[str, LatencyModel] = field(
        default_factory=lambda: {PLAIN_GROUP: LatencyModel.prior(PLAIN_GROUP)}
    )
    length: LengthModel = field(default_factory=LengthModel)
    accuracy: AccuracyEstimator = field(default_factory=AccuracyModel)
    per_query: QueryAccuracy | None = None

    def accuracy_for(self, messages: Sequence[Message]) -> AccuracyEstimator:
        return self.per_query(messages) if self.per_query is not None else self.accuracy


@dataclass
class _Attempt:
    """The branches of one call across the requests it took (hedges and re-issues included).

    Branches are independent samples, so whichever request finishes one first
    supplies it: ``finish_order`` holds the finished records as they arrived
    and the first ``wanted`` of them count.
    """

    wanted: int
    streams: list[ChatStream] = field(default_factory=list)
    hedge_streams: list[ChatStream] = field(default_factory=list)
    finish_order: list[BranchRecord] = field(default_factory=list)
    tried: set[str] = field(default_factory=set)
    records: list[BranchRecord] = field(default_factory=list)
    early_stopped: int = 0
    cancelled: int = 0
    hedged: int = 0
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    protocol_error: ProtocolError | None = None
    cut_by_deadline: bool = False
    hedge_after_s: float | None = None
    recorder: CallRecorder | None = None
    rejected: Exception | None = None  # this round: a leg refused (4xx, unknown model)
    failure: Exception | None = None  # the last leg's error
    rounds: int = 0
    stopped_retrying: str | None = None  # why no further re-issue was sent

    def sent(self, sent: RequestSent) -> None:
        """An attempt went to ``sent.url``: a re-issue or hedge goes elsewhere."""
        self.tried.add(sent.url)
        if self.recorder is not None:
            self.recorder.request_sent(sent)

    @property
    def finished(self) -> list[BranchRecord]:
        """The finished branches that count (the first ``wanted`` to finish)."""
        return self.finish_order[: self.wanted]

    @property
    def missing(self) -> int:
        """Branches still wanted: neither finished nor stopped early."""
        return max(0, self.wanted - len(self.finished) - self.early_stopped)

    def note_finished(self, record: BranchRecord) -> None:
        if len(self.finish_order) < self.wanted and all(r is not record for r in self.finish_order):
            self.finish_order.append(record)

    def current(self) -> list[BranchRecord]:
        """The ``wanted`` branches as they stand: the counted finished ones, then the
        unfinished ones of requests still healthy, most advanced first."""
        counted = self.finished
        running = [
            b for s in self.streams if s.error is None
            for b in (s.branches[i] for i in sorted(s.branches)) if not b.finished
        ]  # fmt: skip
        running.sort(key=lambda b: -b.tokens)
        return counted + running[: self.wanted - len(counted)]

    @property
    def hedge_finished(self) -> int:
        """Counted branches that the hedge request supplied."""
        hedge = [b for s in self.hedge_streams for b in s.branches.values()]
        return sum(1 for r in self.finished if any(r is b for b in hedge))

    @property
    def prompt_tokens(self) -> int:
        counts = [s.prompt_tokens for s in self.streams if s.prompt_tokens]
        return counts[-1] if counts else 0

    @property
    def completion_tokens(self) -> int:
        return sum(s.completion_tokens for s in self.streams)

    def views(self, scorer: MeanLogprobScorer | None) -> list[BranchView]:
        """Snapshots indexed by position in :meth:`current` (re-issued branches renumbered)."""
        views = []
        for i, record in enumerate(self.records or self.current()):
            view = replace(BranchView.of(record), index=i)
            views.append(view if scorer is None else view.with_score(scorer.score_now(view)))
        return views


@dataclass(frozen=True)
class _HedgeTiming:
    """When a call hedges (``delay_s`` after it starts) and how long a hedge
    is expected to take (``expected_s``, the config's mean latency)."""

    delay_s: float
    expected_s: float


@dataclass
class _Race:
    """The requests of one round racing for the same missing branches."""

    done: asyncio.Event = field(default_factory=asyncio.Event)
    keeper: asyncio.Task[None] | None = None

    def finish(self) -> None:
        """The call has what it needs: cancel the other legs, not the calling one
        (it is about to leave, or reads only the tail of a complete stream)."""
        if not self.done.is_set():
            self.keeper = asyncio.current_task()
            self.done.set()


_PASSING = (EndpointUnavailable, NoHealthyEndpoint, DeadlineExceeded)
"""Failures that pass (a reset, a 503, no time left): a call they emptied returns
degraded and empty, and the graph goes on with what it has."""


def _lasting_failure(attempt: _Attempt) -> Exception | None:
    """The failure a call that produced nothing should raise: a refusal, a server
    that does not speak the protocol, a bug; not one that passes, and never when
    the call was cut by its deadline or has text to answer from."""
    failure = attempt.failure
    if failure is None or isinstance(failure, _PASSING) or attempt.cut_by_deadline:
        return None
    return None if any(r.tokens for r in attempt.records) else failure


class TTSExecutor:
    """Runs one LLM call with latency-aware test-time scaling on a backend.

    ``objective`` picks the planner: ``"deadline"`` (max accuracy whose latency
    at ``sla_quantile`` fits the slice) or ``"penalty"`` (accuracy minus
    ``lambda_tokens`` x tokens minus ``lambda_latency_s`` x seconds).
    ``run_seed`` makes a run replay: each call's request seed derives from it.
    ``hedge`` (on by default) sends a call still running past its predicted
    p95 a duplicate on another endpoint of the group, within a token bucket
    (:mod:`agentrt.tts._hedging`); ``None`` or ``False`` turns hedging off.
    ``online``, when given, corrects ``models.latency`` with what every stream
    of every call (hedges and re-issues included) actually took, and widens
    the SLA quantile by the correction's uncertainty (:mod:`agentrt.tts._online`);
    one estimator may be shared by many executors. ``lengths`` likewise learns
    each call site's output length from its branches (:mod:`agentrt.tts._length_online`).
    ``hedge_bucket`` is the hedge budget to draw on (a :class:`~agentrt.Runtime`
    shares one per pool; without it the executor has its own); ``lag`` is the
    event loop's lag monitor, by whose margin reading stops early (none: no margin).
    ``retry_bucket`` is the pool's retry budget: each re-issue round spends one
    token (none: only :data:`MAX_ROUNDS` bounds re-issues).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        models: CallModels | None = None,
        space: SearchSpace | None = None,
        objective: str = "deadline",
        sla_quantile: float = 0.95,
        lambda_tokens: float = 0.0,
        lambda_latency_s: float = 0.0,
        scorer: Scorer | None = None,
        on_refusal: str = "degrade",
        run_seed: int = 0,
        clock: Clock | None = None,
        hedge: HedgePolicy | bool | None = True,
        observer: CallObserver | None = None,
        online: OnlineLatency | None = None,
        lengths: OnlineLength | None = None,
        hedge_bucket: TokenBucket | None = None,
        lag: LoopLag | None = None,
        retry_bucket: TokenBucket | None = None,
    ) -> None:
        if objective not in ("deadline", "penalty"):
            raise ConfigurationError(
                f"objective must be 'deadline' or 'penalty', got {objective!r}"
            )
        if on_refusal not in ("degrade", "raise"):
            raise ConfigurationError(f"on_refusal must be 'degrade' or 'raise', got {on_refusal!r}")
        self.backend = backend
        self.models = models or CallModels()
        self.space = space or SearchSpace(
            groups=tuple(self.models.latency),
            greedy_only_groups=greedy_only_groups(
                e.spec for e in getattr(backend, "endpoints", None) or ()
            ),
        )
        self.objective = objective
        self.sla_quantile = sla_quantile
        self.lambda_tokens = lambda_tokens
        self.lambda_latency_s = lambda_latency_s
        self.scorer = scorer
        self.on_refusal = on_refusal
        self.run_seed = run_seed
        self._clock = clock or current_clock()
        self._calls = 0
        self.hedge = HedgePolicy.coerce(hedge)
        self.hedge_bucket: TokenBucket | None = None
        if self.hedge is not None:
            self.hedge_bucket = hedge_bucket or self.hedge.bucket()
        self.observer: CallObserver = observer or NoObserver()
        self.online = online
        self.lengths = lengths
        self.lag = lag
        self.retry_bucket = retry_bucket

    @property
    def clock(self) -> Clock:
        """The clock this executor's slices and deadlines run on."""
        return self._clock

    # -- planning -----------------------------------------------------------------

    def plan(
        self,
        messages: Sequence[Message],
        slice_s: float,
        *,
        load: Mapping[str, int] | None = None,
        length: LengthModel | None = None,
        siblings: int = 0,
        space: SearchSpace | None = None,
    ) -> Plan:
        """The config this executor would run for ``messages`` in ``slice_s`` (pure)."""
        return self._plan(self._inputs(messages, slice_s, load or {}, length, siblings, space))

    def _plan(self, inputs: PlanInputs) -> Plan:
        if self.objective == "penalty":
            return plan_with_penalty(
                inputs, lambda_tokens=self.lambda_tokens, lambda_latency_s=self.lambda_latency_s
            )
        return plan_for_deadline(inputs)

    def _inputs(
        self,
        messages: Sequence[Message],
        slice_s: float,
        load: Mapping[str, int],
        length: LengthModel | None = None,
        siblings: int = 0,
        space: SearchSpace | None = None,
    ) -> PlanInputs:
        latency = self.models.latency
        spreads: dict[str, tuple[float, float]] = {}
        if self.online is not None:
            latency = self.online.corrected(latency)
            spreads = self.online.spreads(latency)
        return PlanInputs(
            siblings=siblings,
            slice_s=slice_s,
            prompt_tokens=estimate_prompt_tokens(messages),
            latency_models=latency,
            latency_sd=spreads,
            length_model=length or self.models.length,
            accuracy_model=self.models.accuracy_for(messages),
            sla_quantile=self.sla_quantile,
            load=load,
            space=space or self.space,
        )

    def _fixed_plan(self, messages: Sequence[Message], config: TTSConfig, slice_s: float) -> Plan:
        prediction = predict(config, self._inputs(messages, slice_s, {}))
        return Plan("deadline", config, prediction, f"fixed: {config.label}", slice_s, 1, 1)

    def _live_load(self) -> dict[str, int]:
        """Sequences already on the least-loaded endpoint of each group (where the
        pool will route): our own in-flight requests, or the server's running plus
        waiting count when other clients load it more (``EndpointState.load``)."""
        endpoints = getattr(self.backend, "endpoints", None)
        if not endpoints:
            return {}
        now = self._clock.now()
        load: dict[str, int] = {}
        for endpoint in endpoints:
            if endpoint.healthy(now):
                group = endpoint.spec.group
                here = math.ceil(endpoint.load)
                load[group] = min(load.get(group, here), here)
        return load

    # -- running --------------------------------------------------------------------

    async def run(
        self,
        messages: Sequence[Message],
        *,
        slice_s: float | None = None,
        deadline: Deadline | None = None,
        answer_spec: AnswerSpec | None = None,
        config: TTSConfig | None = None,
        stop: Sequence[str] = (),
        length: LengthModel | None = None,
        siblings: int = 0,
        call_site: str | None = None,
        space: SearchSpace | None = None,
        output: OutputFormat | None = None,
    ) -> Result:
        """Plan and run one call inside ``slice_s`` (and the ambient deadline).

        ``length`` is the call site's output-length prior; with ``lengths`` (an
        :class:`OnlineLength`) and a ``call_site`` the plan uses what that site's
        branches generated so far, and learns from this call's. ``space`` narrows
        the configs for this call (a chat model's own ``max_tokens`` or
        ``temperature=0``); by default the executor's. ``output`` (tools, tool
        choice, response format) goes into every request of the call.

        It always returns by the slice's end (plus a small margin): cut short,
        the result decides from what it has and says ``degraded``. The call is
        told to :attr:`observer` (:mod:`agentrt.tracing`'s ``ChatSpans`` records it
        as a ``chat {model}`` span with a child span per branch).
        """
        started = CallStarted(
            messages=messages, clock=self._clock, slice_s=slice_s, deadline=deadline,
            prompt_tokens_estimate=estimate_prompt_tokens(messages),
        )  # fmt: skip
        with self.observer.call(started) as recorder:
            if self.lengths is not None and call_site is not None:
                length = self.lengths.model(call_site, length or self.models.length)
            result = await self._run(
                messages, slice_s, deadline, answer_spec, config, stop, length, siblings,
                recorder, space, call_site, output,
            )  # fmt: skip
            recorder.finished(result)
            return result

    async def _run(
        self,
        messages: Sequence[Message],
        slice_s: float | None,
        deadline: Deadline | None,
        answer_spec: AnswerSpec | None,
        config: TTSConfig | None,
        stop: Sequence[str],
        length: LengthModel | None = None,
        siblings: int = 0,
        recorder: CallRecorder | None = None,
        space: SearchSpace | None = None,
        call_site: str | None = None,
        output: OutputFormat | None = None,
    ) -> Result:
        outer = deadline or current_deadline() or Deadline.never(clock=self._clock)
        call_deadline = (
            outer.child(at_most_s=slice_s, scope="call") if slice_s else outer.child(scope="call")
        )
        available_s = call_deadline.remaining()
        if math.isinf(available_s):
            available_s = 1e9
        spec = answer_spec or LastNumber()
        degraded: list[str] = []
        plan_load: Mapping[str, int] = {}
        inputs: PlanInputs | None = None
        if config is not None:
            plan = self._fixed_plan(messages, config, available_s)
        else:
            plan_load = self._live_load()
            # One set of inputs for the plan, its fallback and the hedge trigger.
            inputs = self._inputs(messages, available_s, plan_load, length, siblings, space)
            plan = self._plan(inputs)
            if plan.refused:
                # JSON cut short parses as nothing: a structured call keeps its cap.
                min_tokens = (
                    min(inputs.space.max_tokens_choices)
                    if output is not None and output.structured
                    else FALLBACK_MIN_TOKENS
                )
                fallback = plan_fallback(inputs, plan, min_tokens=min_tokens)
                if self.on_refusal == "raise":
                    minimum = (
                        fallback.prediction.latency_quantile_s if fallback.prediction else math.inf
                    )
                    raise BudgetRefused("LLM call", available_s, minimum)
                plan, siblings, inputs = fallback, 0, replace(inputs, siblings=0)
                degraded.append("refused by the planner: ran the cheapest call that can answer")
        assert plan.config is not None
        strategy = strategy_for(plan.config, spec)
        hedge: _HedgeTiming | None = None
        if self.hedge is not None and plan.prediction is not None:
            # The trigger is read off the same inputs (load included) the plan used.
            if inputs is None:
                inputs = self._inputs(messages, available_s, plan_load, length, siblings, space)
            hedge = _HedgeTiming(
                delay_s=hedge_delay_s(plan.config, inputs, self.hedge),
                expected_s=plan.prediction.latency_mean_s,
            )
        online = None if self.online is None else self.online.state(plan.config.group)
        started = self._clock.now()
        attempt = _Attempt(wanted=plan.config.n, recorder=recorder)
        try:
            await self._stream_branches(
                messages, plan.config, strategy, call_deadline, tuple(stop), hedge, attempt,
                output,
            )  # fmt: skip
        finally:
            # Learn from every stream, even of a call that failed or was cancelled,
            # at the prompt estimate the planner uses (the factor absorbs its bias).
            load = plan_load.get(plan.config.group, 0) + siblings * plan.config.n
            self._learn(attempt, plan.config, load, estimate_prompt_tokens(messages))
            if self.lengths is not None and call_site is not None:
                self._learn_lengths(call_site, attempt)
        result = await self._result(
            messages, plan, strategy, spec, attempt, started, call_deadline, degraded
        )
        return result if online is None else replace(result, online=online)

    def _learn(self, attempt: _Attempt, config: TTSConfig, load: int, prompt_tokens: int) -> None:
        """Tell the online estimator what each stream of the call took."""
        model = self.models.latency.get(config.group)
        if self.online is None or model is None:
            return
        now = self._clock.now()
        for stream in attempt.streams:
            self.online.observe_all(
                stream_observations(
                    stream, model, load=load, prompt_tokens=prompt_tokens,
                    beam=config.strategy == "beam", now=now,
                )
            )  # fmt: skip

    def _learn_lengths(self, call_site: str, attempt: _Attempt) -> None:
        """Tell the length learner what each branch of the call generated: a branch
        that finished for its cap, or never finished, only says "at least"."""
        assert self.lengths is not None
        for record in attempt.records or attempt.current():
            capped = not record.finished or record.finish_reason == "length"
            if record.tokens > 0:
                self.lengths.observe(call_site, record.tokens, capped=capped)

    async def _stream_branches(
        self,
        messages: Sequence[Message],
        config: TTSConfig,
        strategy: Strategy,
        deadline: Deadline,
        stop: tuple[str, ...] = (),
        hedge: _HedgeTiming | None = None,
        attempt: _Attempt | None = None,
        output: OutputFormat | None = None,
    ) -> _Attempt:
        self._calls += 1
        if attempt is None:
            attempt = _Attempt(wanted=config.n)
        options = strategy.request_options(config, seed=self.run_seed * 1_000_003 + self._calls)
        now = self._clock.now()
        lag_s = 0.0 if self.lag is None else self.lag.margin_s()
        early_s = min(lag_s, LAG_SHARE_MAX * max(0.0, deadline.hard_at - now))
        read_until = Deadline(
            hard_at=deadline.hard_at - DECIDE_MARGIN_S - early_s, clock=self._clock,
            started_at=now, scope="call",
        )  # fmt: skip
        fire_at = None
        if hedge is not None and self.hedge_bucket is not None:
            self.hedge_bucket.deposit()
            fire_at = hedge_at(now, hedge.delay_s, hedge.expected_s, read_until.hard_at)
            attempt.hedge_after_s = None if fire_at is None else hedge.delay_s

        output = output or OutputFormat()
        fields = output.request_fields()

        def request(n: int) -> ChatRequest:
            seed = None if options.seed is None else options.seed + attempt.requests
            attempt.requests += 1
            return ChatRequest(
                messages=list(messages),
                n=n,
                max_tokens=options.max_tokens,
                temperature=options.temperature if n > 1 or options.temperature > 0 else 0.0,
                top_p=options.top_p,
                seed=seed,
                logprobs=options.logprobs,
                stop=stop,
                extra={**options.extra, **output.extra()},
                **fields,
            )

        jitter = random.Random(options.seed if options.seed is not None else self._calls)
        while attempt.missing > 0 and not read_until.expired:
            if attempt.rounds and not await self._may_retry(attempt, read_until, jitter):
                break
            errors = len(attempt.errors)
            attempt.protocol_error = attempt.rejected = None
            attempt.rounds += 1
            await self._round(request, config.group, strategy, attempt, read_until, fire_at)
            if attempt.early_stopped or attempt.cut_by_deadline or len(attempt.errors) == errors:
                break
            refused = attempt.protocol_error or attempt.rejected
            if refused is not None and not self._alternatives(
                config.group, frozenset(attempt.tried)
            ):
                # Not the OpenAI protocol, or refused, and no other endpoint left to ask.
                break
            # Keep what finished; ask again (elsewhere) only for what was lost.
        attempt.records = attempt.current()
        attempt.cancelled = attempt.missing
        return attempt

    async def _may_retry(
        self, attempt: _Attempt, read_until: Deadline, jitter: random.Random
    ) -> bool:
        """Whether a call whose last round lost branches sends another: under
        :data:`MAX_ROUNDS`, a token from the pool's retry bucket, and time left after a
        jittered wait (which it then sleeps)."""
        if attempt.rounds >= MAX_ROUNDS:
            attempt.stopped_retrying = f"{MAX_ROUNDS} rounds sent"
            return False
        if self.retry_bucket is not None and not self.retry_bucket.try_spend():
            attempt.stopped_retrying = "the pool's retry budget is spent"
            return False
        wait_s = min(RETRY_WAIT_MAX_S, RETRY_WAIT_S * 2 ** (attempt.rounds - 1))
        wait_s *= jitter.uniform(0.5, 1.0)
        if wait_s >= read_until.remaining():
            attempt.stopped_retrying = "no time left for a re-issue"
            return False
        await self._clock.sleep(wait_s)
        return not read_until.expired

    async def _round(
        self,
        request: Callable[[int], ChatRequest],
        group: str,
        strategy: Strategy,
        attempt: _Attempt,
        read_until: Deadline,
        fire_at: float | None,
    ) -> None:
        """One request for the missing branches, plus a hedge if it runs past ``fire_at``."""
        race = _Race()

        def leg(hedge: bool) -> asyncio.Task[None]:
            n = attempt.missing
            if hedge:
                attempt.hedged = n
            return asyncio.create_task(
                self._leg(request(n), group, strategy, attempt, race, read_until, hedge)
            )

        legs = [leg(hedge=False)]
        timer = None
        if fire_at is not None and self._may_hedge(group, attempt, spare=2):
            timer = asyncio.create_task(self._clock.sleep(fire_at - self._clock.now()))
        stopped = asyncio.create_task(race.done.wait())
        try:
            while not all(t.done() for t in legs):
                waiting = {t for t in legs if not t.done()} | {stopped}
                if timer is not None:
                    waiting.add(timer)
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if stopped in done:
                    break
                if timer in done:
                    timer = None
                    assert self.hedge_bucket is not None
                    if (
                        attempt.missing > 0
                        and not read_until.expired
                        and self._may_hedge(group, attempt, spare=1)
                        and self.hedge_bucket.try_spend()
                    ):
                        legs.append(leg(hedge=True))
        finally:
            rest = [t for t in (*legs, timer, stopped) if t is not None and t is not race.keeper]
            for task in rest:
                task.cancel()
            # Cancelling a leg leaves its ``async with``: the stream closes, vLLM aborts.
            await asyncio.gather(*rest, *([race.keeper] if race.keeper else []),
                                 return_exceptions=True)  # fmt: skip
        for task in legs:  # a leg records its own failure; anything else is a bug, logged
            error = None if task.cancelled() else task.exception()
            if isinstance(error, Exception):
                attempt.errors.append(f"{type(error).__name__}: {error}")
                attempt.failure = error
                log_dropped("executor leg failed", error)

    def _may_hedge(self, group: str, attempt: _Attempt, spare: int) -> bool:
        """No hedge yet, a token in the bucket, and ``spare`` healthy endpoints not yet
        tried: 2 before the primary is routed (it takes one), 1 once it is."""
        alternatives = self._alternatives(group, frozenset(attempt.tried)) or 0
        return (
            attempt.hedged == 0
            and self.hedge_bucket is not None
            and self.hedge_bucket.available
            and alternatives >= spare
        )

    def _alternatives(self, group: str, exclude: frozenset[str]) -> int | None:
        """Healthy endpoints of ``group`` outside ``exclude`` (``None``: the backend
        does not list its endpoints)."""
        endpoints = getattr(self.backend, "endpoints", None)
        if endpoints is None:
            return None
        now = self._clock.now()
        return sum(
            1 for e in endpoints
            if e.spec.group == group and e.url not in exclude and e.healthy(now)
            and e.served_model is not None
        )  # fmt: skip

    async def _leg(
        self,
        request: ChatRequest,
        group: str,
        strategy: Strategy,
        attempt: _Attempt,
        race: _Race,
        read_until: Deadline,
        hedge: bool,
    ) -> None:
        """Open one request (elsewhere than those tried, when possible) and read it."""
        try:
            recorder = attempt.recorder
            async with self.backend.stream(
                request, group=group, deadline=read_until,
                headers=recorder.outgoing_headers() if recorder is not None else None,
                exclude=frozenset(attempt.tried), on_endpoint=attempt.sent,
            ) as stream:  # fmt: skip
                attempt.streams.append(stream)
                if hedge:
                    attempt.hedge_streams.append(stream)
                if recorder is not None:
                    recorder.stream_read(stream, hedge=hedge)
                await self._read(stream, strategy, attempt, race)
        except (EndpointUnavailable, ProtocolError) as exc:
            # The branches of this request are lost; what finished is kept.
            attempt.errors.append(str(exc))
            attempt.failure = exc
            attempt.tried.add(exc.url)
            if isinstance(exc, ProtocolError):
                attempt.protocol_error = exc
        except (DeadlineExceeded, NoHealthyEndpoint) as exc:
            # No endpoint answered in time: decide from what finished, if anything.
            attempt.errors.append(str(exc))
            attempt.failure = exc
            if not hedge or isinstance(exc, DeadlineExceeded):
                attempt.cut_by_deadline = True
        except (EndpointError, ModelNotServed) as exc:
            # Refused (4xx, a wrong key, an unknown model): this endpoint will not serve
            # the request; another may.
            attempt.errors.append(str(exc))
            attempt.failure = attempt.rejected = exc
            attempt.tried.add(exc.url)
        except Exception as exc:  # anything else a backend raised: the leg is lost, not the call
            attempt.errors.append(f"{type(exc).__name__}: {exc}")
            attempt.failure = attempt.rejected = exc
            log_dropped("executor leg failed", exc)

    async def _read(
        self, stream: ChatStream, strategy: Strategy, attempt: _Attempt, race: _Race
    ) -> None:
        try:
            async for event in stream:
                if not isinstance(event, BranchFinished):
                    continue
                record = stream.branches.get(event.index)
                if record is not None:
                    attempt.note_finished(record)
                running = attempt.missing
                if running == 0:
                    # The call has its branches: cancel the other requests; read this
                    # one to its end only if nothing of it is still generating.
                    race.finish()
                    if not stream.complete:
                        break
                elif strategy.can_stop_early(self._views(attempt, strategy), running):
                    attempt.early_stopped = running
                    race.finish()
                    break
        finally:
            attempt.cut_by_deadline = attempt.cut_by_deadline or stream.cut_by_deadline

    def _views(self, attempt: _Attempt, strategy: Strategy) -> list[BranchView]:
        scorer = MeanLogprobScorer() if strategy.needs_scores and self.scorer is None else None
        return attempt.views(scorer)

    async def _result(
        self,
        messages: Sequence[Message],
        plan: Plan,
        strategy: Strategy,
        spec: AnswerSpec,
        attempt: _Attempt,
        started: float,
        deadline: Deadline,
        degraded: list[str],
    ) -> Result:
        views = self._views(attempt, strategy)
        if strategy.needs_scores and self.scorer is not None and views:
            views = await self._score(messages, views, deadline)
        cut = attempt.cancelled > 0
        decision = strategy.decide(views, include_partial=cut)
        if attempt.cut_by_deadline and attempt.cancelled:
            degraded.append(
                f"slice ended with {attempt.cancelled} of {attempt.wanted} branches unfinished"
            )
        if attempt.errors:
            degraded.append(f"endpoint failures: {attempt.errors[-1]}")
        if attempt.stopped_retrying is not None and attempt.cancelled:
            degraded.append(f"stopped re-issuing: {attempt.stopped_retrying}")
        if decision.answer is None:
            degraded.append("no branch produced an answer")
        text = ""
        if decision.winner_index is not None and decision.winner_index < len(attempt.records):
            text = attempt.records[decision.winner_index].text
        saved = self._tokens_saved(attempt, plan)
        return Result(
            text=text,
            answer=decision.answer,
            decision=decision,
            plan=plan,
            latency_s=self._clock.now() - started,
            completion_tokens=attempt.completion_tokens,
            prompt_tokens=attempt.prompt_tokens,
            branches=BranchCounts(
                requested=attempt.wanted,
                finished=len(attempt.finished),
                early_stopped=attempt.early_stopped,
                cancelled=attempt.cancelled,
                hedged=attempt.hedged,
                hedge_finished=attempt.hedge_finished,
            ),
            hedge_after_s=attempt.hedge_after_s,
            tokens_saved_by_early_stop=saved,
            degraded=bool(degraded),
            degraded_reason="; ".join(degraded) if degraded else None,
            failure=_lasting_failure(attempt),
        )

    async def _score(
        self, messages: Sequence[Message], views: list[BranchView], deadline: Deadline
    ) -> list[BranchView]:
        assert self.scorer is not None
        prompt = str(messages[-1].get("content", ""))
        done = [v for v in views if v.finished]
        try:
            async with timeout_at(deadline.hard_at, clock=deadline.clock):
                scored = await score_branches(self.scorer, prompt, done)
        except TimeoutError:
            return views
        by_index = {v.index: v for v in scored}
        return [by_index.get(v.index, v) for v in views]

    def _tokens_saved(self, attempt: _Attempt, plan: Plan) -> int:
        if not attempt.early_stopped or plan.config is None:
            return 0
        expected = self.models.length.expected_tokens(plan.config.max_tokens)
        return int(sum(max(0.0, expected - r.tokens) for r in attempt.records if not r.finished))
