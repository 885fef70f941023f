"""``TTSChatModel``: a LangChain chat model backed by the budgeted TTS executor.

Swap it in for any chat model: inside an :func:`agentrt.run` it takes its
slice from the run's budget manager (node, visit and step from LangGraph's
task metadata), runs the executor for that slice and reports what it used.
Outside a run it needs an ``executor`` (or ``endpoints``) and a ``slice_s``.

What the served model allows, it supports: plain chat, stop sequences, sync
and async, streaming (the chosen answer arrives once the vote is decided, as
one chunk: the winner is not known earlier). Tool calling is not supported
(SmolLM2 on vLLM has no tool parser); ``bind_tools`` raises a clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    convert_to_openai_messages,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field

from agentrt.deadline import Deadline, current_deadline
from agentrt.errors import ConfigurationError
from agentrt.langgraph.scope import CallRecord, current_run, task_identity
from agentrt.pool.endpoint import EndpointSpec
from agentrt.pool.pool import EndpointPool
from agentrt.tts.answers import AnswerSpec
from agentrt.tts.config import TTSConfig
from agentrt.tts.executor import TTSExecutor
from agentrt.tts.length import LengthModel
from agentrt.tts.result import Result

__all__ = ["TTSChatModel"]

DEFAULT_SLICE_S = 30.0


class TTSChatModel(BaseChatModel):
    """A chat model whose every call is a budgeted, latency-aware TTS call."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_name: str = Field(default="agentrt-tts", alias="model")
    executor: TTSExecutor | None = None
    endpoints: list[EndpointSpec] | None = None
    answer_spec: AnswerSpec | None = None
    config: TTSConfig | None = None
    slice_s: float | None = None
    call_site: str | None = None

    @property
    def _llm_type(self) -> str:
        return "agentrt-tts"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "call_site": self.call_site}

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
        spec = self.answer_spec or (scope.answer_spec if scope else None)
        if scope is not None and self.executor is None:
            node, visit, step = task_identity()
            allocation = scope.manager.allocate(node, self.call_site, visit=visit, step=step)
            stats = scope.manager.profile.stats_for(node)
            length = None
            if stats.tokens_p50 is not None and stats.tokens_p90 is not None:
                length = LengthModel.from_quantiles(stats.tokens_p50, stats.tokens_p90)
            result = await scope.executor.run(
                openai_messages,
                slice_s=allocation.slice_s,
                deadline=allocation.deadline,
                answer_spec=spec,
                config=self.config,
                stop=stop or (),
                length=length,
            )
            scope.manager.call_finished(allocation, tokens=result.completion_tokens)
            scope.calls.append(CallRecord(allocation, result))
            return result
        async with self._standalone_executor() as executor:
            deadline = current_deadline() or Deadline.after(self.slice_s or DEFAULT_SLICE_S)
            return await executor.run(
                openai_messages,
                slice_s=self.slice_s or DEFAULT_SLICE_S,
                deadline=deadline,
                answer_spec=spec,
                config=self.config,
                stop=stop or (),
            )

    @contextlib.asynccontextmanager
    async def _standalone_executor(self) -> AsyncIterator[TTSExecutor]:
        if self.executor is not None:
            yield self.executor
            return
        if not self.endpoints:
            raise ConfigurationError(
                "TTSChatModel outside an agentrt run needs executor= or endpoints="
            )
        async with EndpointPool(self.endpoints) as pool:
            yield TTSExecutor(pool)

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


def _inside(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
