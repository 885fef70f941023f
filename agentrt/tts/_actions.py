"""Actions: a branch's tool calls or final answer, and voting over them.

A branch's text holds its action in one of three forms:

1. a constrained-mode JSON envelope (the server was held to
   :func:`constrained_schema`): ``{"tool_calls": [{"name": ..., "arguments":
   {...}}]}`` or ``{"answer": "..."}``;
2. native tool calls as the pool renders them (Hermes form): optional content,
   then ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` blocks;
3. plain text: a final answer.

:func:`parse_action` reads any of them, never raises, and reads at most
``max_chars`` characters; JSON is depth-checked before it is parsed
(:func:`~agentrt.pool._protocol.json_too_deep`), so hostile nesting cannot
recurse. :class:`ActionSpec` and :class:`StructuredSpec` are answer specs
(:class:`~agentrt.tts._answers.AnswerSpec`), so the executor's votes work on
actions and JSON objects unchanged: equal actions have equal canonical keys
(:func:`canonical_json`), whatever the order of keys, of calls, or ``3.0``
against ``3``.

Constrained mode (a server with structured outputs but no tool parser) is
built here too: the reply schema (:func:`constrained_schema`), the system
prompt text that tells the model the tools (:func:`constrained_instructions`),
and the history turned into plain messages (:func:`constrained_messages`).
:func:`check_tool_definition` refuses tool definitions no grammar can compile.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]

from agentrt.core._errors import ConfigurationError
from agentrt.pool._protocol import MAX_JSON_DEPTH, json_too_deep
from agentrt.tts._answers import (
    DEFAULT_MAX_CHARS,
    MAX_KEY_CHARS,
    Answer,
    AnswerSpec,
    NormalisedString,
)
from agentrt.tts._scorers import Verifier

__all__ = [
    "MAX_SCHEMA_DEPTH",
    "MAX_TOOL_CALLS",
    "Action",
    "ActionSpec",
    "InvalidToolCall",
    "StructuredSpec",
    "ToolCall",
    "action_verifier",
    "canonical_json",
    "check_tool_definition",
    "constrained_instructions",
    "constrained_messages",
    "constrained_schema",
    "parse_action",
]

MAX_TOOL_CALLS = 64
"""Tool calls one reply may hold; more make the reply an invalid tool call."""

MAX_SCHEMA_DEPTH = 32
"""Nesting levels (objects and arrays) a tool's parameter schema may have."""

TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""What a tool name must be (OpenAI's rule); also safe inside a JSON pointer."""

_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_ENVELOPE = re.compile(r'\{\s*+"(tool_calls|answer)"')
# The pool renders a call whose arguments never arrived as `"arguments": }`.
_EMPTY_ARGUMENTS = re.compile(
    r'\{\s*+"name"\s*+:\s*+("(?:[^"\\]++|\\.)*+")\s*+,\s*+"arguments"\s*+:\s*+\}'
)


@dataclass(frozen=True)
class ToolCall:
    """A well-formed tool call: the tool's name and its arguments object."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class InvalidToolCall:
    """A tool call that could not be read: the name when one was found, the raw
    ``arguments`` text (or the whole block), and why it is invalid."""

    name: str | None
    arguments: str
    error: str


@dataclass(frozen=True)
class Action:
    """What a branch does: call tools, or answer with ``content``.

    ``content`` is the reply's text outside its tool calls (the final answer
    when there are none).
    """

    tool_calls: tuple[ToolCall, ...] = ()
    content: str = ""
    invalid_tool_calls: tuple[InvalidToolCall, ...] = ()

    @property
    def is_tool_call(self) -> bool:
        """Whether the branch tried to call a tool (even if a call is invalid)."""
        return bool(self.tool_calls or self.invalid_tool_calls)


# ---------------------------------------------------------------------------
# Canonical JSON


def _normalise(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _normalise(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(item) for item in value]
    return value


def canonical_json(value: Any) -> str:
    """``value`` as compact, key-sorted JSON with integral floats written as
    integers (``3.0`` -> ``3``), so equal objects give equal text."""
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _bounded_key(key: str) -> str:
    """``key`` itself when short; else its head and a digest of all of it, so long
    keys stay short and still compare exactly."""
    if len(key) <= MAX_KEY_CHARS:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{key[: MAX_KEY_CHARS - len(digest) - 1]}#{digest}"


# ---------------------------------------------------------------------------
# Reading actions


class _NotJson(ValueError):
    """Text that is not JSON, or nests too deep to parse safely."""


def _reject_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not JSON")


def _loads(text: str) -> Any:
    if json_too_deep(text):
        raise _NotJson(f"nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise _NotJson(f"not JSON ({exc})") from exc


def _unfence(text: str) -> str:
    """The body of a Markdown code fence around ``text``, else ``text``."""
    if not text.startswith("```"):
        return text
    first_line_end = text.find("\n")
    if first_line_end < 0:
        return text
    body = text[first_line_end + 1 :]
    close = body.rfind("```")
    return (body[:close] if close >= 0 else body).strip()


def _read_call(item: Any, raw: str) -> ToolCall | InvalidToolCall:
    """One call object (``{"name", "arguments"}``); ``raw`` is its text for errors."""
    if not isinstance(item, dict):
        return InvalidToolCall(None, raw, "a tool call must be a JSON object")
    name = item.get("name")
    arguments = item.get("arguments")
    shown = arguments if isinstance(arguments, str) else canonical_json(arguments or {})
    if not isinstance(name, str) or not name:
        return InvalidToolCall(None, shown, f"a tool call needs a name, got {name!r}")
    if arguments is None:
        arguments = {}
    if isinstance(arguments, str):
        try:
            arguments = _loads(arguments)
        except _NotJson as exc:
            return InvalidToolCall(name, shown, f"arguments are {exc}")
    if not isinstance(arguments, dict):
        return InvalidToolCall(name, shown, "arguments must be a JSON object")
    return ToolCall(name, arguments)


def _split(
    found: Sequence[ToolCall | InvalidToolCall],
) -> tuple[tuple[ToolCall, ...], tuple[InvalidToolCall, ...]]:
    calls = tuple(c for c in found if isinstance(c, ToolCall))
    invalid = tuple(c for c in found if isinstance(c, InvalidToolCall))
    return calls, invalid


def _too_many(count: int) -> InvalidToolCall:
    return InvalidToolCall(None, "", f"more than {MAX_TOOL_CALLS} tool calls ({count})")


def _parse_envelope(body: str, kind: str, text: str) -> Action:
    try:
        document = _loads(body)
    except _NotJson as exc:
        if kind == "tool_calls":
            return Action(invalid_tool_calls=(InvalidToolCall(None, body, f"reply is {exc}"),))
        return Action(content=text.strip())  # a broken answer envelope is plain text
    if not isinstance(document, dict):  # unreachable: the envelope starts with "{"
        return Action(content=text.strip())
    answer = document.get("answer")
    content = (
        "" if answer is None else answer if isinstance(answer, str) else canonical_json(answer)
    )
    if "tool_calls" not in document:
        return Action(content=content)
    items = document["tool_calls"]
    if not isinstance(items, list) or not items:
        error = "tool_calls must be a non-empty list"
        return Action(
            content=content,
            invalid_tool_calls=(InvalidToolCall(None, canonical_json(items), error),),
        )
    if len(items) > MAX_TOOL_CALLS:
        return Action(content=content, invalid_tool_calls=(_too_many(len(items)),))
    calls, invalid = _split([_read_call(item, canonical_json(item)) for item in items])
    return Action(tool_calls=calls, content=content, invalid_tool_calls=invalid)


def _read_block(body: str, terminated: bool) -> ToolCall | InvalidToolCall:
    stripped = body.strip()
    try:
        document = _loads(stripped)
    except _NotJson as exc:
        empty = _EMPTY_ARGUMENTS.fullmatch(stripped)
        if empty is not None:
            return _read_call({"name": json.loads(empty.group(1)), "arguments": {}}, stripped)
        where = "" if terminated else f" (no {_CLOSE})"
        return InvalidToolCall(None, stripped, f"tool call is {exc}{where}")
    return _read_call(document, stripped)


def _parse_hermes(text: str, first: int) -> Action:
    found: list[ToolCall | InvalidToolCall] = []
    position = first
    while position >= 0:
        if len(found) == MAX_TOOL_CALLS:
            found.append(_too_many(text.count(_OPEN, first)))
            break
        start = position + len(_OPEN)
        end = text.find(_CLOSE, start)
        limit = end if end >= 0 else len(text)
        reopened = text.find(_OPEN, start, limit)
        if reopened >= 0:  # a block opened again before this one closed
            found.append(_read_block(text[start:reopened], terminated=False))
            position = reopened
        elif end < 0:
            found.append(_read_block(text[start:], terminated=False))
            position = -1
        else:
            found.append(_read_block(text[start:end], terminated=True))
            position = text.find(_OPEN, end + len(_CLOSE))
    calls, invalid = _split(found)
    return Action(tool_calls=calls, content=text[:first].strip(), invalid_tool_calls=invalid)


def parse_action(text: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> Action:
    """The action in a branch's ``text`` (any of the three forms); never raises.

    Broken tool calls (partial JSON, a missing name, arguments that are not an
    object) become :class:`InvalidToolCall`. A reply longer than ``max_chars``
    is not parsed: it is content, with one invalid tool call when it looks like
    a tool call.
    """
    stripped = _unfence(text.strip())
    envelope = _ENVELOPE.match(stripped)
    if len(text) > max_chars:
        looks_like_call = (envelope is not None and envelope.group(1) == "tool_calls") or (
            _OPEN in text
        )
        if not looks_like_call:
            return Action(content=text.strip())
        error = f"reply is longer than {max_chars} characters"
        return Action(content=text.strip(), invalid_tool_calls=(InvalidToolCall(None, "", error),))
    if envelope is not None:
        return _parse_envelope(stripped, envelope.group(1), text)
    first = text.find(_OPEN)
    if first >= 0:
        return _parse_hermes(text, first)
    return Action(content=text.strip())


# ---------------------------------------------------------------------------
# JSON schemas: walking, checking, closing

_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_VALUES = (
    "items",
    "additionalItems",
    "additionalProperties",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
)
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_BOUNDS = (
    ("minimum", "maximum"),
    ("minLength", "maxLength"),
    ("minItems", "maxItems"),
    ("minProperties", "maxProperties"),
    ("minContains", "maxContains"),
)


def _subschemas(schema: dict[str, Any], path: str) -> Iterator[tuple[dict[str, Any], str]]:
    """The schemas directly inside ``schema`` (not data such as ``enum`` or ``default``)."""
    for key, value in schema.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            for name, item in value.items():
                if isinstance(item, dict):
                    yield item, f"{path}.{key}.{name}"
        elif key in _SCHEMA_VALUES and isinstance(value, dict):
            yield value, f"{path}.{key}"
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    yield item, f"{path}.{key}[{i}]"


def _walk(schema: dict[str, Any], path: str) -> Iterator[tuple[dict[str, Any], str]]:
    stack = [(schema, path)]
    while stack:
        node, where = stack.pop()
        yield node, where
        stack.extend(_subschemas(node, where))


def _depth(value: Any) -> int:
    """Nesting levels of dicts and lists in ``value``; iterative, stops past the limit."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if not isinstance(node, dict | list):
            continue
        deepest = max(deepest, level)
        if deepest > MAX_SCHEMA_DEPTH:
            return deepest
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, level + 1) for child in children)
    return deepest


def _pointer_target(root: dict[str, Any], ref: str) -> bool:
    """Whether the local reference ``ref`` (``#`` or ``#/a/b``) names a schema in ``root``."""
    node: Any = root
    for token in ref[2:].split("/") if ref != "#" else ():
        part = unquote(token).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return isinstance(node, dict | bool)


def _check_schema(schema: Any, where: str) -> None:
    """Refuse a schema grammars cannot compile: too deep, invalid, a ``$ref`` that is
    not local or names nothing, bounds that admit no value."""
    if not isinstance(schema, dict):
        raise ConfigurationError(f"{where} must be a JSON-schema object, got {schema!r:.200}")
    depth = _depth(schema)
    if depth > MAX_SCHEMA_DEPTH:
        raise ConfigurationError(
            f"{where} nests deeper than {MAX_SCHEMA_DEPTH} levels (at least {depth})"
        )
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        at = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.path)
        raise ConfigurationError(f"{where}{at} is not a valid JSON schema: {exc.message}") from exc
    for node, path in _walk(schema, where):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref != "#" and not ref.startswith("#/"):
                raise ConfigurationError(
                    f"{path}.$ref must be a local reference ('#/...'), got {ref!r}"
                )
            if not _pointer_target(schema, ref):
                raise ConfigurationError(f"{path}.$ref names nothing in the schema: {ref!r}")
        for low, high in _BOUNDS:
            lower, upper = _number(node.get(low)), _number(node.get(high))
            if lower is not None and upper is not None and lower > upper:
                raise ConfigurationError(f"{path} admits no value: {low} {lower} > {high} {upper}")


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


_OPEN_ENDED = (
    "additionalProperties",
    "unevaluatedProperties",
    "patternProperties",
    "allOf",
    "anyOf",
    "oneOf",
    "$ref",
    "if",
    "dependentSchemas",
)


def _closed(schema: dict[str, Any], *, close: bool = True) -> dict[str, Any]:
    """A copy of ``schema`` where object schemas that list ``properties`` and say
    nothing else about other keys get ``additionalProperties: false``, so a
    grammar generates only the declared arguments. Members of ``allOf`` (and
    schemas combined with others) are left open: closing them would refuse
    the properties the other parts declare. Depth was checked (<= 32)."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {n: _closed(v) if isinstance(v, dict) else v for n, v in value.items()}
        elif key in _SCHEMA_VALUES and isinstance(value, dict):
            out[key] = _closed(value)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            member_close = key != "allOf"
            out[key] = [_closed(v, close=member_close) if isinstance(v, dict) else v for v in value]
        else:
            out[key] = value
    if (
        close
        and isinstance(schema.get("properties"), dict)
        and not any(key in schema for key in _OPEN_ENDED)
    ):
        out["additionalProperties"] = False
    return out


def _rebased(schema: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A copy of ``schema`` with every ``$ref`` (all local, as checked) moved under
    ``prefix``, a JSON pointer: ``#/$defs/x`` -> ``<prefix>/$defs/x``."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {
                n: _rebased(v, prefix) if isinstance(v, dict) else v for n, v in value.items()
            }
        elif key in _SCHEMA_VALUES and isinstance(value, dict):
            out[key] = _rebased(value, prefix)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_rebased(v, prefix) if isinstance(v, dict) else v for v in value]
        elif key == "$ref" and isinstance(value, str):
            out[key] = prefix + value[1:]
        else:
            out[key] = value
    return out


def _has_ref(schema: dict[str, Any]) -> bool:
    return any(isinstance(node.get("$ref"), str) for node, _ in _walk(schema, ""))


# ---------------------------------------------------------------------------
# Tool definitions


def _parameters_of(function: dict[str, Any]) -> Any:
    """A function's parameters schema; missing, ``null`` or ``{}`` mean no arguments."""
    parameters = function.get("parameters")
    if parameters is None or parameters == {}:
        return {"type": "object", "properties": {}}
    return parameters


def check_tool_definition(tool: Any, index: int) -> None:
    """Raise :class:`ConfigurationError` naming the tool and the field when the
    OpenAI tool definition ``tools[index]`` is malformed or no grammar could
    compile its parameters (see :func:`_check_schema`)."""
    where = f"tools[{index}]"
    if not isinstance(tool, dict):
        raise ConfigurationError(f"{where} must be an object, got {tool!r:.200}")
    if tool.get("type") != "function":
        raise ConfigurationError(f"{where}.type must be 'function', got {tool.get('type')!r}")
    function = tool.get("function")
    if not isinstance(function, dict):
        raise ConfigurationError(f"{where}.function must be an object, got {function!r:.200}")
    name = function.get("name")
    if not isinstance(name, str) or TOOL_NAME.fullmatch(name) is None:
        raise ConfigurationError(
            f"{where}.function.name must match ^[A-Za-z0-9_-]{{1,64}}$, got {name!r:.100}"
        )
    where = f"{where} ({name!r})"
    description = function.get("description")
    if description is not None and not isinstance(description, str):
        raise ConfigurationError(
            f"{where}.function.description must be a string, got {description!r:.100}"
        )
    parameters = _parameters_of(function)
    if not isinstance(parameters, dict) or parameters.get("type") != "object":
        raise ConfigurationError(
            f"{where}.function.parameters must be an object schema "
            f'({{"type": "object", ...}}), got {parameters!r:.200}'
        )
    _check_schema(parameters, f"{where}.function.parameters")


def _tool_table(tools: Sequence[dict[str, Any]]) -> dict[str, tuple[dict[str, Any], str]]:
    """Checked tools: name -> (parameters, description), in order; names are unique."""
    table: dict[str, tuple[dict[str, Any], str]] = {}
    for index, tool in enumerate(tools):
        check_tool_definition(tool, index)
        function = tool["function"]
        name = function["name"]
        if name in table:
            raise ConfigurationError(f"tools[{index}].function.name {name!r} is defined twice")
        table[name] = (
            _parameters_of(function),
            function.get("description") or "",
        )
    return table


def _chosen(table: Mapping[str, Any], tool_choice: str | None) -> tuple[list[str], bool]:
    """The tools the reply may call and whether it may answer instead."""
    if tool_choice in (None, "auto"):
        return list(table), True
    if tool_choice == "none":
        return [], True
    if tool_choice == "required":
        if not table:
            raise ConfigurationError("tool_choice 'required' needs at least one tool, got none")
        return list(table), False
    if isinstance(tool_choice, str) and tool_choice in table:
        return [tool_choice], False
    raise ConfigurationError(
        "tool_choice must be 'auto', 'required', 'none' or the name of a tool "
        f"({sorted(table)}), got {tool_choice!r}"
    )


def _one_of(options: list[dict[str, Any]]) -> dict[str, Any]:
    return options[0] if len(options) == 1 else {"anyOf": options}


def _answer_object() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }


def constrained_schema(
    tools: Sequence[dict[str, Any]], tool_choice: str | None, *, max_calls: int = 4
) -> dict[str, Any]:
    """The JSON schema of a whole reply in constrained mode.

    ``{"tool_calls": [...]}`` (1 to ``max_calls`` calls of the allowed tools,
    arguments held to each tool's parameters) or ``{"answer": "..."}``, as
    ``tool_choice`` allows: ``"auto"``/``None`` either, ``"required"`` or a
    tool's name only calls, ``"none"`` only the answer. A tool whose parameters
    use ``$ref`` has them copied to ``$defs`` under its name and its references
    rebased there, so they resolve from the root of this schema.
    """
    if max_calls < 1:
        raise ConfigurationError(f"constrained_schema max_calls must be >= 1, got {max_calls}")
    table = _tool_table(tools)
    names, may_answer = _chosen(table, tool_choice)
    definitions: dict[str, Any] = {}
    calls: list[dict[str, Any]] = []
    for name in names:
        parameters = _closed(table[name][0])
        if _has_ref(parameters):
            parameters = _rebased(parameters, f"#/$defs/{name}")
            definitions[name] = parameters
        calls.append(
            {
                "type": "object",
                "properties": {"name": {"const": name}, "arguments": parameters},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    options: list[dict[str, Any]] = []
    if calls:
        options.append(
            {
                "type": "object",
                "properties": {
                    "tool_calls": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": max_calls,
                        "items": _one_of(calls),
                    }
                },
                "required": ["tool_calls"],
                "additionalProperties": False,
            }
        )
    if may_answer:
        options.append(_answer_object())
    schema = _one_of(options)
    if definitions:
        schema["$defs"] = definitions
    return schema


def _type_label(schema: Any, *, nested: bool = False) -> str:
    """A short type for a signature: ``integer``, ``string|null``, ``"a"|"b"``, ``integer[]``."""
    if not isinstance(schema, dict):
        return "any"
    options = schema.get("anyOf", schema.get("oneOf"))
    if isinstance(options, list) and options and not nested:
        return "|".join(_type_label(option, nested=True) for option in options[:8])
    if isinstance(schema.get("enum"), list):
        return "|".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"][:8])
    if "const" in schema:
        return json.dumps(schema["const"], ensure_ascii=False)
    kind = schema.get("type")
    if isinstance(kind, list):
        return "|".join(str(k) for k in kind)
    if kind == "array":
        items = schema.get("items")
        inner = items.get("type") if isinstance(items, dict) else None
        return f"{inner}[]" if isinstance(inner, str) else "array"
    if isinstance(kind, str):
        return kind
    return "object" if "$ref" in schema or "properties" in schema else "any"


def _signature(name: str, parameters: dict[str, Any]) -> str:
    properties = parameters.get("properties")
    required = parameters.get("required")
    needed = set(required) if isinstance(required, list) else set()
    arguments = []
    if isinstance(properties, dict):
        for argument, schema in properties.items():
            mark = "" if argument in needed else "?"
            arguments.append(f"{argument}{mark}: {_type_label(schema)}")
    return f"{name}({', '.join(arguments)})"


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().split("\n", 1)[0].strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


_CALL_FORMAT = '{"tool_calls": [{"name": "<tool>", "arguments": {<arguments>}}]}'
_ANSWER_FORMAT = '{"answer": "<your answer>"}'


def constrained_instructions(tools: Sequence[dict[str, Any]], tool_choice: str | None) -> str:
    """System-prompt text for constrained mode: the tools the reply may call
    (one line each: signature and description) and the reply format. Short, for
    small models."""
    table = _tool_table(tools)
    names, may_answer = _chosen(table, tool_choice)
    lines: list[str] = []
    if names:
        lines.append("You can call these tools:")
        for name in names:
            parameters, description = table[name]
            summary = _first_line(description)
            lines.append(f"- {_signature(name, parameters)}" + (f": {summary}" if summary else ""))
        lines.append("")
    lines.append("Reply with one JSON object and nothing else.")
    if names and may_answer:
        lines.append(f"To call tools: {_CALL_FORMAT}")
        lines.append(f"To give the final answer: {_ANSWER_FORMAT}")
    elif tool_choice == "required":
        lines.append(f"You must call a tool: {_CALL_FORMAT}")
    elif names:
        named = _CALL_FORMAT.replace("<tool>", names[0])
        lines.append(f"You must call the tool {names[0]}: {named}")
    else:
        lines.append(f"Give the final answer: {_ANSWER_FORMAT}")
    return "\n".join(lines)


def _message_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for i, part in enumerate(content):
            if isinstance(part, str):
                parts.append(part)
            elif (
                isinstance(part, dict)
                and part.get("type") == "text"
                and isinstance(part.get("text"), str)
            ):
                parts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise ConfigurationError(
                    f"{where}.content[{i}] must be text in constrained mode, got {kind!r}"
                )
        return "".join(parts)
    if isinstance(content, dict):
        return json.dumps(content, ensure_ascii=False)
    raise ConfigurationError(f"{where}.content must be text, got {type(content).__name__}")


def _envelope_call(call: Any, where: str) -> tuple[str | None, str, dict[str, Any]]:
    """``(id, name, {"name", "arguments"})`` of one OpenAI assistant tool call."""
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise ConfigurationError(
            f"{where} must be {{'function': {{'name', 'arguments'}}}}, got {call!r:.200}"
        )
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            parsed = _loads(arguments) if arguments.strip() else {}
        except _NotJson:
            parsed = arguments  # shown as the model wrote it
        arguments = parsed
    elif arguments is None:
        arguments = {}
    call_id = call.get("id")
    return (
        call_id if isinstance(call_id, str) else None,
        function["name"],
        {"name": function["name"], "arguments": arguments},
    )


def constrained_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """OpenAI-format ``messages`` as plain system/user/assistant text messages
    for a model without native tool calling (constrained mode).

    An assistant tool-call message becomes its JSON envelope
    (``{"tool_calls": [...]}``; any text beside the calls is dropped, as the
    reply format has no place for it) and a plain assistant reply becomes
    ``{"answer": ...}``, so the history shows the format the model must reply
    in. A ``tool`` message becomes a user message ``Tool <name> returned:
    <content>``, the name looked up from the call id (else the message's
    ``name``). ``developer`` messages are system messages.
    """
    names_by_id: dict[str, str] = {}
    out: list[dict[str, str]] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, Mapping):
            raise ConfigurationError(f"{where} must be an object, got {type(message).__name__}")
        role = message.get("role")
        if role in ("system", "developer", "user"):
            text = _message_text(message.get("content"), where)
            out.append({"role": "user" if role == "user" else "system", "content": text})
        elif role == "assistant":
            calls = message.get("tool_calls") or []
            if not isinstance(calls, list):
                raise ConfigurationError(f"{where}.tool_calls must be a list, got {calls!r:.200}")
            if calls:
                envelope = []
                for i, call in enumerate(calls):
                    call_id, name, item = _envelope_call(call, f"{where}.tool_calls[{i}]")
                    if call_id is not None:
                        names_by_id[call_id] = name
                    envelope.append(item)
                content = json.dumps({"tool_calls": envelope}, ensure_ascii=False)
            else:
                answer = _message_text(message.get("content"), where)
                content = json.dumps({"answer": answer}, ensure_ascii=False)
            out.append({"role": "assistant", "content": content})
        elif role == "tool":
            call_id = message.get("tool_call_id")
            tool_name = names_by_id.get(call_id) if isinstance(call_id, str) else None
            if tool_name is None:
                given = message.get("name")
                tool_name = given if isinstance(given, str) and given else "tool"
            text = _message_text(message.get("content"), where)
            out.append({"role": "user", "content": f"Tool {tool_name} returned: {text}"})
        else:
            raise ConfigurationError(
                f"{where}.role must be system, developer, user, assistant or tool, got {role!r}"
            )
    return out


# ---------------------------------------------------------------------------
# Answer specs over actions and objects


def _validators(tools: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    validators: dict[str, Any] = {}
    for name, parameters in tools.items():
        if not isinstance(name, str) or TOOL_NAME.fullmatch(name) is None:
            raise ConfigurationError(
                f"ActionSpec.tools key must be a tool name matching ^[A-Za-z0-9_-]{{1,64}}$, "
                f"got {name!r:.100}"
            )
        _check_schema(parameters, f"ActionSpec.tools[{name!r}]")
        validators[name] = Draft202012Validator(parameters)
    return validators


def _is_valid(validator: Any, instance: Any) -> bool:
    try:
        return bool(validator.is_valid(instance))
    except RecursionError:  # a schema that refers to itself without consuming input
        return False


@dataclass(frozen=True)
class ActionSpec:
    """Votes on actions: branches agree when they call the same tools with the
    same arguments (in any order), or give the same final answer.

    ``tools`` maps each allowed tool to the JSON schema of its parameters (empty:
    any tool). A call naming an unknown tool casts no vote; with ``validate``,
    neither does one whose arguments break the tool's schema, nor a branch with
    an invalid tool call. A final answer's content is read by ``answer``. Keys:
    ``call:[[name,arguments],...]`` (sorted, canonical JSON) or
    ``answer:<inner key>``; ``Answer.text`` is the branch's whole text, for
    :func:`parse_action` to read again.
    """

    tools: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    answer: AnswerSpec = field(default_factory=NormalisedString)
    validate: bool = True
    max_chars: int = DEFAULT_MAX_CHARS
    from_partial: bool = False
    name: str = "action"
    _validators: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_chars < 1:
            raise ConfigurationError(f"ActionSpec.max_chars must be >= 1, got {self.max_chars}")
        if not isinstance(self.answer, AnswerSpec):
            raise ConfigurationError(
                f"ActionSpec.answer must be an answer spec, got {self.answer!r}"
            )
        object.__setattr__(self, "_validators", _validators(self.tools))

    @classmethod
    def for_tools(
        cls,
        tools: Sequence[dict[str, Any]],
        *,
        answer: AnswerSpec | None = None,
        validate: bool = True,
    ) -> ActionSpec:
        """The spec for OpenAI tool definitions (each checked by :func:`check_tool_definition`)."""
        table = _tool_table(tools)
        return cls(
            tools={name: parameters for name, (parameters, _) in table.items()},
            answer=NormalisedString() if answer is None else answer,
            validate=validate,
        )

    def _allowed(self, call: ToolCall) -> bool:
        if not self.tools:
            return True
        validator = self._validators.get(call.name)
        if validator is None:
            return False
        return not self.validate or _is_valid(validator, call.arguments)

    def _vote(self, text: str) -> tuple[Action, str] | None:
        action = parse_action(text, max_chars=self.max_chars)
        if action.invalid_tool_calls:
            return None
        if action.tool_calls:
            if not all(self._allowed(call) for call in action.tool_calls):
                return None
            parts = sorted(canonical_json([c.name, c.arguments]) for c in action.tool_calls)
            return action, "call:[" + ",".join(parts) + "]"
        inner = self.answer.extract(action.content)
        if inner is None:
            return None
        return action, "answer:" + inner.key

    def read(self, text: str) -> Action | None:
        """The branch's action when it casts a vote, else ``None``."""
        vote = self._vote(text)
        return None if vote is None else vote[0]

    def extract(self, text: str) -> Answer | None:
        vote = self._vote(text)
        if vote is None:
            return None
        return Answer(key=_bounded_key(vote[1]), text=text)


def _first_object_span(text: str) -> str | None:
    """The text from the first ``{`` to the ``}`` that closes it (strings respected)."""
    start = text.find("{")
    if start < 0:
        return None
    depth = 0
    in_string = escaped = False
    for i in range(start, len(text)):
        char = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return None


def _fenced(text: str) -> str | None:
    """The body of the first Markdown code fence in ``text``."""
    start = text.find("```")
    if start < 0:
        return None
    body_start = text.find("\n", start)
    if body_start < 0:
        return None
    end = text.find("```", body_start)
    return text[body_start + 1 : end if end >= 0 else len(text)]


@dataclass(frozen=True)
class StructuredSpec:
    """Votes on a JSON object: the whole reply, a fenced block, or the first
    ``{...}`` in it, valid against ``schema`` when one is given (``None``: any
    object, for JSON mode). With ``fields``, only those top-level fields vote
    (an object with none of them casts no vote). The key is the canonical JSON
    of the object (or of those fields); ``Answer.text`` is the whole object's."""

    schema: dict[str, Any] | None = None
    fields: tuple[str, ...] = ()
    max_chars: int = DEFAULT_MAX_CHARS
    from_partial: bool = False
    name: str = "structured"
    _validator: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_chars < 1:
            raise ConfigurationError(f"StructuredSpec.max_chars must be >= 1, got {self.max_chars}")
        if isinstance(self.fields, str) or any(
            not isinstance(f, str) or not f for f in self.fields
        ):
            raise ConfigurationError(
                f"StructuredSpec.fields must be a tuple of field names, got {self.fields!r}"
            )
        validator = None
        if self.schema is not None:
            _check_schema(self.schema, "StructuredSpec.schema")
            validator = Draft202012Validator(self.schema)
        object.__setattr__(self, "_validator", validator)

    def read(self, text: str) -> dict[str, Any] | None:
        """The valid JSON object in ``text``, else ``None``."""
        text = text[-self.max_chars :] if len(text) > self.max_chars else text
        stripped = text.strip()
        for candidate in (stripped, _fenced(stripped), _first_object_span(stripped)):
            if candidate is None or not candidate.strip().startswith("{"):
                continue
            try:
                document = _loads(candidate.strip())
            except _NotJson:
                continue
            if not isinstance(document, dict):
                continue
            if self._validator is not None and not _is_valid(self._validator, document):
                return None
            return document
        return None

    def extract(self, text: str) -> Answer | None:
        document = self.read(text)
        if document is None:
            return None
        voted: Any = document
        if self.fields:
            voted = {f: document[f] for f in self.fields if f in document}
            if not voted:
                return None
        return Answer(key=_bounded_key(canonical_json(voted)), text=canonical_json(document))


def action_verifier(
    spec: ActionSpec | StructuredSpec, check: Callable[[Any], bool | float] | None = None
) -> Verifier:
    """A verifier for best-of-N (:class:`~agentrt.tts._scorers.VerifierScorer`):
    1.0 when the text holds a valid action (:class:`Action`) or object (a dict)
    for ``spec`` and ``check`` of it passes, 0.0 otherwise; a float from
    ``check`` is the score itself."""

    def verify(prompt: str, text: str) -> float:
        parsed: Any = spec.read(text)
        if parsed is None:
            return 0.0
        if check is None:
            return 1.0
        verdict = check(parsed)
        if isinstance(verdict, bool):
            return 1.0 if verdict else 0.0
        return float(verdict)

    return verify
