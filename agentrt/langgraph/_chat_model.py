"""``TTSChatModel``: a LangChain chat model backed by the budgeted TTS executor.

Swap it in for any chat model: inside an :func:`agentrt.run` it takes its
slice from the run's budget manager (node, visit and step from LangGraph's
task metadata), runs the run's executor for that slice, within its own
``max_tokens``, ``temperature`` and ``stop``, and reports what it used. Outside
a run each call gets ``slice_s`` (or ``timeout``, else 30 s) on its runtime
(``runtime=``, ``rt.chat_model()``, else the process-default one): the
runtime's pool when it holds one open, else ``endpoints``, ``AGENTRT_ENDPOINTS``
or the running local pool, opened for the call; the latency models, what they
learned and the hedge budget are the runtime's, so one call teaches the next.

What the served model allows, it supports: plain chat, stop sequences, sync
and async, streaming (the chosen answer arrives once the vote is decided, as
one chunk: the winner is not known earlier). Tool calling is not supported
(SmolLM2 on vLLM has no tool parser); ``bind_tools`` raises a clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    convert_to_openai_messages,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field

from agentrt.core._deadline import Deadline, current_deadline
from agentrt.core._errors import ConfigurationError
from agentrt.langgraph._runtime import Runtime, default_runtime
from agentrt.langgraph._scope import CallRecord, current_run, task_identity
from agentrt.pool._config import endpoints_from_env
from agentrt.pool._endpoint import EndpointSpec, greedy_only_groups
from agentrt.pool._local import LocalPool
from agentrt.pool._pool import EndpointPool
from agentrt.tracing._spans import allocation_scope, node_context
from agentrt.tts._answers import AnswerSpec, NormalisedString
from agentrt.tts._config import StrategyName, TTSConfig
from agentrt.tts._executor import TTSExecutor
from agentrt.tts._length import LengthModel
from agentrt.tts._planner import SearchSpace
from agentrt.tts._result import Result

__all__ = ["TTSChatModel"]

DEFAULT_SLICE_S = 30.0


class TTSChatModel(BaseChatModel):
    """A chat model whose every call is a budgeted, latency-aware TTS call."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_name: str = Field(default="agentrt-tts", alias="model")
    executor: TTSExecutor | None = None
    runtime: Runtime | None = None
    endpoints: list[EndpointSpec] | None = None
    answer_spec: AnswerSpec | None = None
    config: TTSConfig | None = None
    slice_s: float | None = Field(default=None, gt=0)
    call_site: str | None = None
    # The standard chat-model parameters. ``temperature=0`` means greedy only
    # (no sampled branches); ``max_tokens`` caps every branch; ``timeout`` is
    # the slice of a call made outside an agentrt run.
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, gt=0)
    stop: list[str] | None = None
    max_retries: int = Field(default=2, ge=0)

    @property
    def _llm_type(self) -> str:
        return "agentrt-tts"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "call_site": self.call_site}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="agentrt",
            ls_model_name=str(kwargs.get("model", self.model_name)),
            ls_model_type="chat",
        )
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        if self.max_tokens is not None:
            params["ls_max_tokens"] = self.max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    def _space(self, groups: Sequence[str], greedy_only: Sequence[str] = ()) -> SearchSpace:
        strategies: tuple[StrategyName, ...] = ("single",)
        if self.temperature is None or self.temperature > 0:
            strategies = ("single", "majority")
        tokens = (self.max_tokens,) if self.max_tokens is not None else (64, 256)
        return SearchSpace(
            strategies=strategies,
            groups=tuple(groups),
            max_tokens_choices=tokens,
            temperature=self.temperature or 0.7,
            greedy_only_groups=tuple(greedy_only),
        )

    def _within(self, space: SearchSpace) -> SearchSpace | None:
        """A run's search space narrowed to this model's own parameters (``None``
        when it sets none): ``max_tokens`` caps every branch, ``temperature=0``
        means greedy only, another temperature is the branches' sampling one."""
        changes: dict[str, Any] = {}
        if self.max_tokens is not None:
            changes["max_tokens_choices"] = (self.max_tokens,)
        if self.temperature == 0:
            changes["strategies"] = ("single",)
        elif self.temperature is not None:
            changes["temperature"] = self.temperature
        return replace(space, **changes) if changes else None

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        raise NotImplementedError(
            "TTSChatModel does not support tool calling: the served model has no tool parser; "
            "parse tool requests from text in your graph instead"
        )

    # -- generation ---------------------------------------------------------------

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        result = await self._call(messages, stop)
        return ChatResult(generations=[ChatGeneration(message=self._message(result))])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        scope = current_run()
        coroutine = self._agenerate(messages, stop)
        if scope is not None and not _inside(scope.loop):
            # A sync node in LangGraph's thread pool: run on the run's own loop,
            # where the pool's connections live.
            return asyncio.run_coroutine_threadsafe(coroutine, scope.loop).result()
        return asyncio.run(coroutine)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        result = await self._call(messages, stop)
        message = self._message(result)
        chunk = ChatGenerationChunk(
            message=AIMessageChunk(
                content=message.content,
                usage_metadata=message.usage_metadata,
                response_metadata=message.response_metadata,
                chunk_position="last",
            )
        )
        if run_manager is not None:
            await run_manager.on_llm_new_token(str(message.content), chunk=chunk)
        yield chunk

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        result = self._generate(messages, stop)
        message = result.generations[0].message
        chunk = ChatGenerationChunk(
            message=AIMessageChunk(
                content=message.content,
                usage_metadata=getattr(message, "usage_metadata", None),
                response_metadata=message.response_metadata,
                chunk_position="last",
            )
        )
        if run_manager is not None:
            run_manager.on_llm_new_token(str(message.content), chunk=chunk)
        yield chunk

    # -- the budgeted call ----------------------------------------------------------

    async def _call(self, messages: list[BaseMessage], stop: list[str] | None) -> Result:
        openai_messages = convert_to_openai_messages(messages)
        if not isinstance(openai_messages, list) or not openai_messages:
            raise ConfigurationError("TTSChatModel needs at least one message")
        scope = current_run()
        # Free-form chat: the whole reply is the answer unless told otherwise.
        spec = self.answer_spec or (scope.answer_spec if scope else None) or NormalisedString()
        stop = stop or self.stop
        if scope is not None and self.executor is None:
            node, visit, step = task_identity()
            allocation = scope.manager.allocate(node, self.call_site, visit=visit, step=step)
            stats = scope.manager.profile.stats_for(node)
            length = None
            if stats.tokens_p50 is not None and stats.tokens_p90 is not None:
                length = LengthModel.from_quantiles(stats.tokens_p50, stats.tokens_p90)
            with node_context(visit, node), allocation_scope(allocation):
                result = await scope.executor.run(
                    openai_messages,
                    slice_s=allocation.slice_s,
                    deadline=allocation.deadline,
                    answer_spec=spec,
                    config=self.config,
                    stop=stop or (),
                    length=length,
                    siblings=max(0, round(stats.fanout) - 1),
                    call_site=self.call_site or node,
                    space=self._within(scope.executor.space),
                )
            scope.manager.call_finished(allocation, tokens=result.completion_tokens)
            scope.calls.append(CallRecord(allocation, result))  # recorded even if it failed
            if result.failure is not None:
                raise result.failure
            return result
        slice_s = self.slice_s or self.timeout or DEFAULT_SLICE_S
        async with self._standalone_executor() as executor:
            deadline = current_deadline() or Deadline.after(slice_s, clock=executor.clock)
            result = await executor.run(
                openai_messages,
                slice_s=slice_s,
                deadline=deadline,
                answer_spec=spec,
                config=self.config,
                stop=stop or (),
                call_site=self.call_site,
            )
        if result.failure is not None:  # every request failed: say why, as ChatOpenAI would
            raise result.failure
        return result

    @contextlib.asynccontextmanager
    async def _standalone_executor(self) -> AsyncIterator[TTSExecutor]:
        """The executor of a call outside a run: the given one, else one on the
        runtime's held pool, else on a pool opened for the call (whose knowledge
        the runtime keeps, keyed by the pool's endpoints)."""
        if self.executor is not None:
            yield self.executor
            return
        runtime = self.runtime or default_runtime()
        if self.endpoints is None and runtime.holds_pool:
            pool = runtime.pool
            yield runtime.executor(space=self._space(sorted(pool.groups), _greedy(pool)))
            return
        specs = self.endpoints or endpoints_from_env() or LocalPool().endpoints()
        if not specs:
            raise ConfigurationError(
                "TTSChatModel outside an agentrt run needs executor=, runtime=, endpoints=, "
                "AGENTRT_ENDPOINTS or a running local pool (`agentrt up`)"
            )
        async with EndpointPool(specs) as pool:
            await runtime.knowledge(pool)
            yield runtime.executor(pool=pool, space=self._space(sorted(pool.groups), _greedy(pool)))

    def _message(self, result: Result) -> AIMessage:
        usage = UsageMetadata(
            input_tokens=result.prompt_tokens,
            output_tokens=result.completion_tokens,
            total_tokens=result.prompt_tokens + result.completion_tokens,
        )
        config = result.config
        return AIMessage(
            content=result.text,
            usage_metadata=usage,
            response_metadata={
                "model_name": self.model_name,
                "finish_reason": "stop",
                "agentrt": {
                    "answer": None if result.answer is None else result.answer.key,
                    "votes": result.votes,
                    "config": None if config is None else config.label,
                    "reason": result.plan.reason,
                    "latency_s": round(result.latency_s, 4),
                    "predicted_latency_s": result.predicted_latency_s,
                    "branches": {
                        "requested": result.branches.requested,
                        "finished": result.branches.finished,
                        "early_stopped": result.branches.early_stopped,
                        "cancelled": result.branches.cancelled,
                    },
                    "degraded": result.degraded,
                    "degraded_reason": result.degraded_reason,
                },
            },
        )


def _greedy(pool: EndpointPool) -> tuple[str, ...]:
    return greedy_only_groups(e.spec for e in pool.endpoints)


def _inside(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
