"""The anytime TTS executor: plan a call for its slice, stream it, return the best answer.

One call: the planner turns the slice into a config; the executor opens the
branches on the pool (the :class:`~agentrt.pool.Backend` seam), checks the vote
each time a branch finishes and cancels the rest once the leader cannot be
overtaken, stops reading at the end of the slice (closing the stream aborts
the work in vLLM) and decides from the finished branches, or from partial
text when the answer spec allows. A branch lost to a failing endpoint is
re-issued elsewhere while the slice leaves time for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from agentrt.clock import Clock, current_clock, timeout_after
from agentrt.deadline import Deadline, current_deadline
from agentrt.errors import (
    BudgetRefused,
    ConfigurationError,
    DeadlineExceeded,
    EndpointUnavailable,
    NoHealthyEndpoint,
)
from agentrt.pool.endpoint import PLAIN_GROUP
from agentrt.pool.pool import Backend
from agentrt.pool.protocol import BranchFinished, ChatRequest, Message
from agentrt.pool.stream import BranchRecord, ChatStream
from agentrt.tracing.chat import chat_call, note_stream
from agentrt.tts.accuracy import AccuracyEstimator, AccuracyModel
from agentrt.tts.answers import AnswerSpec, LastNumber
from agentrt.tts.branch import BranchView
from agentrt.tts.config import TTSConfig
from agentrt.tts.latency import LatencyModel
from agentrt.tts.length import LengthModel
from agentrt.tts.planner import (
    Plan,
    PlanInputs,
    SearchSpace,
    plan_for_deadline,
    plan_with_penalty,
    predict,
)
from agentrt.tts.result import BranchCounts, Result
from agentrt.tts.scorers import MeanLogprobScorer, Scorer, score_branches
from agentrt.tts.strategies import Strategy, strategy_for

__all__ = ["CallModels", "QueryAccuracy", "TTSExecutor", "estimate_prompt_tokens"]

DECIDE_MARGIN_S = 0.01
"""Reading stops this long before the slice ends, to decide and return inside it."""


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
    """The branches of one call across the requests it took (re-issues included)."""

    wanted: int
    records: list[BranchRecord] = field(default_factory=list)
    early_stopped: int = 0
    cancelled: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: list[str] = field(default_factory=list)
    cut_by_deadline: bool = False

    @property
    def finished(self) -> list[BranchRecord]:
        return [r for r in self.records if r.finished]

    def views(self, scorer: MeanLogprobScorer | None) -> list[BranchView]:
        """Snapshots indexed by position in ``records`` (re-issued branches renumbered)."""
        views = []
        for i, record in enumerate(self.records):
            view = replace(BranchView.of(record), index=i)
            views.append(view if scorer is None else view.with_score(scorer.score_now(view)))
        return views


class TTSExecutor:
    """Runs one LLM call with latency-aware test-time scaling on a backend.

    ``objective`` picks the planner: ``"deadline"`` (max accuracy whose latency
    at ``sla_quantile`` fits the slice) or ``"penalty"`` (accuracy minus
    ``lambda_tokens`` x tokens minus ``lambda_latency_s`` x seconds).
    ``run_seed`` makes a run replay: each call's request seed derives from it.
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
    ) -> None:
        if objective not in ("deadline", "penalty"):
            raise ConfigurationError(
                f"objective must be 'deadline' or 'penalty', got {objective!r}"
            )
        if on_refusal not in ("degrade", "raise"):
            raise ConfigurationError(f"on_refusal must be 'degrade' or 'raise', got {on_refusal!r}")
        self.backend = backend
        self.models = models or CallModels()
        self.space = space or SearchSpace(groups=tuple(self.models.latency))
        self.objective = objective
        self.sla_quantile = sla_quantile
        self.lambda_tokens = lambda_tokens
        self.lambda_latency_s = lambda_latency_s
        self.scorer = scorer
        self.on_refusal = on_refusal
        self.run_seed = run_seed
        self._clock = clock or current_clock()
        self._calls = 0

    # -- planning -----------------------------------------------------------------

    def plan(
        self,
        messages: Sequence[Message],
        slice_s: float,
        *,
        load: Mapping[str, int] | None = None,
        length: LengthModel | None = None,
        siblings: int = 0,
    ) -> Plan:
        """The config this executor would run for ``messages`` in ``slice_s`` (pure)."""
        inputs = self._inputs(messages, slice_s, load or {}, length, siblings)
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
    ) -> PlanInputs:
        return PlanInputs(
            siblings=siblings,
            slice_s=slice_s,
            prompt_tokens=estimate_prompt_tokens(messages),
            latency_models=self.models.latency,
            length_model=length or self.models.length,
            accuracy_model=self.models.accuracy_for(messages),
            sla_quantile=self.sla_quantile,
            load=load,
            space=self.space,
        )

    def _fixed_plan(self, messages: Sequence[Message], config: TTSConfig, slice_s: float) -> Plan:
        prediction = predict(config, self._inputs(messages, slice_s, {}))
        return Plan("deadline", config, prediction, f"fixed: {config.label}", slice_s, 1, 1)

    def _fallback_plan(self, messages: Sequence[Message], refused: Plan) -> Plan:
        config = TTSConfig("single", 1, group=self.space.groups[0],
                           max_tokens=min(self.space.max_tokens_choices))  # fmt: skip
        prediction = predict(config, self._inputs(messages, refused.slice_s, {}))
        reason = f"{refused.reason}; degraded to {config.label}"
        return Plan(refused.objective, config, prediction, reason, refused.slice_s,
                    refused.considered, 0)  # fmt: skip

    def _live_load(self) -> dict[str, int]:
        """Sequences already decoding per group: on the least-loaded endpoint of each
        group (where the pool will route), from the pool's own in-flight counts."""
        endpoints = getattr(self.backend, "endpoints", None)
        if not endpoints:
            return {}
        now = self._clock.now()
        load: dict[str, int] = {}
        for endpoint in endpoints:
            if endpoint.healthy(now):
                group = endpoint.spec.group
                load[group] = min(load.get(group, endpoint.in_flight), endpoint.in_flight)
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
    ) -> Result:
        """Plan and run one call inside ``slice_s`` (and the ambient deadline).

        It always returns by the slice's end (plus a small margin): cut short,
        the result decides from what it has and says ``degraded``. The call is
        traced as a ``chat {model}`` span with a child span per branch.
        """
        with chat_call(messages, clock=self._clock, slice_s=slice_s, deadline=deadline) as call:
            result = await self._run(
                messages, slice_s, deadline, answer_spec, config, stop, length, siblings
            )
            call.finished(result)
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
        if config is not None:
            plan = self._fixed_plan(messages, config, available_s)
        else:
            plan = self.plan(
                messages, available_s, load=self._live_load(), length=length, siblings=siblings
            )
            if plan.refused:
                if self.on_refusal == "raise":
                    cheapest = self._fallback_plan(messages, plan)
                    minimum = (
                        cheapest.prediction.latency_quantile_s if cheapest.prediction else math.inf
                    )
                    raise BudgetRefused("LLM call", available_s, minimum)
                plan = self._fallback_plan(messages, plan)
                degraded.append("refused by the planner: ran the cheapest config")
        assert plan.config is not None
        strategy = strategy_for(plan.config, spec)
        started = self._clock.now()
        attempt = await self._stream_branches(
            messages, plan.config, strategy, call_deadline, tuple(stop)
        )
        return await self._result(
            messages, plan, strategy, spec, attempt, started, call_deadline, degraded
        )

    async def _stream_branches(
        self,
        messages: Sequence[Message],
        config: TTSConfig,
        strategy: Strategy,
        deadline: Deadline,
        stop: tuple[str, ...] = (),
    ) -> _Attempt:
        self._calls += 1
        attempt = _Attempt(wanted=config.n)
        options = strategy.request_options(config, seed=self.run_seed * 1_000_003 + self._calls)
        read_until = Deadline(
            hard_at=deadline.hard_at - DECIDE_MARGIN_S, clock=self._clock,
            started_at=self._clock.now(), scope="call",
        )  # fmt: skip
        missing = config.n
        reissues = 0
        while missing > 0 and not read_until.expired:
            request = ChatRequest(
                messages=list(messages),
                n=missing,
                max_tokens=options.max_tokens,
                temperature=options.temperature if missing > 1 or options.temperature > 0 else 0.0,
                top_p=options.top_p,
                seed=None if options.seed is None else options.seed + reissues,
                logprobs=options.logprobs,
                stop=stop,
                extra=dict(options.extra),
            )
            try:
                async with self.backend.stream(
                    request, group=config.group, deadline=read_until
                ) as stream:
                    await self._read(stream, strategy, attempt)
            except EndpointUnavailable as exc:
                attempt.errors.append(str(exc))  # _read kept what the stream had
            except (DeadlineExceeded, NoHealthyEndpoint) as exc:
                # No endpoint answered in time: decide from what finished, if anything.
                attempt.errors.append(str(exc))
                attempt.cut_by_deadline = True
                break
            missing = attempt.wanted - len(attempt.finished) - attempt.early_stopped
            if attempt.early_stopped or attempt.cut_by_deadline or not attempt.errors:
                break
            reissues += 1
            # Keep what finished; ask again only for what was lost.
            attempt.records = attempt.finished
        attempt.cancelled = max(0, attempt.wanted - len(attempt.finished) - attempt.early_stopped)
        return attempt

    async def _read(self, stream: ChatStream, strategy: Strategy, attempt: _Attempt) -> None:
        base = len(attempt.records)
        attempt.records.extend(stream.branches[i] for i in sorted(stream.branches))
        try:
            async for event in stream:
                if not isinstance(event, BranchFinished):
                    continue
                running = sum(1 for r in attempt.records if not r.finished)
                if running and strategy.can_stop_early(self._views(attempt, strategy), running):
                    attempt.early_stopped = running
                    break
        finally:
            note_stream(stream)
            attempt.records[base:] = [stream.branches[i] for i in sorted(stream.branches)]
            attempt.cut_by_deadline = attempt.cut_by_deadline or stream.cut_by_deadline
            attempt.prompt_tokens = stream.prompt_tokens or attempt.prompt_tokens
            attempt.completion_tokens += stream.completion_tokens

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
                finished=min(len(attempt.finished), attempt.wanted),
                early_stopped=attempt.early_stopped,
                cancelled=attempt.cancelled,
            ),
            tokens_saved_by_early_stop=saved,
            degraded=bool(degraded),
            degraded_reason="; ".join(degraded) if degraded else None,
        )

    async def _score(
        self, messages: Sequence[Message], views: list[BranchView], deadline: Deadline
    ) -> list[BranchView]:
        assert self.scorer is not None
        prompt = str(messages[-1].get("content", ""))
        done = [v for v in views if v.finished]
        try:
            async with timeout_after(deadline.remaining()):
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
