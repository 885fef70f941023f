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

The chat-model contract as ``ChatOpenAI`` has it: plain chat, stop sequences,
sync and async, streaming (the chosen message arrives once the vote is decided,
as one chunk: the winner is not known earlier), ``bind_tools`` (tool choice
``auto``/``any``/``required``/``none``/a name, ``strict``) and
``with_structured_output`` (``json_schema``, ``function_calling``, ``json_mode``,
``include_raw``). The branches vote on actions: which tool, with which
arguments, or no tool (:mod:`agentrt.langgraph._tool_calling`). ``tool_calling``
says how tools reach the servers: ``native`` (the server parses tool calls),
``constrained`` (the tools go into the prompt and a JSON schema holds each
branch to a call or an answer) or ``auto`` (native where every endpoint parses
tool calls).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    convert_to_openai_messages,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.output_parsers import (
    JsonOutputKeyToolsParser,
    JsonOutputParser,
    PydanticOutputParser,
    PydanticToolsParser,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import ConfigDict, Field

from agentrt.core._deadline import Deadline, current_deadline
from agentrt.core._errors import ConfigurationError, EndpointRejected
from agentrt.langgraph._runtime import Runtime, default_runtime
from agentrt.langgraph._scope import CallRecord, current_run, task_identity
from agentrt.langgraph._tool_calling import (
    CallShape,
    ToolCallingMode,
    action_chunk,
    action_message,
    call_shape,
    format_tools,
    json_schema_of,
    normalise_tool_choice,
)
from agentrt.pool._config import endpoints_from_env
from agentrt.pool._endpoint import EndpointSpec, greedy_only_groups
from agentrt.pool._local import LocalPool
from agentrt.pool._pool import EndpointPool
from agentrt.tracing._spans import allocation_scope, node_context
from agentrt.tts._answers import AnswerSpec
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
    # How tools and structured output reach the servers (module docstring).
    tool_calling: ToolCallingMode = "auto"

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

    def bind_tools(
        self,
        tools: Sequence[Any],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer ``tools`` to the model, as ``ChatOpenAI.bind_tools`` does.

        ``tool_choice``: ``"auto"`` (the default), ``"any"``/``"required"``/``True``
        (some tool), ``"none"``, or a tool's name. ``strict`` (default on) holds
        the arguments to the tool's schema; a 135M model needs it. A tool whose
        schema a grammar cannot compile, or a choice naming an unknown tool, is
        refused here with the tool and field named.
        """
        formatted = format_tools(tools, strict=strict)
        names = [t["function"]["name"] for t in formatted]
        choice = normalise_tool_choice(tool_choice, names)
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return self.bind(tools=formatted, tool_choice=choice, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        method: Literal["json_schema", "function_calling", "json_mode"] = "json_schema",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """Replies parsed into ``schema`` (a pydantic model, TypedDict or JSON
        schema), as ``ChatOpenAI.with_structured_output`` does. The branches vote
        on the canonical JSON object; only schema-valid objects vote."""
        if kwargs:
            raise ConfigurationError(
                f"with_structured_output: unsupported arguments {sorted(kwargs)}"
            )
        pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        parser: Runnable[Any, Any]
        if method == "function_calling":
            tool_name = format_tools([schema], strict=strict)[0]["function"]["name"]
            llm = self.bind_tools(
                [schema], tool_choice=tool_name, strict=strict,
                ls_structured_output_format={"kwargs": {"method": method}, "schema": schema},
            )  # fmt: skip
            parser = (
                PydanticToolsParser(tools=[schema], first_tool_only=True)
                if pydantic
                else JsonOutputKeyToolsParser(key_name=tool_name, first_tool_only=True)
            )
        elif method in ("json_schema", "json_mode"):
            if method == "json_schema":
                name, json_schema = json_schema_of(schema)
                response_format: dict[str, Any] = {
                    "type": "json_schema",
                    "json_schema": {
                        "name": name,
                        "schema": json_schema,
                        "strict": strict is not False,
                    },
                }
            else:
                response_format = {"type": "json_object"}
            llm = self.bind(
                response_format=response_format,
                ls_structured_output_format={"kwargs": {"method": method}, "schema": schema},
            )
            parser = (
                PydanticOutputParser(pydantic_object=schema) if pydantic else JsonOutputParser()
            )
        else:
            raise ConfigurationError(
                "with_structured_output: method must be 'json_schema', 'function_calling' or "
                f"'json_mode', got {method!r}"
            )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        ).with_fallbacks(
            [RunnablePassthrough.assign(parsed=lambda _: None)], exception_key="parsing_error"
        )
        return RunnableMap(raw=llm) | parsed

    # -- generation ---------------------------------------------------------------

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = await self._reply(messages, stop, kwargs)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._reply_sync(messages, stop, kwargs)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        message = await self._reply(messages, stop, kwargs)
        chunk = ChatGenerationChunk(message=action_chunk(message))
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
        message = self._reply_sync(messages, stop, kwargs)
        chunk = ChatGenerationChunk(message=action_chunk(message))
        if run_manager is not None:
            run_manager.on_llm_new_token(str(message.content), chunk=chunk)
        yield chunk

    def _reply_sync(
        self, messages: list[BaseMessage], stop: list[str] | None, options: Mapping[str, Any]
    ) -> AIMessage:
        scope = current_run()
        coroutine = self._reply(messages, stop, options)
        if scope is not None and not _inside(scope.loop):
            # A sync node in LangGraph's thread pool: run on the run's own loop,
            # where the pool's connections live.
            return asyncio.run_coroutine_threadsafe(coroutine, scope.loop).result()
        return asyncio.run(coroutine)

    async def _reply(
        self, messages: list[BaseMessage], stop: list[str] | None, options: Mapping[str, Any]
    ) -> AIMessage:
        result, shape = await self._call(messages, stop, options)
        return self._message(result, shape)

    # -- the budgeted call ----------------------------------------------------------

    def _shaper(
        self, openai_messages: list[dict[str, Any]], options: Mapping[str, Any],
        answer_spec: AnswerSpec | None,
    ) -> Callable[[TTSExecutor], CallShape]:  # fmt: skip
        """How to shape the call once its executor (and so its endpoints) is known."""
        unknown = sorted(set(options) - _CALL_OPTIONS)
        if unknown:
            raise ConfigurationError(f"TTSChatModel: unsupported call options {unknown}")

        def shape(executor: TTSExecutor) -> CallShape:
            endpoints = getattr(executor.backend, "endpoints", None)
            specs = None if endpoints is None else [e.spec for e in endpoints]
            return call_shape(
                openai_messages,
                tools=options.get("tools") or (),
                tool_choice=options.get("tool_choice"),
                response_format=options.get("response_format"),
                parallel_tool_calls=options.get("parallel_tool_calls"),
                answer_spec=answer_spec,
                mode=self.tool_calling,
                endpoints=specs,
                max_tokens=self.max_tokens,
            )

        return shape

    async def _call(
        self, messages: list[BaseMessage], stop: list[str] | None, options: Mapping[str, Any]
    ) -> tuple[Result, CallShape]:
        openai_messages = convert_to_openai_messages(messages)
        if not isinstance(openai_messages, list) or not openai_messages:
            raise ConfigurationError("TTSChatModel needs at least one message")
        scope = current_run()
        # Free-form chat: the whole reply is the answer unless told otherwise.
        shaper = self._shaper(
            openai_messages, options, self.answer_spec or (scope.answer_spec if scope else None)
        )
        stop = stop or self.stop
        if scope is not None and self.executor is None:
            shape = shaper(scope.executor)
            node, visit, step = task_identity()
            allocation = scope.manager.allocate(node, self.call_site, visit=visit, step=step)
            stats = scope.manager.profile.stats_for(node)
            length = None
            if stats.tokens_p50 is not None and stats.tokens_p90 is not None:
                length = LengthModel.from_quantiles(stats.tokens_p50, stats.tokens_p90)
            with node_context(visit, node), allocation_scope(allocation):
                result = await scope.executor.run(
                    shape.messages,
                    slice_s=allocation.slice_s,
                    deadline=allocation.deadline,
                    answer_spec=shape.answer_spec,
                    config=self.config,
                    stop=stop or (),
                    length=length,
                    siblings=max(0, round(stats.fanout) - 1),
                    call_site=self.call_site or node,
                    space=self._within(scope.executor.space),
                    output=shape.output,
                )
            scope.manager.call_finished(allocation, tokens=result.completion_tokens)
            scope.calls.append(CallRecord(allocation, result))  # recorded even if it failed
            _raise_failure(result, shape)
            return result, shape
        slice_s = self.slice_s or self.timeout or DEFAULT_SLICE_S
        async with self._standalone_executor() as executor:
            shape = shaper(executor)
            deadline = current_deadline() or Deadline.after(slice_s, clock=executor.clock)
            result = await executor.run(
                shape.messages,
                slice_s=slice_s,
                deadline=deadline,
                answer_spec=shape.answer_spec,
                config=self.config,
                stop=stop or (),
                call_site=self.call_site,
                output=shape.output,
            )
        _raise_failure(result, shape)  # every request failed: say why, as ChatOpenAI would
        return result, shape

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

    def _message(self, result: Result, shape: CallShape) -> AIMessage:
        usage = UsageMetadata(
            input_tokens=result.prompt_tokens,
            output_tokens=result.completion_tokens,
            total_tokens=result.prompt_tokens + result.completion_tokens,
        )
        config = result.config
        return action_message(
            result.text,
            shape,
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
                    "tool_calling": shape.mode,
                },
            },
        )


_CALL_OPTIONS = frozenset({"tools", "tool_choice", "response_format", "parallel_tool_calls"})
"""The options ``bind``/``bind_tools``/``with_structured_output`` may pass to a call."""


def _raise_failure(result: Result, shape: CallShape) -> None:
    """Raise a call's lasting failure; a server refusing the tools' or the
    response format's schema says which tools the schema was made from."""
    failure = result.failure
    if failure is None:
        return
    refused_schema = isinstance(failure, EndpointRejected) and failure.status_code in (400, 422)
    if refused_schema and shape.output is not None:
        what = f"the tools {shape.tool_names}" if shape.actions else "the response format"
        raise ConfigurationError(
            f"the server refused the schema of {what} (tool_calling={shape.mode}): {failure}"
        ) from failure
    raise failure


def _greedy(pool: EndpointPool) -> tuple[str, ...]:
    return greedy_only_groups(e.spec for e in pool.endpoints)


def _inside(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
