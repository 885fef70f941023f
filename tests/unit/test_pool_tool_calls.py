"""Tool calling in the pool layer (issue 15, "native" mode): tool-call chunks in the
stream, their Hermes rendering in a branch's text, the request's tool fields, the
endpoint's ``tool_calling`` mode and the local servers' tool flags.

The chunk shapes are vLLM 0.32's (``--tool-call-parser hermes``, SmolLM2-135M): a
call opens with its id, type and name, then its arguments arrive as string pieces
per tool-call index, each chunk carrying ``token_ids``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

import agentrt.pool._local as local
from agentrt.core._errors import ConfigurationError, EndpointConfigError, ProtocolError
from agentrt.core._settings import Settings
from agentrt.pool import ChatRequest, EndpointPool, EndpointSpec, endpoints_from_env
from agentrt.pool._config import endpoints_from_toml
from agentrt.pool._local import TOOL_CHAT_TEMPLATE, TOOL_SERVER_ARGS, LocalPool, ServerRecord
from agentrt.pool._protocol import MAX_TOOL_CALLS, TokenDelta, ToolCallDelta, decode_chunk
from agentrt.pool._stream import TOOL_CALL_CLOSE, BranchRecord, ChatStream, tool_call_open
from tests.unit.vllm_double import FakeCluster, FakeVLLM, sse, token_chunk, usage_chunk

URL = "http://a.test:8000"
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
MUL = {"type": "function", "function": {"name": "mul", "parameters": {"type": "object"}}}
MESSAGES = [{"role": "user", "content": "add 2 and 3"}]


def chunk(index: int, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish, **extra}
    return sse({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [choice]})


def opens(index: int, name: str, call: int = 0) -> bytes:
    """vLLM's first chunk of a call: id, type and name, no arguments."""
    entry = {"id": f"chatcmpl-tool-947{call}", "type": "function", "index": call,
             "function": {"name": name}}  # fmt: skip
    return chunk(index, {"content": None, "tool_calls": [entry]}, token_ids=[1002])


def args(index: int, piece: str, call: int = 0, finish: str | None = None) -> bytes:
    entry = {"index": call, "function": {"arguments": piece}}
    return chunk(index, {"content": None, "tool_calls": [entry]}, finish, token_ids=[7])


def silent(index: int, finish: str | None = None) -> bytes:
    """A step whose tokens the tool parser holds back (``delta: {}``)."""
    return chunk(index, {}, finish, token_ids=[44])


def decode(delta: dict[str, Any], **choice: Any) -> list[Any]:
    data = {"choices": [{"index": 0, "delta": delta, "finish_reason": None, **choice}]}
    return decode_chunk(json.dumps(data), 1.0, URL)


def call_text(name: str, arguments: str) -> str:
    return f'<tool_call>\n{{"name": "{name}", "arguments": {arguments}}}\n</tool_call>'


# -- the SSE parser --------------------------------------------------------------------


def test_the_chunk_that_opens_a_call_is_a_token_delta_with_its_name() -> None:
    entry = {"id": "chatcmpl-tool-947", "type": "function", "index": 0,
             "function": {"name": "add"}}  # fmt: skip
    assert decode({"content": None, "tool_calls": [entry]}, token_ids=[1002]) == [
        TokenDelta(index=0, text="", at=1.0, tokens=1, tool_call=ToolCallDelta(0, "add", ""))
    ]


def test_arguments_arrive_as_string_pieces() -> None:
    entry = {"index": 0, "function": {"arguments": "{"}}
    (delta,) = decode({"content": None, "tool_calls": [entry]})
    assert delta.tool_call == ToolCallDelta(index=0, name=None, arguments="{")
    assert delta.text == "" and delta.tokens == 1  # no token ids: one per chunk, as for text


def test_content_and_several_calls_in_one_chunk_count_its_tokens_once() -> None:
    calls = [
        {"index": 0, "function": {"name": "add", "arguments": '{"a": 1}'}},
        {"index": 1, "function": {"name": "mul", "arguments": ""}},
    ]
    lp = {"content": [{"logprob": -0.5}, {"logprob": -0.25}]}
    text, first, second = decode({"content": "ok ", "tool_calls": calls}, logprobs=lp)
    assert (text.text, text.tokens, text.tool_call) == ("ok ", 2, None)
    assert text.logprobs == (-0.5, -0.25)
    assert first.tool_call == ToolCallDelta(0, "add", '{"a": 1}') and first.tokens == 0
    assert second.tool_call == ToolCallDelta(1, "mul", "") and second.tokens == 0
    assert first.logprobs == second.logprobs == ()


def test_a_tool_call_only_chunk_counts_its_tokens_on_its_first_entry() -> None:
    calls = [{"index": 0, "function": {"arguments": "}"}}, {"index": 1, "function": {"name": "m"}}]
    first, second = decode({"content": None, "tool_calls": calls}, token_ids=[5, 6, 7])
    assert (first.tokens, second.tokens) == (3, 0)
    unnumbered = decode({"tool_calls": calls})
    assert [d.tokens for d in unnumbered] == [1, 0]


@pytest.mark.parametrize("calls", [None, []])
def test_no_tool_calls_reads_as_before(calls: list[Any] | None) -> None:
    assert decode({"content": "7", "tool_calls": calls}) == [TokenDelta(0, "7", 1.0)]
    assert decode({"tool_calls": calls}, token_ids=[44]) == [TokenDelta(0, "", 1.0)]
    assert decode({"tool_calls": calls}) == []


def test_a_finish_after_the_last_argument_piece() -> None:
    entry = {"index": 0, "function": {"arguments": "\n}"}}
    delta, finished = decode({"tool_calls": [entry]}, finish_reason="tool_calls")
    assert delta.tool_call == ToolCallDelta(0, None, "\n}")
    assert finished.reason == "tool_calls"


@pytest.mark.parametrize(
    ("calls", "match"),
    [
        ("add", "tool_calls is not a list"),
        ({"index": 0}, "tool_calls is not a list"),
        ([{"function": {"name": "add"}}], "no valid 'index'"),
        ([{"index": -1, "function": {"name": "add"}}], "no valid 'index'"),
        ([{"index": True, "function": {"name": "add"}}], "no valid 'index'"),
        ([{"index": "0", "function": {"name": "add"}}], "no valid 'index'"),
        (["add"], "no valid 'index'"),
        ([{"index": MAX_TOOL_CALLS, "function": {"name": "add"}}], "index 64 is past the 64"),
        ([{"index": 0, "function": "add"}], "'function' is not an object"),
        ([{"index": 0, "function": {"name": 3}}], "name is not a string"),
        ([{"index": 0, "function": {"arguments": {"a": 1}}}], "arguments are not a string"),
        ([{"index": i, "function": {"name": "f"}} for i in range(65)], "65 tool calls"),
    ],
)
def test_malformed_tool_calls_are_protocol_errors_of_the_endpoint(calls: Any, match: str) -> None:
    with pytest.raises(ProtocolError, match=match) as caught:
        decode({"content": None, "tool_calls": calls})
    assert URL in str(caught.value)


# -- a branch's text ------------------------------------------------------------------


def feed(record: BranchRecord, *deltas: tuple[str, ToolCallDelta | None]) -> None:
    for text, call in deltas:
        at = float(len(record.token_times))
        record.add(TokenDelta(record.index, text, at=at, tool_call=call))


def test_a_call_renders_the_hermes_way_and_a_snapshot_closes_it() -> None:
    record = BranchRecord(index=0)
    feed(record, ("", ToolCallDelta(0, "add", "")))
    assert record.text == '<tool_call>\n{"name": "add", "arguments": }\n</tool_call>'
    feed(record, ("", ToolCallDelta(0, None, '{"a": 2')))
    assert record.text == '<tool_call>\n{"name": "add", "arguments": {"a": 2}\n</tool_call>'
    assert record.open_tool_call == 0
    feed(record, ("", ToolCallDelta(0, None, ', "b": 3}')))
    record.close_tool_call()
    assert record.text == call_text("add", '{"a": 2, "b": 3}')
    assert record.open_tool_call is None and record.tool_call_indices == [0]
    assert (record.tokens, len(record.token_times)) == (3, 3)


def test_content_then_two_calls_and_the_name_is_a_json_string() -> None:
    record = BranchRecord(index=1)
    feed(
        record,
        ("Sure. ", None),
        ("", ToolCallDelta(0, 'say "hi"', '{"x": 1}')),
        ("", ToolCallDelta(1, "mul", "{}")),
    )
    first = '<tool_call>\n{"name": "say \\"hi\\"", "arguments": {"x": 1}}\n</tool_call>'
    assert record.text == "Sure. " + first + call_text("mul", "{}")
    assert tool_call_open('say "hi"') + '{"x": 1}' + TOOL_CALL_CLOSE == first
    assert record.tool_call_indices == [0, 1]


def test_content_after_a_call_closes_it() -> None:
    record = BranchRecord(index=0)
    feed(record, ("", ToolCallDelta(0, "add", "{}")), (" done", None))
    assert record.text == call_text("add", "{}") + " done" and record.open_tool_call is None


def test_an_extra_entry_of_one_chunk_adds_no_chunk_time() -> None:
    record = BranchRecord(index=0)
    record.add(TokenDelta(0, "", 1.0, tokens=2, tool_call=ToolCallDelta(0, "a", "{}")))
    record.add(TokenDelta(0, "", 1.0, tokens=0, tool_call=ToolCallDelta(1, "b", "{}")))
    assert (record.tokens, record.token_times, record.first_token_at) == (2, [1.0], 1.0)


def test_plain_content_is_recorded_as_before() -> None:
    record = BranchRecord(index=0)
    feed(record, ("The", None), ("", None), (" answer", None))
    assert record.parts == ["The", "", " answer"] and record.text == "The answer"
    assert record.tool_call_indices == [] and len(record.token_times) == 3


# -- through a stream ---------------------------------------------------------------


def pool_for(server: FakeVLLM) -> EndpointPool:
    spec = EndpointSpec(url="http://a.test:8000", tool_calling="native")
    return EndpointPool([spec], transport=FakeCluster(a=server).transport, health_interval_s=0)


def request(n: int = 3, **fields: Any) -> ChatRequest:
    return ChatRequest(messages=MESSAGES, n=n, temperature=0.7, max_tokens=60, **fields)


def interleaved_required_calls() -> list[bytes]:
    """Three branches calling ``add`` (tool_choice required), interleaved as vLLM sends."""
    per_branch = [
        [silent(i), opens(i, "add"), silent(i), args(i, "{"), args(i, '\n    "a"'),
         args(i, f": {i}"), args(i, '}'), silent(i), silent(i, "tool_calls")]
        for i in range(3)
    ]  # fmt: skip
    chunks = [part for step in zip(*per_branch, strict=True) for part in step]
    return [*chunks, sse(usage_chunk(218, 27)), sse("[DONE]")]


async def test_interleaved_branches_each_render_their_call() -> None:
    server = FakeVLLM(chunks=interleaved_required_calls())
    req = request(tools=(ADD,), tool_choice="required")
    async with pool_for(server) as pool, pool.stream(req) as stream:
        await stream.collect()
    for i, branch in stream.branches.items():
        assert branch.text == call_text("add", f'{{\n    "a": {i}}}')
        assert branch.finish_reason == "tool_calls" and branch.open_tool_call is None
        assert branch.tokens == 9 and len(branch.token_times) == 9
    sent = server.requests[0]
    assert sent["tools"] == [ADD] and sent["tool_choice"] == "required"


async def test_a_snapshot_mid_stream_closes_the_open_call() -> None:
    server = FakeVLLM(chunks=interleaved_required_calls())
    seen: list[str] = []
    async with pool_for(server) as pool, pool.stream(request(tools=(ADD,))) as stream:
        async for event in stream:
            if isinstance(event, TokenDelta) and event.index == 2 and event.tool_call:
                seen.append(stream.branches[2].text)
    assert seen[:3] == [
        call_text("add", ""), call_text("add", "{"), call_text("add", '{\n    "a"'),
    ]  # fmt: skip


async def test_two_calls_in_one_branch_and_content_before_a_call() -> None:
    chunks = [
        chunk(0, {"content": "Let me add. "}, token_ids=[3]),
        opens(0, "add"), args(0, '{"a": 1, "b": 2}'),
        opens(0, "mul", call=1), args(0, '{"a": 3}', call=1),
        silent(0, "tool_calls"),
        sse(token_chunk(1, "5", "stop")),
        sse(usage_chunk(10, 7)), sse("[DONE]"),
    ]  # fmt: skip
    named = {"type": "function", "function": {"name": "add"}}
    req = request(n=2, tools=(ADD, MUL), tool_choice=named)
    async with pool_for(FakeVLLM(chunks=chunks)) as pool, pool.stream(req) as stream:
        await stream.collect()
    calls = call_text("add", '{"a": 1, "b": 2}') + call_text("mul", '{"a": 3}')
    assert stream.branches[0].text == "Let me add. " + calls
    assert stream.branches[0].tool_call_indices == [0, 1]
    assert stream.branches[1].text == "5" and stream.complete


async def test_a_call_continued_after_it_closed_is_a_protocol_error() -> None:
    chunks = [opens(0, "add"), opens(0, "mul", call=1), args(0, "}", call=0), sse("[DONE]")]
    async with pool_for(FakeVLLM(chunks=chunks)) as pool:
        with pytest.raises(ProtocolError, match="branch 0: tool call 0 continued after"):
            async with pool.stream(request(n=1)) as stream:
                await stream.collect()


async def test_a_malformed_tool_call_chunk_ends_the_stream_as_a_protocol_error() -> None:
    chunks = [opens(0, "add"), chunk(0, {"tool_calls": [{"index": "x"}]}), sse("[DONE]")]
    async with pool_for(FakeVLLM(chunks=chunks)) as pool:
        with pytest.raises(ProtocolError, match="tool call has no valid 'index'"):
            async with pool.stream(request(n=1)) as stream:
                await stream.collect()
    assert isinstance(stream, ChatStream) and isinstance(stream.error, ProtocolError)


# -- the request --------------------------------------------------------------------


def test_tools_choice_and_format_go_into_the_payload_only_when_set() -> None:
    plain = request().payload("m")
    assert not {"tools", "tool_choice", "response_format"} & plain.keys()
    fmt = {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "object"}}}
    body = request(tools=[ADD, MUL], tool_choice="auto", response_format=fmt).payload("m")
    assert body["tools"] == [ADD, MUL] and body["tool_choice"] == "auto"
    assert body["response_format"] == fmt
    assert request(tools=(ADD,)).payload("m").keys() >= {"tools"}
    assert "tool_choice" not in request(tools=(ADD,)).payload("m")


def test_a_list_of_tools_is_kept_as_a_tuple() -> None:
    assert request(tools=[ADD]).tools == (ADD,)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"tool_choice": "required"}, r"tool_choice is 'required' but ChatRequest\.tools is empty"),
        ({"tools": (ADD, {"type": "function"})}, r"tools\[1\]\.function\.name .* got \{'type'"),
        ({"tools": ({"type": "function", "function": {"name": ""}},)}, r"tools\[0\]\.function"),
        ({"tools": ({"function": {"name": "f"}},)}, r"tools\[0\] must be a dict with type"),
        ({"tools": ("add",)}, r"tools\[0\] must be a dict .* got 'add'"),
        ({"tools": (ADD,), "tool_choice": "always"}, r"tool_choice must be one of .*'always'"),
        (
            {"tools": (ADD,), "tool_choice": {"type": "function", "function": {"name": "mul"}}},
            r"tool_choice must be .* one of the tools \['add'\]",
        ),
        ({"response_format": {"json_schema": {}}}, r"response_format must be a dict"),
    ],
)
def test_bad_tool_fields_name_the_field_and_value(fields: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        request(**fields)


# -- the endpoint's mode ------------------------------------------------------------


def test_tool_calling_defaults_to_constrained_and_takes_the_three_modes() -> None:
    assert EndpointSpec(url="http://h:1").tool_calling == "constrained"
    for mode in ("native", "constrained", "none"):
        assert EndpointSpec(url="http://h:1", tool_calling=mode).tool_calling == mode


@pytest.mark.parametrize("value", ["Native", "hermes", "", 1, None])
def test_a_bad_tool_calling_mode_names_field_and_value(value: object) -> None:
    with pytest.raises(ValueError, match=r"tool_calling must be one of \['native', 'constrained'"):
        EndpointSpec(url="http://h:1", tool_calling=value)


def test_the_endpoints_file_reads_tool_calling(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.toml"
    path.write_text(
        '[[endpoints]]\nurl = "http://a:1"\ntool_calling = "native"\n'
        '[[endpoints]]\nurl = "http://b:1"\n'
    )
    assert [s.tool_calling for s in endpoints_from_toml(path, {})] == ["native", "constrained"]
    path.write_text('[[endpoints]]\nurl = "http://a:1"\ntool_calling = "yes"\n')
    with pytest.raises(EndpointConfigError, match=r"endpoints\[0\]: tool_calling: .* got 'yes'"):
        endpoints_from_toml(path, {})
    path.write_text('[[endpoints]]\nurl = "http://a:1"\ntool_calls = "native"\n')
    with pytest.raises(EndpointConfigError, match="tool_calls: is not a known field"):
        endpoints_from_toml(path, {})


def test_the_environment_sets_tool_calling_for_every_listed_endpoint(tmp_path: Path) -> None:
    env = {"AGENTRT_ENDPOINTS": "http://a:1,spec=http://b:2", "AGENTRT_API_KEY": "k",
           "AGENTRT_TOOL_CALLING": "native"}  # fmt: skip
    specs = endpoints_from_env(env)
    assert specs is not None and [s.tool_calling for s in specs] == ["native", "native"]
    assert [s.group for s in specs] == ["plain", "spec"] and specs[1].api_key is not None
    with pytest.raises(EndpointConfigError, match=r"AGENTRT_TOOL_CALLING: tool_calling: .*'nope'"):
        endpoints_from_env({"AGENTRT_ENDPOINTS": "http://a:1", "AGENTRT_TOOL_CALLING": "nope"})
    file_env = {"AGENTRT_ENDPOINTS_FILE": str(tmp_path / "e.toml"), "AGENTRT_TOOL_CALLING": "none"}
    with pytest.raises(EndpointConfigError, match="applies to AGENTRT_ENDPOINTS only"):
        endpoints_from_env(file_env)


# -- the local servers --------------------------------------------------------------


def test_the_tool_flags_name_the_shipped_template() -> None:
    assert TOOL_CHAT_TEMPLATE.is_file()
    assert TOOL_CHAT_TEMPLATE.parent == Path(local.__file__).parent / "templates"
    flags = list(TOOL_SERVER_ARGS)
    assert flags[:3] == ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]
    assert flags[flags.index("--chat-template") + 1] == str(TOOL_CHAT_TEMPLATE)
    config = json.loads(flags[flags.index("--structured-outputs-config") + 1])
    assert config == {"backend": "xgrammar", "disable_any_whitespace": True}


class _NoProcess:
    """Stands in for the server process: the launch is recorded, nothing runs."""

    pid = os.getpid()


def test_a_local_server_starts_with_the_tool_flags_and_is_native(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launched: list[list[str]] = []

    def popen(argv: list[str], **kwargs: Any) -> _NoProcess:
        launched.append(argv)
        return _NoProcess()

    monkeypatch.setattr(subprocess, "Popen", popen)
    pool = LocalPool(Settings(home=tmp_path / "home", models=tmp_path / "models"))
    record = pool._spawn(
        group="plain", model_path=tmp_path / "model", kv_cache_gib=1.0, max_model_len=4096,
        extra_args=[], index=0,
    )  # fmt: skip
    (argv,) = launched
    start = argv.index("--enable-auto-tool-choice")
    assert argv[start : start + len(TOOL_SERVER_ARGS)] == list(TOOL_SERVER_ARGS)
    assert record.launch_args == argv[3:] and record.parses_tool_calls
    assert record.endpoint().tool_calling == "native"


def test_a_server_recorded_without_the_tool_flags_is_constrained() -> None:
    old = ServerRecord(
        name="plain-0", group="plain", pid=1, port=40001, log_path="x.log", model_path="m",
        served_model="smollm2-135m-instruct", launch_args=["--enforce-eager"],
    )  # fmt: skip
    assert not old.parses_tool_calls and old.endpoint().tool_calling == "constrained"
