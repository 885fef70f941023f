"""TTSChatModel's tool calling and structured output, against the in-process vLLM
double: what each mode sends, how branches vote on actions, what comes back.
The real server is exercised by tests/integration/test_tools.py and the
langchain-tests standard suites."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from agentrt.core._errors import ConfigurationError
from agentrt.langgraph import Runtime, TTSChatModel
from agentrt.langgraph._tool_calling import call_shape, normalise_tool_choice, resolve_mode
from agentrt.pool import EndpointPool, EndpointSpec
from agentrt.tts import TTSConfig
from tests.unit.vllm_double import FakeCluster, FakeVLLM, sse, usage_chunk


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def lookup(name: str) -> str:
    """Look a city up."""
    return name


class Answer(BaseModel):
    value: int
    unit: str


class AnswerDict(TypedDict):
    value: int


def _text_chunks(texts: list[str]) -> list[bytes]:
    """One branch per text, each sent in two halves, then usage and DONE."""
    out: list[bytes] = []
    halves = [(t[: len(t) // 2], t[len(t) // 2 :]) for t in texts]
    for i, (first, _) in enumerate(halves):
        out.append(sse({"choices": [{"index": i, "delta": {"content": first},
                                     "finish_reason": None, "token_ids": [1]}]}))  # fmt: skip
    for i, (_, second) in enumerate(halves):
        out.append(sse({"choices": [{"index": i, "delta": {"content": second},
                                     "finish_reason": "stop", "token_ids": [1]}]}))  # fmt: skip
    out += [sse(usage_chunk(20, 4 * len(texts))), sse("[DONE]")]
    return out


def _native_chunks(calls: list[tuple[str, str]]) -> list[bytes]:
    """One branch per (name, arguments JSON), streamed as vLLM's parser does."""
    out: list[bytes] = []
    for i, (name, _) in enumerate(calls):
        out.append(sse({"choices": [{"index": i, "delta": {"content": None, "tool_calls": [
            {"id": f"chatcmpl-tool-{i}", "type": "function", "index": 0,
             "function": {"name": name}}]}, "finish_reason": None}]}))  # fmt: skip
    for i, (_, arguments) in enumerate(calls):
        out.append(sse({"choices": [{"index": i, "delta": {"content": None, "tool_calls": [
            {"index": 0, "function": {"arguments": arguments}}]},
            "finish_reason": "tool_calls", "token_ids": [1, 2]}]}))  # fmt: skip
    out += [sse(usage_chunk(20, 4 * len(calls))), sse("[DONE]")]
    return out


FIXED = TTSConfig(strategy="majority", n=3, max_tokens=64, temperature=0.8)


def _model(server: FakeVLLM, endpoint: str = "constrained", **fields: Any) -> TTSChatModel:
    cluster = FakeCluster(a=server)
    pool = EndpointPool(
        [EndpointSpec(url=cluster.url("a"), tool_calling=endpoint)],  # type: ignore[arg-type]
        transport=cluster.transport,
        health_interval_s=0,
    )
    return TTSChatModel(runtime=Runtime(pool=pool), config=FIXED, slice_s=5.0, **fields)


_OPENED: list[EndpointPool] = []


async def _held(model: TTSChatModel) -> None:
    """Open the model's pool for the test (closed after it by ``_close_pools``)."""
    assert model.runtime is not None
    _OPENED.append(await model.runtime.pool.__aenter__())


@pytest.fixture(autouse=True)
async def _close_pools() -> AsyncIterator[None]:
    yield
    while _OPENED:
        await _OPENED.pop().aclose()


async def test_constrained_branches_vote_on_the_call_and_it_comes_back_parsed() -> None:
    server = FakeVLLM(chunks=_text_chunks([
        '{"tool_calls": [{"name": "add", "arguments": {"a": 6, "b": 7}}]}',
        '{"tool_calls": [{"name": "add", "arguments": {"b": 7, "a": 6}}]}',
        '{"answer": "13"}',
    ]))  # fmt: skip
    model = _model(server)
    await _held(model)
    reply = await model.bind_tools([add, lookup]).ainvoke("What is 6 plus 7?")
    assert isinstance(reply, AIMessage)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("add", {"a": 6, "b": 7})]
    assert reply.tool_calls[0]["id"]
    assert reply.response_metadata["finish_reason"] == "tool_calls"
    votes = reply.response_metadata["agentrt"]["votes"]
    assert votes == {'call:[["add",{"a":6,"b":7}]]': 2.0}  # argument order does not split
    body = server.requests[0]
    assert "tools" not in body  # constrained: the tools are in the prompt
    schema = body["response_format"]["json_schema"]["schema"]
    assert {"tool_calls", "answer"} <= set(json.dumps(schema).replace('"', " ").split())
    assert "add" in body["messages"][0]["content"] and body["messages"][0]["role"] == "system"


async def test_a_final_answer_wins_when_most_branches_answer() -> None:
    server = FakeVLLM(chunks=_text_chunks(
        ['{"answer": "13"}', '{"answer": " 13 "}', '{"tool_calls": [{"name": "add", '
         '"arguments": {"a": 6, "b": 7}}]}']
    ))  # fmt: skip
    model = _model(server)
    await _held(model)
    reply = await model.bind_tools([add]).ainvoke("What is 6 plus 7?")
    assert reply.tool_calls == [] and str(reply.content).strip() == "13"


async def test_native_mode_passes_tools_through_and_reads_streamed_calls() -> None:
    server = FakeVLLM(chunks=_native_chunks(
        [("add", '{"a": 6, "b": 7}'), ("add", '{"a": 6, "b": 7}'), ("lookup", '{"name": "x"}')]
    ))  # fmt: skip
    model = _model(server, endpoint="native")  # and the model's tool_calling="auto"
    await _held(model)
    reply = await model.bind_tools([add, lookup], tool_choice="any").ainvoke("6 + 7?")
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("add", {"a": 6, "b": 7})]
    body = server.requests[0]
    assert body["tool_choice"] == "required"
    assert [t["function"]["name"] for t in body["tools"]] == ["add", "lookup"]
    assert body["tools"][0]["function"]["strict"] is True  # vLLM holds arguments only then
    assert reply.response_metadata["agentrt"]["tool_calling"] == "native"


async def test_streaming_yields_the_chosen_call_as_tool_call_chunks() -> None:
    server = FakeVLLM(chunks=_text_chunks(
        ['{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}'] * 3
    ))  # fmt: skip
    model = _model(server)
    await _held(model)
    chunks = [c async for c in model.bind_tools([add]).astream("1 + 2?")]
    assert len(chunks) == 1 and isinstance(chunks[0], AIMessageChunk)
    assert chunks[0].tool_calls[0]["args"] == {"a": 1, "b": 2}


async def test_tool_history_reaches_a_constrained_server_as_plain_turns() -> None:
    server = FakeVLLM(chunks=_text_chunks(['{"answer": "13"}'] * 3))
    model = _model(server)
    await _held(model)
    call = {"name": "add", "args": {"a": 6, "b": 7}, "id": "call_1", "type": "tool_call"}
    history = [
        HumanMessage("What is 6 plus 7?"),
        AIMessage(content="", tool_calls=[call]),  # type: ignore[list-item]
        ToolMessage(content="13", tool_call_id="call_1", name="add"),
    ]
    reply = await model.bind_tools([add]).ainvoke(history)
    assert reply.content == "13"
    roles = [m["role"] for m in server.requests[0]["messages"]]
    assert "tool" not in roles and roles[0] == "system"
    assert any("13" in str(m["content"]) for m in server.requests[0]["messages"][1:])


@pytest.mark.parametrize("schema", [Answer, AnswerDict])
async def test_structured_output_votes_on_the_object(schema: type) -> None:
    objects = [
        '{"value": 3, "unit": "m"}',
        '{"unit": "m", "value": 3.0}',
        '{"value": 4, "unit": "m"}',
    ]
    server = FakeVLLM(chunks=_text_chunks(objects))
    model = _model(server)
    await _held(model)
    out = await model.with_structured_output(schema).ainvoke("How long?")
    value = out.value if isinstance(out, Answer) else out["value"]
    assert value == 3
    assert server.requests[0]["response_format"]["type"] == "json_schema"


async def test_structured_output_with_raw_and_json_mode() -> None:
    server = FakeVLLM(chunks=_text_chunks(['{"value": 3, "unit": "m"}'] * 3))
    model = _model(server)
    await _held(model)
    out = await model.with_structured_output(Answer, include_raw=True).ainvoke("How long?")
    assert isinstance(out["raw"], AIMessage) and out["parsed"] == Answer(value=3, unit="m")
    assert out["parsing_error"] is None
    loose = await model.with_structured_output(None, method="json_mode").ainvoke("JSON?")  # type: ignore[arg-type]
    assert loose == {"value": 3, "unit": "m"}
    assert server.requests[-1]["response_format"] == {"type": "json_object"}


async def test_function_calling_method_forces_the_schema_tool() -> None:
    server = FakeVLLM(chunks=_text_chunks(
        ['{"tool_calls": [{"name": "Answer", "arguments": {"value": 3, "unit": "m"}}]}'] * 3
    ))  # fmt: skip
    model = _model(server)
    await _held(model)
    out = await model.with_structured_output(Answer, method="function_calling").ainvoke("?")
    assert out == Answer(value=3, unit="m")
    schema = json.dumps(server.requests[0]["response_format"]["json_schema"]["schema"])
    assert '"answer"' not in schema  # a named choice admits only that tool's call


def test_bad_tool_input_is_named() -> None:
    model = TTSChatModel(endpoints=[EndpointSpec(url="http://127.0.0.1:9")])
    with pytest.raises(ConfigurationError, match="unknown tool 'multiply'"):
        model.bind_tools([add], tool_choice="multiply")
    with pytest.raises(ConfigurationError, match="method"):
        model.with_structured_output(Answer, method="xml")  # type: ignore[arg-type]
    assert normalise_tool_choice("any", ["add"]) == "required"
    named = {"type": "function", "function": {"name": "add"}}
    assert normalise_tool_choice(named, ["add"]) == "add"


def test_modes_follow_the_endpoints() -> None:
    native = EndpointSpec(url="http://a:1", tool_calling="native")
    constrained = EndpointSpec(url="http://b:1")
    unable = EndpointSpec(url="http://c:1", tool_calling="none")
    assert resolve_mode("auto", [native], "tools") == "native"
    assert resolve_mode("auto", [native, constrained], "tools") == "constrained"
    assert resolve_mode("auto", None, "tools") == "constrained"
    with pytest.raises(ConfigurationError, match="tool_calling = 'none'"):
        resolve_mode("auto", [unable], "structured output")
    with pytest.raises(ConfigurationError, match="native"):
        resolve_mode("native", [constrained], "tools")
    with pytest.raises(ConfigurationError, match="tool_calling"):
        resolve_mode("sometimes", [constrained], "tools")  # type: ignore[arg-type]
    shape = call_shape([{"role": "user", "content": "hi"}], answer_spec=None, mode="auto",
                       endpoints=[constrained])  # fmt: skip
    assert shape.output is None and not shape.actions


async def test_a_schema_the_server_refuses_names_the_tools() -> None:
    server = FakeVLLM(chat_statuses=[400] * 8)
    model = _model(server)
    await _held(model)
    with pytest.raises(ConfigurationError, match="add"):
        await model.bind_tools([add]).ainvoke("6 + 7?")


def test_grammar_strings_are_bounded_but_validation_is_the_callers() -> None:
    from agentrt.langgraph._tool_calling import MAX_GRAMMAR_STRING_CHARS, bounded_strings

    schema = {"type": "object", "properties": {
        "a": {"type": "string"}, "b": {"type": "string", "maxLength": 5},
        "c": {"type": "string", "enum": ["x"]}, "d": {"type": ["string", "null"]},
        "e": {"type": "array", "items": {"type": "string"}}}}  # fmt: skip
    bounded = bounded_strings(schema)
    props = bounded["properties"]
    assert props["a"]["maxLength"] == MAX_GRAMMAR_STRING_CHARS
    assert props["b"]["maxLength"] == 5 and "maxLength" not in props["c"]
    assert props["d"]["maxLength"] == props["e"]["items"]["maxLength"]
    assert "maxLength" not in schema["properties"]["a"]  # the caller's schema is not touched
    wanted = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    shape = call_shape([{"role": "user", "content": "?"}], answer_spec=None, mode="auto",
                       endpoints=None, response_format=wanted)  # fmt: skip
    assert shape.output is not None and shape.output.response_format is not None
    sent = shape.output.response_format["json_schema"]["schema"]
    assert sent["properties"]["a"]["maxLength"] == MAX_GRAMMAR_STRING_CHARS


def test_structured_strings_are_bounded_to_fit_the_token_cap() -> None:
    from agentrt.langgraph._tool_calling import (
        MAX_GRAMMAR_STRING_CHARS,
        MIN_GRAMMAR_STRING_CHARS,
        string_bound,
    )

    joke = {"type": "object", "properties": {
        "setup": {"type": "string"}, "punchline": {"type": "string"},
        "rating": {"type": "integer"}, "tag": {"type": "string", "enum": ["pun"]}}}  # fmt: skip
    # Two unbounded strings share 2 chars/token x 60% of a 100-token cap: 60 chars each,
    # ~30 tokens each at worst, so the object closes inside the cap.
    assert string_bound(joke, 100) == 60
    assert string_bound(joke, None) == MAX_GRAMMAR_STRING_CHARS
    assert string_bound(joke, 4000) == MAX_GRAMMAR_STRING_CHARS
    assert string_bound(joke, 5) == MIN_GRAMMAR_STRING_CHARS
    wanted = {"type": "json_schema", "json_schema": {"name": "joke", "schema": joke}}
    shape = call_shape([{"role": "user", "content": "?"}], answer_spec=None, mode="auto",
                       endpoints=None, response_format=wanted, max_tokens=100)  # fmt: skip
    assert shape.output is not None and shape.output.response_format is not None
    sent = shape.output.response_format["json_schema"]["schema"]["properties"]
    assert sent["setup"]["maxLength"] == sent["punchline"]["maxLength"] == 60
    assert "maxLength" not in sent["tag"]
