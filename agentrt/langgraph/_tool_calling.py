"""Tool calling and structured output for :class:`TTSChatModel`, as LangChain has them.

What a call asks for (tools and a tool choice from ``bind_tools``, a response
format from ``with_structured_output``) becomes a :class:`CallShape`: the
answer spec its branches vote with and the :class:`OutputFormat` every request
carries. Two ways to reach a server:

- **native**: the server parses tool calls (vLLM with ``--tool-call-parser``);
  tools and ``tool_choice`` pass through, calls stream back parsed;
- **constrained**: the server has structured outputs but no parser for the model;
  the tools go into the prompt and each branch is held by a JSON schema that
  admits either tool calls or a final answer.

Either way the branches vote on actions (:class:`~agentrt.tts.ActionSpec`): tool
name and normalised arguments, order-insensitive, "no tool" being one more
candidate. Structured output votes on the canonical JSON object.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    InvalidToolCall,
    ToolCall,
    ToolCallChunk,
)
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool

from agentrt.core._errors import ConfigurationError
from agentrt.pool._endpoint import EndpointSpec
from agentrt.tts._actions import (
    Action,
    ActionSpec,
    StructuredSpec,
    check_tool_definition,
    constrained_instructions,
    constrained_messages,
    constrained_schema,
    parse_action,
)
from agentrt.tts._answers import AnswerSpec, NormalisedString
from agentrt.tts._output import OutputFormat

__all__ = [
    "TOOL_CALLING_MODES",
    "CallShape",
    "ToolCallingMode",
    "action_chunk",
    "action_message",
    "call_shape",
    "format_tools",
    "json_schema_of",
    "normalise_tool_choice",
    "resolve_mode",
]

ToolCallingMode = Literal["auto", "native", "constrained"]
TOOL_CALLING_MODES: tuple[str, ...] = ("auto", "native", "constrained")
CONSTRAINED_SCHEMA_NAME = "agentrt_action"
MAX_CONSTRAINED_CALLS = 4
"""Tool calls one constrained reply may hold with ``parallel_tool_calls=True`` (the
schema's ``maxItems``). Without it a constrained reply holds one call: SmolLM2
given room for four repeats its call until ``max_tokens`` cuts the JSON."""


def format_tools(tools: Sequence[Any], *, strict: bool | None) -> list[dict[str, Any]]:
    """LangChain tools, pydantic models, functions or OpenAI dicts as checked OpenAI
    tool definitions. ``strict`` (default on) has the server hold arguments to
    their schema: vLLM constrains them only when it is set."""
    formatted = [
        convert_to_openai_tool(t, strict=True if strict is None else strict) for t in tools
    ]
    for index, tool in enumerate(formatted):
        check_tool_definition(tool, index)
    return formatted


def normalise_tool_choice(choice: Any, names: Sequence[str]) -> str | None:
    """``tool_choice`` as LangChain spells it -> ``"auto"``, ``"required"``,
    ``"none"``, a tool's name, or ``None`` (the server's default, auto)."""
    if choice is None or choice is False:
        return None
    if choice is True or choice == "any":
        return "required"
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else choice.get("name")
        if not isinstance(name, str):
            raise ConfigurationError(f"tool_choice: a dict must name a function, got {choice!r}")
        choice = name
    if not isinstance(choice, str):
        raise ConfigurationError(f"tool_choice must be a string or a dict, got {choice!r}")
    if choice in ("auto", "required", "none"):
        return choice
    if choice not in names:
        raise ConfigurationError(
            f"tool_choice names an unknown tool {choice!r}; the bound tools are {list(names)}"
        )
    return choice


def json_schema_of(schema: Any) -> tuple[str, dict[str, Any]]:
    """A pydantic model, TypedDict, function or JSON schema as ``(name, JSON schema)``."""
    if isinstance(schema, dict) and "function" not in schema and "name" not in schema:
        name = str(schema.get("title") or "response")
        return name, schema
    converted = convert_to_json_schema(schema)
    return str(converted.get("title") or "response"), converted


def resolve_mode(
    mode: ToolCallingMode, endpoints: Sequence[EndpointSpec] | None, what: str
) -> Literal["native", "constrained"]:
    """The way ``what`` (tool calling, structured output) reaches these endpoints.

    ``auto`` is native where every endpoint parses tool calls, else constrained.
    An endpoint that has neither (``tool_calling = "none"``) is an error naming it,
    as is ``native`` asked of one without a parser. Without endpoint specs (an
    executor on a test backend) auto means constrained: it needs only structured
    outputs, which every vLLM has.
    """
    if mode not in TOOL_CALLING_MODES:
        raise ConfigurationError(
            f"TTSChatModel.tool_calling must be one of {TOOL_CALLING_MODES}, got {mode!r}"
        )
    specs = list(endpoints or ())
    unable = [s.url for s in specs if s.tool_calling == "none"]
    if unable:
        raise ConfigurationError(
            f"{what} needs an endpoint with a tool parser or structured outputs; "
            f"{unable} have tool_calling = 'none'"
        )
    if mode == "native":
        unparsed = [s.url for s in specs if s.tool_calling != "native"]
        if unparsed:
            raise ConfigurationError(
                f"tool_calling='native' needs servers with a tool-call parser; "
                f"{unparsed} have tool_calling = 'constrained'"
            )
        return "native"
    if mode == "constrained":
        return "constrained"
    return "native" if specs and all(s.tool_calling == "native" for s in specs) else "constrained"


@dataclass(frozen=True)
class CallShape:
    """What one chat-model call sends and how its branches vote."""

    messages: list[dict[str, Any]]
    answer_spec: AnswerSpec
    output: OutputFormat | None
    mode: Literal["native", "constrained"] | None = None

    @property
    def tool_names(self) -> list[str]:
        """The names of the tools offered (none for plain or structured calls)."""
        spec = self.answer_spec
        return list(spec.tools) if isinstance(spec, ActionSpec) else []

    @property
    def actions(self) -> bool:
        """Whether the branches vote on actions (tool calls or answers)."""
        return isinstance(self.answer_spec, ActionSpec)


def call_shape(
    messages: list[dict[str, Any]],
    *,
    tools: Sequence[dict[str, Any]] = (),
    tool_choice: str | None = None,
    response_format: Mapping[str, Any] | None = None,
    parallel_tool_calls: bool | None = None,
    answer_spec: AnswerSpec | None,
    mode: ToolCallingMode,
    endpoints: Sequence[EndpointSpec] | None,
    max_tokens: int | None = None,
) -> CallShape:
    """Decide one call's messages, output format and answer spec (``max_tokens``:
    the model's cap, which a structured reply's strings are bounded to fit)."""
    plain = answer_spec or NormalisedString()
    if response_format is not None:
        resolve_mode(mode, endpoints, "structured output")  # checks the endpoints can
        return CallShape(
            messages,
            _structured_spec(response_format),
            OutputFormat(response_format=_grammar_format(response_format, max_tokens)),
        )
    if not tools:
        return CallShape(messages, plain, None)
    chosen = resolve_mode(mode, endpoints, "tool calling")
    parameters = {t["function"]["name"]: t["function"].get("parameters") or {} for t in tools}
    spec = ActionSpec(tools=parameters, answer=plain)
    if chosen == "native":
        wire_choice: str | dict[str, Any] | None = tool_choice
        if tool_choice not in (None, "auto", "required", "none"):
            wire_choice = {"type": "function", "function": {"name": tool_choice}}
        output = OutputFormat(
            tools=tuple(tools), tool_choice=wire_choice, parallel_tool_calls=parallel_tool_calls
        )
        return CallShape(messages, spec, output, mode="native")
    max_calls = MAX_CONSTRAINED_CALLS if parallel_tool_calls else 1
    schema = bounded_strings(constrained_schema(tools, tool_choice, max_calls=max_calls))
    response = {
        "type": "json_schema",
        "json_schema": {"name": CONSTRAINED_SCHEMA_NAME, "schema": schema},
    }
    return CallShape(
        _with_instructions(
            constrained_messages(messages), constrained_instructions(tools, tool_choice)
        ),
        spec,
        OutputFormat(response_format=response),
        mode="constrained",
    )


MAX_GRAMMAR_STRING_CHARS = 160
"""``maxLength`` given to every unbounded string in a schema sent to the server's
grammar: SmolLM2 held to JSON can repeat a word inside a string until
``max_tokens`` cuts the object, which then parses as nothing. The schema the
branches are validated against is the caller's, unchanged."""

_BOUNDED_STRING_KEYS = ("maxLength", "enum", "const", "pattern", "format")


MIN_GRAMMAR_STRING_CHARS = 16
CHARS_PER_TOKEN_LOW = 2.0
"""A low estimate of characters per token inside a JSON string (a repeated short
word tokenises at ~2): strings bounded with it fit their share of the cap."""
STRING_SHARE = 0.6
"""The share of a structured reply's ``max_tokens`` its strings may take; the rest
is keys, punctuation and numbers."""


def _unbounded_strings(schema: Any) -> list[dict[str, Any]]:
    """The ``string`` schemas of ``schema`` without a bound of their own
    (iterative: hostile nesting cannot recurse)."""
    found = []
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            kind = node.get("type")
            is_string = kind == "string" or (isinstance(kind, list) and "string" in kind)
            if is_string and not any(k in node for k in _BOUNDED_STRING_KEYS):
                found.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def bounded_strings(schema: Any, max_chars: int = MAX_GRAMMAR_STRING_CHARS) -> Any:
    """A copy of ``schema`` whose unbounded ``string`` schemas get ``maxLength``."""
    root: Any = json.loads(json.dumps(schema))
    for node in _unbounded_strings(root):
        node["maxLength"] = max_chars
    return root


def string_bound(schema: Any, max_tokens: int | None) -> int:
    """The ``maxLength`` that lets every unbounded string of ``schema`` reach it and
    the object still close inside ``max_tokens`` (``CHARS_PER_TOKEN_LOW`` x
    ``STRING_SHARE`` of the cap, shared by the strings), within
    [:data:`MIN_GRAMMAR_STRING_CHARS`, :data:`MAX_GRAMMAR_STRING_CHARS`]."""
    if max_tokens is None:
        return MAX_GRAMMAR_STRING_CHARS
    strings = max(1, len(_unbounded_strings(schema)))
    share = int(CHARS_PER_TOKEN_LOW * STRING_SHARE * max_tokens / strings)
    return max(MIN_GRAMMAR_STRING_CHARS, min(MAX_GRAMMAR_STRING_CHARS, share))


def _grammar_format(
    response_format: Mapping[str, Any], max_tokens: int | None = None
) -> dict[str, Any]:
    """``response_format`` as sent: its JSON schema's strings bounded to fit the cap."""
    sent = dict(response_format)
    inner = sent.get("json_schema")
    if isinstance(inner, dict) and isinstance(inner.get("schema"), dict):
        schema = inner["schema"]
        bound = string_bound(schema, max_tokens)
        sent["json_schema"] = {**inner, "schema": bounded_strings(schema, bound)}
    return sent


def _structured_spec(response_format: Mapping[str, Any]) -> StructuredSpec:
    kind = response_format.get("type")
    if kind == "json_object":
        return StructuredSpec(schema=None)
    if kind == "json_schema":
        inner = response_format.get("json_schema")
        schema = inner.get("schema") if isinstance(inner, dict) else None
        if not isinstance(schema, dict):
            raise ConfigurationError(
                f"response_format.json_schema.schema must be a JSON schema object, got {schema!r}"
            )
        return StructuredSpec(schema=schema)
    raise ConfigurationError(
        f"response_format.type must be 'json_schema' or 'json_object', got {kind!r}"
    )


def _with_instructions(messages: list[dict[str, Any]], instructions: str) -> list[dict[str, Any]]:
    """The tools' instructions in the system turn (appended to one already there)."""
    if messages and messages[0].get("role") == "system":
        first = dict(messages[0])
        first["content"] = f"{first.get('content') or ''}\n\n{instructions}".strip()
        return [first, *messages[1:]]
    return [{"role": "system", "content": instructions}, *messages]


def action_message(text: str, shape: CallShape, **fields: Any) -> AIMessage:
    """The winning branch's text as the message a tool-calling model returns."""
    if not shape.actions:
        return AIMessage(content=text, **fields)
    action = parse_action(text)
    content = action.content
    if shape.mode == "constrained" and not action.is_tool_call and not content:
        content = text  # not the envelope (a cut branch, say): keep what it said
    metadata = dict(fields.pop("response_metadata", {}))
    if action.is_tool_call:
        metadata["finish_reason"] = "tool_calls"
    return AIMessage(
        content=content,
        tool_calls=_tool_calls(action),
        invalid_tool_calls=[
            InvalidToolCall(
                name=c.name,
                args=c.arguments,
                id=_call_id(),
                error=c.error,
                type="invalid_tool_call",
            )
            for c in action.invalid_tool_calls
        ],
        response_metadata=metadata,
        **fields,
    )


def action_chunk(message: AIMessage, **fields: Any) -> AIMessageChunk:
    """``message`` as the one chunk a stream yields (tool calls as chunks)."""
    return AIMessageChunk(
        content=message.content,
        tool_call_chunks=[
            ToolCallChunk(
                name=c["name"],
                args=json.dumps(c["args"]),
                id=c["id"],
                index=i,
                type="tool_call_chunk",
            )
            for i, c in enumerate(message.tool_calls)
        ],
        usage_metadata=message.usage_metadata,
        response_metadata=message.response_metadata,
        chunk_position="last",
        **fields,
    )


def _tool_calls(action: Action) -> list[ToolCall]:
    return [
        ToolCall(name=c.name, args=dict(c.arguments), id=_call_id(), type="tool_call")
        for c in action.tool_calls
    ]


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"
