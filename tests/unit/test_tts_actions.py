"""Actions: reading tool calls and answers, canonical keys, votes over actions and
objects, constrained mode (schema, instructions, messages) and tool definitions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from agentrt.core._errors import ConfigurationError
from agentrt.tts._actions import (
    MAX_TOOL_CALLS,
    Action,
    ActionSpec,
    InvalidToolCall,
    StructuredSpec,
    ToolCall,
    action_verifier,
    canonical_json,
    check_tool_definition,
    constrained_instructions,
    constrained_messages,
    constrained_schema,
    parse_action,
)
from agentrt.tts._answers import AnswerSpec, LastNumber
from agentrt.tts._branch import BranchView
from agentrt.tts._scorers import VerifierScorer, score_branches
from agentrt.tts._voting import best_of_n_vote, majority_vote

ADD_PARAMS: dict[str, Any] = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
}
SEARCH_PARAMS: dict[str, Any] = {
    "type": "object",
    "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}},
    "required": ["query"],
}


def tool(
    name: str, parameters: dict[str, Any] | None = None, description: str = ""
) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name}
    if description:
        function["description"] = description
    if parameters is not None:
        function["parameters"] = parameters
    return {"type": "function", "function": function}


TOOLS = [
    tool("add", ADD_PARAMS, "Add two integers.\nReturns their sum."),
    tool("search", SEARCH_PARAMS, "Search the notes."),
]


def hermes(name: str, arguments: Any) -> str:
    body = json.dumps({"name": name, "arguments": arguments})
    return f"<tool_call>\n{body}\n</tool_call>"


def envelope(*calls: tuple[str, Any]) -> str:
    return json.dumps({"tool_calls": [{"name": n, "arguments": a} for n, a in calls]})


# ---------------------------------------------------------------------------
# parse_action: the three forms


def test_envelope_tool_calls() -> None:
    action = parse_action('{"tool_calls": [{"name": "add", "arguments": {"a": 6, "b": 7}}]}')
    assert action == Action(tool_calls=(ToolCall("add", {"a": 6, "b": 7}),))
    assert action.is_tool_call


@pytest.mark.parametrize(
    "text",
    [
        '{"answer": "13"}',
        '{ \n"answer": "13"\n}',
        '  {"answer":"13"}  \n',
        '```json\n{"answer": "13"}\n```',
        '{"answer": 13}',
    ],
)
def test_envelope_answer(text: str) -> None:
    action = parse_action(text)
    assert action == Action(content="13")
    assert not action.is_tool_call


def test_envelope_answer_null_is_empty_content() -> None:
    assert parse_action('{"answer": null}') == Action(content="")


def test_envelope_with_whitespace_and_several_calls() -> None:
    text = (
        '{\n  "tool_calls" : [\n {"name":"add","arguments":{"a":1,"b":2}},\n'
        ' {"name":"search","arguments":{"query":"x"}}\n ]\n}'
    )
    action = parse_action(text)
    assert action.tool_calls == (
        ToolCall("add", {"a": 1, "b": 2}),
        ToolCall("search", {"query": "x"}),
    )
    assert action.invalid_tool_calls == ()


def test_envelope_arguments_may_be_a_json_string() -> None:
    text = json.dumps({"tool_calls": [{"name": "add", "arguments": '{"a": 1, "b": 2}'}]})
    assert parse_action(text).tool_calls == (ToolCall("add", {"a": 1, "b": 2}),)


def test_hermes_single_call_with_content() -> None:
    text = "I will add them.\n" + hermes("add", {"a": 6, "b": 7})
    action = parse_action(text)
    assert action == Action(
        tool_calls=(ToolCall("add", {"a": 6, "b": 7}),), content="I will add them."
    )


def test_hermes_several_calls_and_string_arguments() -> None:
    text = (
        hermes("add", {"a": 6, "b": 7})
        + "\n"
        + '<tool_call>\n{"name": "search", "arguments": "{\\"query\\": \\"cats\\"}"}\n</tool_call>'
    )
    action = parse_action(text)
    assert action.tool_calls == (
        ToolCall("add", {"a": 6, "b": 7}),
        ToolCall("search", {"query": "cats"}),
    )
    assert action.content == ""


def test_hermes_as_the_pool_renders_it() -> None:
    # agentrt.pool._stream renders server tool calls this way.
    from agentrt.pool._stream import TOOL_CALL_CLOSE, tool_call_open

    text = "Sure." + tool_call_open("add") + '{"a": 2, "b": 3}' + TOOL_CALL_CLOSE
    assert parse_action(text) == Action(
        tool_calls=(ToolCall("add", {"a": 2, "b": 3}),), content="Sure."
    )
    no_arguments = tool_call_open("now") + TOOL_CALL_CLOSE  # `"arguments": }`
    assert parse_action(no_arguments).tool_calls == (ToolCall("now", {}),)


def test_hermes_missing_arguments_mean_none() -> None:
    text = '<tool_call>\n{"name": "now"}\n</tool_call>'
    assert parse_action(text).tool_calls == (ToolCall("now", {}),)


def test_hermes_unterminated_last_block_still_counts_when_complete() -> None:
    text = '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}'
    assert parse_action(text).tool_calls == (ToolCall("add", {"a": 1, "b": 2}),)


@pytest.mark.parametrize(
    "text",
    [
        "The answer is 13.",
        "  13  ",
        '{"result": 13}',  # a JSON object that is no envelope is plain content
        "",
    ],
)
def test_plain_text_is_content(text: str) -> None:
    action = parse_action(text)
    assert action == Action(content=text.strip())
    assert not action.is_tool_call


# ---------------------------------------------------------------------------
# parse_action: broken input becomes InvalidToolCall, never an exception


@pytest.mark.parametrize(
    ("text", "name", "error"),
    [
        ('<tool_call>\n{"name": "add", "arguments": {"a": 1', None, "not JSON"),
        ('<tool_call>\n{"name": "add", "arguments": {"a": 1}}', None, None),  # valid, see below
        ('<tool_call>\n{"arguments": {"a": 1}}\n</tool_call>', None, "needs a name"),
        ('<tool_call>\n{"name": "", "arguments": {}}\n</tool_call>', None, "needs a name"),
        ('<tool_call>\n{"name": 3, "arguments": {}}\n</tool_call>', None, "needs a name"),
        ('<tool_call>\n{"name": "add", "arguments": [1, 2]}\n</tool_call>', "add", "JSON object"),
        ('<tool_call>\n{"name": "add", "arguments": "{oops"}\n</tool_call>', "add", "not JSON"),
        ('<tool_call>\n{"name": "add", "arguments": "[1]"}\n</tool_call>', "add", "JSON object"),
        ("<tool_call>\n[1, 2]\n</tool_call>", None, "JSON object"),
        ("<tool_call>\n</tool_call>", None, "not JSON"),
        ('<tool_call>\n{"name": "x", "arguments": {"v": NaN}}\n</tool_call>', None, "NaN"),
        ('{"tool_calls": [{"name": "add", "argu', None, "not JSON"),
        ('{"tool_calls": {"name": "add"}}', None, "non-empty list"),
        ('{"tool_calls": []}', None, "non-empty list"),
        ('{"tool_calls": ["add"]}', None, "JSON object"),
        ('{"tool_calls": [{"name": "add", "arguments": 5}]}', "add", "JSON object"),
    ],
)
def test_broken_tool_calls_are_invalid(text: str, name: str | None, error: str | None) -> None:
    action = parse_action(text)
    if error is None:
        assert action.tool_calls and not action.invalid_tool_calls
        return
    assert action.tool_calls == ()
    assert action.is_tool_call
    (invalid,) = action.invalid_tool_calls
    assert invalid.name == name
    assert error in invalid.error


def test_a_block_reopened_before_it_closed() -> None:
    text = '<tool_call>\n{"name": "add", "argu' + hermes("add", {"a": 1})
    action = parse_action(text)
    assert action.tool_calls == (ToolCall("add", {"a": 1}),)
    assert len(action.invalid_tool_calls) == 1
    assert "no </tool_call>" in action.invalid_tool_calls[0].error


def test_mixed_valid_and_invalid_calls_keep_both() -> None:
    text = hermes("add", {"a": 1, "b": 2}) + '<tool_call>\n{"name": "add"\n</tool_call>'
    action = parse_action(text)
    assert len(action.tool_calls) == 1 and len(action.invalid_tool_calls) == 1


def test_a_broken_answer_envelope_is_plain_text() -> None:
    assert parse_action('{"answer": "1') == Action(content='{"answer": "1')


def test_invalid_tool_call_keeps_raw_arguments() -> None:
    text = '<tool_call>\n{"name": "add", "arguments": "{oops"}\n</tool_call>'
    (invalid,) = parse_action(text).invalid_tool_calls
    assert invalid == InvalidToolCall("add", "{oops", invalid.error)


def test_too_many_calls() -> None:
    many = "".join(hermes("add", {"a": i, "b": 0}) for i in range(MAX_TOOL_CALLS + 3))
    action = parse_action(many)
    assert len(action.tool_calls) == MAX_TOOL_CALLS
    assert "more than" in action.invalid_tool_calls[-1].error
    items = [("add", {"a": i, "b": 0}) for i in range(MAX_TOOL_CALLS + 1)]
    action = parse_action(envelope(*items))
    assert action.tool_calls == () and "more than" in action.invalid_tool_calls[0].error


def test_a_reply_longer_than_max_chars_is_not_parsed() -> None:
    call = hermes("add", {"a": 1, "b": 2})
    long_call = "x" * 200 + call
    action = parse_action(long_call, max_chars=100)
    assert action.tool_calls == () and "longer than 100" in action.invalid_tool_calls[0].error
    assert parse_action(long_call, max_chars=1000).tool_calls == (
        ToolCall("add", {"a": 1, "b": 2}),
    )
    long_text = "y" * 200
    assert parse_action(long_text, max_chars=100) == Action(content=long_text)
    long_envelope = envelope(("add", {"a": 1, "b": "z" * 200}))
    assert parse_action(long_envelope, max_chars=100).invalid_tool_calls


@pytest.mark.parametrize(
    "text",
    [
        "[" * 200_000,
        "{" * 200_000,
        '{"tool_calls": ' + "[" * 200_000,
        "<tool_call>" + '{"a":' * 100_000 + "1" + "}" * 100_000 + "</tool_call>",
        '{"tool_calls": [{"name": "a", "arguments": ' + "[" * 5_000 + "]" * 5_000 + "}]}",
        "<tool_call>" * 20_000,
        "</tool_call>" * 20_000,
    ],
)
def test_hostile_input_is_bounded(text: str) -> None:
    action = parse_action(text, max_chars=10_000_000)
    assert isinstance(action, Action)


_FRAGMENTS = st.sampled_from(
    [
        "<tool_call>",
        "</tool_call>",
        "\n",
        "{",
        "}",
        "[",
        "]",
        '"name"',
        '"arguments"',
        '"tool_calls"',
        '"answer"',
        ":",
        ",",
        '"add"',
        "1",
        "3.0",
        "NaN",
        '"',
        "\\",
        "```",
        " ",
        "text",
    ]
)


@given(st.text(max_size=400))
def test_parse_action_never_raises_on_any_text(text: str) -> None:
    action = parse_action(text)
    assert isinstance(action, Action)
    assert len(action.tool_calls) + len(action.invalid_tool_calls) <= MAX_TOOL_CALLS + 1


@settings(max_examples=300)
@given(st.lists(_FRAGMENTS, max_size=80).map("".join))
def test_parse_action_never_raises_on_near_json(text: str) -> None:
    action = parse_action(text)
    for call in action.tool_calls:
        assert isinstance(call.name, str) and call.name
        assert isinstance(call.arguments, dict)
    spec = ActionSpec()
    answer = spec.extract(text)
    assert answer is None or answer.key.startswith(("call:", "answer:"))


# ---------------------------------------------------------------------------
# canonical keys


def test_canonical_json() -> None:
    assert canonical_json({"b": 3.0, "a": [1.0, 2.5, {"z": -0.0}]}) == '{"a":[1,2.5,{"z":0}],"b":3}'
    assert canonical_json({"k": "é"}) == '{"k":"é"}'
    assert canonical_json((1, 2)) == "[1,2]"
    assert canonical_json(True) == "true"  # a bool is not the number 1
    assert canonical_json({"a": 1, "b": 2}) == canonical_json({"b": 2, "a": 1.0})


@given(
    st.dictionaries(
        st.text(max_size=5),
        st.one_of(st.integers(-(10**6), 10**6), st.text(max_size=5), st.booleans(), st.none()),
        max_size=6,
    )
)
def test_canonical_json_ignores_key_order_and_integral_floats(value: dict[str, Any]) -> None:
    reordered = dict(reversed(list(value.items())))
    floated = {
        k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
        for k, v in reordered.items()
    }
    assert canonical_json(value) == canonical_json(floated)
    assert json.loads(canonical_json(value)) == value


def test_keys_equal_for_reordered_calls_and_arguments() -> None:
    spec = ActionSpec()
    first = spec.extract(hermes("add", {"a": 6, "b": 7}) + hermes("search", {"query": "x"}))
    second = spec.extract(hermes("search", {"query": "x"}) + hermes("add", {"b": 7.0, "a": 6}))
    third = spec.extract(envelope(("search", {"query": "x"}), ("add", {"b": 7, "a": 6.0})))
    assert first is not None and second is not None and third is not None
    assert first.key == second.key == third.key
    assert first.key == 'call:[["add",{"a":6,"b":7}],["search",{"query":"x"}]]'


def test_different_arguments_differ() -> None:
    spec = ActionSpec()
    one = spec.extract(hermes("add", {"a": 6, "b": 7}))
    other = spec.extract(hermes("add", {"a": 6, "b": 8}))
    assert one is not None and other is not None and one.key != other.key


def test_a_repeated_call_is_not_the_same_as_one_call() -> None:
    spec = ActionSpec()
    once = spec.extract(hermes("add", {"a": 1, "b": 1}))
    twice = spec.extract(hermes("add", {"a": 1, "b": 1}) * 2)
    assert once is not None and twice is not None and once.key != twice.key


def test_long_keys_stay_bounded_and_distinct() -> None:
    spec = ActionSpec()
    one = spec.extract(hermes("search", {"query": "x" * 5000 + "1"}))
    other = spec.extract(hermes("search", {"query": "x" * 5000 + "2"}))
    assert one is not None and other is not None
    assert len(one.key) <= 1000 and len(other.key) <= 1000
    assert one.key != other.key


# ---------------------------------------------------------------------------
# ActionSpec votes


def test_action_spec_is_an_answer_spec() -> None:
    spec = ActionSpec()
    assert isinstance(spec, AnswerSpec)
    assert spec.from_partial is False and spec.name == "action"


def test_answer_and_tool_call_votes_differ() -> None:
    spec = ActionSpec.for_tools(TOOLS)
    answer = spec.extract('{"answer": "13"}')
    plain = spec.extract("13")
    call = spec.extract(hermes("add", {"a": 6, "b": 7}))
    assert answer is not None and plain is not None and call is not None
    assert answer.key == plain.key == "answer:13"
    assert call.key.startswith("call:") and call.key != answer.key


def test_answer_text_is_the_branch_text() -> None:
    spec = ActionSpec.for_tools(TOOLS)
    text = "Adding.\n" + hermes("add", {"a": 6, "b": 7})
    found = spec.extract(text)
    assert found is not None and found.text == text
    assert parse_action(found.text).tool_calls == (ToolCall("add", {"a": 6, "b": 7}),)


@pytest.mark.parametrize(
    "text",
    [
        hermes("add", {"a": 6}),  # a required argument missing
        hermes("add", {"a": 6, "b": "7"}),  # wrong type
        hermes("search", {"query": "x", "limit": 0}),  # below minimum
        hermes("delete", {"path": "/"}),  # an unknown tool
        hermes("add", {"a": 6, "b": 7}) + hermes("delete", {}),  # one bad call spoils the vote
        hermes("add", {"a": 6, "b": 7}) + '<tool_call>\n{"name": "add"',  # an invalid call too
        envelope(("add", {"a": 1.5, "b": 2})),
    ],
)
def test_invalid_calls_cast_no_vote(text: str) -> None:
    spec = ActionSpec.for_tools(TOOLS)
    assert spec.extract(text) is None
    assert spec.read(text) is None


def test_validate_false_skips_argument_schemas_but_not_tool_names() -> None:
    spec = ActionSpec.for_tools(TOOLS, validate=False)
    assert spec.extract(hermes("add", {"a": "six"})) is not None
    assert spec.extract(hermes("delete", {})) is None


def test_no_tools_means_any_tool() -> None:
    spec = ActionSpec()
    found = spec.extract(hermes("anything", {"x": [1, 2]}))
    assert found is not None and found.key == 'call:[["anything",{"x":[1,2]}]]'


def test_the_inner_answer_spec_reads_the_content() -> None:
    spec = ActionSpec(answer=LastNumber())
    one = spec.extract('{"answer": "It is 13."}')
    other = spec.extract("So the total is 13.0")
    assert one is not None and other is not None and one.key == other.key == "answer:13"
    assert spec.extract('{"answer": "no idea"}') is None
    assert spec.extract("") is None


def test_read_gives_the_action() -> None:
    spec = ActionSpec.for_tools(TOOLS)
    action = spec.read(envelope(("add", {"a": 1, "b": 2})))
    assert action == Action(tool_calls=(ToolCall("add", {"a": 1, "b": 2}),))


def test_action_spec_refuses_bad_tools() -> None:
    with pytest.raises(ConfigurationError, match=r"ActionSpec.tools\['add'\].*local reference"):
        ActionSpec(tools={"add": {"type": "object", "properties": {"a": {"$ref": "http://x/y"}}}})
    with pytest.raises(ConfigurationError, match=r"ActionSpec\.tools key"):
        ActionSpec(tools={"bad name": ADD_PARAMS})
    with pytest.raises(
        ConfigurationError, match=r"ActionSpec.tools\['add'\] must be a JSON-schema"
    ):
        ActionSpec(tools={"add": "integer"})  # type: ignore[dict-item]
    with pytest.raises(ConfigurationError, match="max_chars"):
        ActionSpec(max_chars=0)
    with pytest.raises(ConfigurationError, match="defined twice"):
        ActionSpec.for_tools([tool("add", ADD_PARAMS), tool("add", ADD_PARAMS)])


def test_a_self_referencing_schema_casts_no_vote_instead_of_recursing() -> None:
    spec = ActionSpec(tools={"loop": {"type": "object", "$ref": "#"}})
    assert spec.extract(hermes("loop", {})) is None


# ---------------------------------------------------------------------------
# StructuredSpec

PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "note": {"type": "string"},
    },
    "required": ["name", "age"],
}


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "Ada", "age": 36}',
        '  {"age": 36.0, "name": "Ada"}\n',
        'Here it is:\n```json\n{"name": "Ada", "age": 36}\n```\nDone.',
        'Sure! {"name": "Ada", "age": 36} Hope that helps {"x": 1}.',
    ],
)
def test_structured_spec_finds_the_object(text: str) -> None:
    found = StructuredSpec(PERSON).extract(text)
    assert found is not None
    assert found.key == '{"age":36,"name":"Ada"}'
    assert json.loads(found.text) == {"age": 36, "name": "Ada"}


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "Ada"}',  # a required field missing
        '{"name": "Ada", "age": "36"}',  # wrong type
        "[1, 2]",
        "no object here",
        '{"name": "Ada", "age": ',  # cut off
        "{" * 100_000,
    ],
)
def test_structured_spec_invalid_casts_no_vote(text: str) -> None:
    assert StructuredSpec(PERSON).extract(text) is None


def test_structured_spec_without_schema_takes_any_object() -> None:
    spec = StructuredSpec()
    found = spec.extract('{"b": [1.0], "a": null}')
    assert found is not None and found.key == '{"a":null,"b":[1]}'
    assert spec.extract('"just a string"') is None


def test_structured_spec_votes_on_chosen_fields() -> None:
    spec = StructuredSpec(PERSON, fields=("name", "age"))
    one = spec.extract('{"name": "Ada", "age": 36, "note": "mathematician"}')
    other = spec.extract('{"name": "Ada", "age": 36, "note": "wrote the first program"}')
    assert one is not None and other is not None and one.key == other.key
    assert one.key == '{"age":36,"name":"Ada"}'
    assert json.loads(one.text)["note"] == "mathematician"  # the text is the whole object
    assert StructuredSpec(fields=("missing",)).extract('{"x": 1}') is None


def test_structured_spec_voting() -> None:
    branches = [
        BranchView(0, '{"name": "Ada", "age": 36, "note": "a"}', True),
        BranchView(1, '{"name": "Bob", "age": 40}', True),
        BranchView(2, 'It is {"age": 36, "name": "Ada", "note": "b"}', True),
        BranchView(3, '{"name": "Ada"}', True),
    ]
    decision = majority_vote(branches, StructuredSpec(PERSON, fields=("name", "age")))
    assert decision.answer is not None and decision.answer.key == '{"age":36,"name":"Ada"}'
    assert decision.votes == {'{"age":36,"name":"Ada"}': 2.0, '{"age":40,"name":"Bob"}': 1.0}


def test_structured_spec_refuses_bad_config() -> None:
    with pytest.raises(ConfigurationError, match=r"StructuredSpec.schema.type is not a valid"):
        StructuredSpec({"type": "thing"})
    with pytest.raises(ConfigurationError, match=r"StructuredSpec\.fields"):
        StructuredSpec(fields="name")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"StructuredSpec\.fields"):
        StructuredSpec(fields=("",))
    with pytest.raises(ConfigurationError, match="max_chars"):
        StructuredSpec(max_chars=0)


# ---------------------------------------------------------------------------
# constrained_schema

ADD_CALL = envelope(("add", {"a": 6, "b": 7}))
SEARCH_CALL = envelope(("search", {"query": "cats"}))
BOTH_CALLS = envelope(("add", {"a": 6, "b": 7}), ("search", {"query": "cats", "limit": 3}))
ANSWER = '{"answer": "13"}'
INVALID_REPLIES = [
    envelope(("add", {"a": 6})),  # a required argument missing
    envelope(("add", {"a": 6, "b": 7, "c": 8})),  # an undeclared argument
    envelope(("add", {"a": "6", "b": 7})),  # wrong type
    envelope(("delete", {})),  # an unknown tool
    envelope(("search", {"query": "x", "limit": 0})),  # below minimum
    '{"tool_calls": []}',
    '{"tool_calls": [{"name": "add"}]}',
    '{"answer": 13}',
    '{"answer": "13", "extra": 1}',
    '{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}], "answer": "x"}',
    "{}",
]


@pytest.mark.parametrize(
    ("choice", "valid", "invalid"),
    [
        (None, [ADD_CALL, SEARCH_CALL, BOTH_CALLS, ANSWER], []),
        ("auto", [ADD_CALL, SEARCH_CALL, BOTH_CALLS, ANSWER], []),
        ("required", [ADD_CALL, SEARCH_CALL, BOTH_CALLS], [ANSWER]),
        ("add", [ADD_CALL], [ANSWER, SEARCH_CALL, BOTH_CALLS]),
        ("none", [ANSWER], [ADD_CALL, SEARCH_CALL, BOTH_CALLS]),
    ],
)
def test_constrained_schema_per_tool_choice(
    choice: str | None, valid: list[str], invalid: list[str]
) -> None:
    schema = constrained_schema(TOOLS, choice)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    for reply in valid:
        assert validator.is_valid(json.loads(reply)), reply
    for reply in invalid + INVALID_REPLIES:
        assert not validator.is_valid(json.loads(reply)), reply


def test_constrained_schema_shape() -> None:
    schema = constrained_schema(TOOLS, "auto")
    calls, answer = schema["anyOf"]
    assert answer == {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    array = calls["properties"]["tool_calls"]
    assert (array["minItems"], array["maxItems"]) == (1, 4)
    add, _ = array["items"]["anyOf"]
    assert add["properties"]["name"] == {"const": "add"}
    assert add["properties"]["arguments"] == {**ADD_PARAMS, "additionalProperties": False}
    assert add["required"] == ["name", "arguments"] and add["additionalProperties"] is False
    assert constrained_schema(TOOLS, "none") == answer
    single = constrained_schema(TOOLS, "add")["properties"]["tool_calls"]["items"]
    assert single["properties"]["name"] == {"const": "add"}
    assert ADD_PARAMS.get("additionalProperties") is None  # the input is not changed


def test_constrained_schema_max_calls() -> None:
    validator = Draft202012Validator(constrained_schema(TOOLS, "required", max_calls=1))
    assert validator.is_valid(json.loads(ADD_CALL))
    assert not validator.is_valid(json.loads(BOTH_CALLS))
    with pytest.raises(ConfigurationError, match="max_calls must be >= 1, got 0"):
        constrained_schema(TOOLS, None, max_calls=0)


def test_constrained_schema_closes_nested_objects_only_where_safe() -> None:
    parameters = {
        "type": "object",
        "properties": {
            "point": {"type": "object", "properties": {"x": {"type": "number"}}},
            "tags": {"type": "object"},  # free-form: stays open
            "both": {"allOf": [{"properties": {"p": {}}}, {"properties": {"q": {}}}]},
            "enum": {"enum": [{"properties": {"kept": "as data"}}]},
        },
    }
    schema = constrained_schema([tool("f", parameters)], "f")
    arguments = schema["properties"]["tool_calls"]["items"]["properties"]["arguments"]
    assert arguments["additionalProperties"] is False
    assert arguments["properties"]["point"]["additionalProperties"] is False
    assert "additionalProperties" not in arguments["properties"]["tags"]
    assert all("additionalProperties" not in m for m in arguments["properties"]["both"]["allOf"])
    assert arguments["properties"]["enum"] == parameters["properties"]["enum"]  # type: ignore[index]
    validator = Draft202012Validator(schema)
    reply = {
        "tool_calls": [{"name": "f", "arguments": {"tags": {"any": 1}, "both": {"p": 1, "q": 2}}}]
    }
    assert validator.is_valid(reply)


@pytest.mark.parametrize("parameters", [None, {}])
def test_constrained_schema_without_parameters_takes_no_arguments(
    parameters: dict[str, Any] | None,
) -> None:
    definition = tool("now", parameters)
    if parameters is None:
        definition["function"]["parameters"] = None
    validator = Draft202012Validator(constrained_schema([definition], "required"))
    assert validator.is_valid({"tool_calls": [{"name": "now", "arguments": {}}]})
    assert not validator.is_valid({"tool_calls": [{"name": "now", "arguments": {"x": 1}}]})
    assert "- now()" in constrained_instructions([definition], None)


def test_constrained_schema_rebases_references() -> None:
    parameters = {
        "type": "object",
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["value"],
            }
        },
        "properties": {"root": {"$ref": "#/$defs/node"}},
        "required": ["root"],
    }
    schema = constrained_schema([tool("tree", parameters), tool("add", ADD_PARAMS)], None)
    assert "tree" in schema["$defs"] and "add" not in schema["$defs"]
    validator = Draft202012Validator(schema)
    good = {"root": {"value": 1, "children": [{"value": 2, "children": []}]}}
    bad = {"root": {"value": 1, "children": [{"value": "2"}]}}
    extra = {"root": {"value": 1, "other": 0}}
    assert validator.is_valid({"tool_calls": [{"name": "tree", "arguments": good}]})
    assert not validator.is_valid({"tool_calls": [{"name": "tree", "arguments": bad}]})
    assert not validator.is_valid({"tool_calls": [{"name": "tree", "arguments": extra}]})


def test_constrained_schema_refuses_bad_choices() -> None:
    with pytest.raises(ConfigurationError, match=r"tool_choice must be .* got 'delete'"):
        constrained_schema(TOOLS, "delete")
    with pytest.raises(ConfigurationError, match="'required' needs at least one tool"):
        constrained_schema([], "required")
    assert constrained_schema([], None) == constrained_schema(TOOLS, "none")
    with pytest.raises(ConfigurationError, match="defined twice"):
        constrained_schema([tool("add", ADD_PARAMS), tool("add")], None)


def test_constrained_schema_compiles_with_xgrammar() -> None:
    xgrammar = pytest.importorskip("xgrammar")
    from xgrammar.testing import _is_grammar_accept_string as accepts

    tree = {
        "type": "object",
        "$defs": {"n": {"type": "object", "properties": {"v": {"type": "integer"}}}},
        "properties": {"root": {"$ref": "#/$defs/n"}},
    }
    schema = constrained_schema([*TOOLS, tool("tree", tree)], "auto")
    grammar = xgrammar.Grammar.from_json_schema(json.dumps(schema))
    assert accepts(grammar, ADD_CALL)
    assert accepts(grammar, ANSWER)
    assert accepts(grammar, envelope(("tree", {"root": {"v": 1}})))
    assert not accepts(grammar, envelope(("add", {"a": 6, "b": 7, "c": 8})))
    assert not accepts(grammar, envelope(("tree", {"root": {"v": 1, "w": 2}})))


# ---------------------------------------------------------------------------
# constrained_instructions


def test_constrained_instructions_auto() -> None:
    text = constrained_instructions(TOOLS, "auto")
    assert "- add(a: integer, b: integer): Add two integers." in text
    assert "Returns their sum" not in text  # one line per tool
    assert "- search(query: string, limit?: integer): Search the notes." in text
    assert '{"tool_calls": [' in text and '{"answer": ' in text
    assert len(text) < 600


def test_constrained_instructions_per_choice() -> None:
    required = constrained_instructions(TOOLS, "required")
    assert "must call a tool" in required and '{"answer"' not in required
    named = constrained_instructions(TOOLS, "search")
    assert "search(" in named and "add(" not in named and '"name": "search"' in named
    none = constrained_instructions(TOOLS, "none")
    assert "add(" not in none and '{"answer"' in none and "tool_calls" not in none


def test_signature_labels() -> None:
    parameters = {
        "type": "object",
        "properties": {
            "mode": {"enum": ["fast", "slow"]},
            "ids": {"type": "array", "items": {"type": "integer"}},
            "maybe": {"type": ["string", "null"]},
            "ref": {"$ref": "#/$defs/x"},
            "whatever": {},
            "either": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "$defs": {"x": {"type": "object"}},
    }
    text = constrained_instructions([tool("f", parameters)], None)
    assert (
        'f(mode?: "fast"|"slow", ids?: integer[], maybe?: string|null, ref?: object, '
        "whatever?: any, either?: string|null)" in text
    )


# ---------------------------------------------------------------------------
# constrained_messages

HISTORY: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a calculator."},
    {"role": "user", "content": "What is 6+7, and find notes on cats."},
    {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "add", "arguments": '{"a": 6, "b": 7}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "search", "arguments": '{"query": "cats"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "13"},
    {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "cats purr"}]},
    {"role": "assistant", "content": "6+7 is 13; cats purr."},
    {"role": "user", "content": [{"type": "text", "text": "Thanks!"}]},
]


def test_constrained_messages_on_a_tool_loop() -> None:
    assert constrained_messages(HISTORY) == [
        {"role": "system", "content": "You are a calculator."},
        {"role": "user", "content": "What is 6+7, and find notes on cats."},
        {
            "role": "assistant",
            "content": '{"tool_calls": [{"name": "add", "arguments": {"a": 6, "b": 7}}, '
            '{"name": "search", "arguments": {"query": "cats"}}]}',
        },
        {"role": "user", "content": "Tool add returned: 13"},
        {"role": "user", "content": "Tool search returned: cats purr"},
        {"role": "assistant", "content": '{"answer": "6+7 is 13; cats purr."}'},
        {"role": "user", "content": "Thanks!"},
    ]


def test_constrained_messages_envelopes_parse_back() -> None:
    converted = constrained_messages(HISTORY)
    assert parse_action(converted[2]["content"]).tool_calls == (
        ToolCall("add", {"a": 6, "b": 7}),
        ToolCall("search", {"query": "cats"}),
    )
    assert parse_action(converted[5]["content"]).content == "6+7 is 13; cats purr."


def test_constrained_messages_tool_names_and_odd_arguments() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "function": {"name": "now", "arguments": ""}},
                {"id": "c2", "function": {"name": "add", "arguments": "{broken"}},
                {"id": "c3", "function": {"name": "add", "arguments": {"a": 1}}},
            ],
        },
        {"role": "tool", "tool_call_id": "unknown", "name": "lookup", "content": "x"},
        {"role": "tool", "content": {"ok": True}},
    ]
    out = constrained_messages(messages)
    assert out[0] == {"role": "system", "content": "Be brief."}
    assert json.loads(out[1]["content"]) == {
        "tool_calls": [
            {"name": "now", "arguments": {}},
            {"name": "add", "arguments": "{broken"},
            {"name": "add", "arguments": {"a": 1}},
        ]
    }
    assert out[2] == {"role": "user", "content": "Tool lookup returned: x"}
    assert out[3] == {"role": "user", "content": 'Tool tool returned: {"ok": true}'}


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([{"role": "function", "content": "x"}], r"messages\[0\].role must be .* got 'function'"),
        ([{"content": "x"}], r"messages\[0\].role .* got None"),
        (["hello"], r"messages\[0\] must be an object"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
            r"messages\[0\].content\[0\] must be text .* 'image_url'",
        ),
        ([{"role": "user", "content": 5}], r"messages\[0\].content must be text"),
        (
            [{"role": "assistant", "tool_calls": [{"id": "x"}]}],
            r"messages\[0\].tool_calls\[0\] must be",
        ),
        ([{"role": "assistant", "tool_calls": "add"}], r"messages\[0\].tool_calls must be a list"),
    ],
)
def test_constrained_messages_refuses_malformed(messages: list[Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        constrained_messages(messages)


# ---------------------------------------------------------------------------
# check_tool_definition


def test_good_tool_definitions_pass() -> None:
    for index, definition in enumerate([*TOOLS, tool("now"), tool("a-b_9", {"type": "object"})]):
        check_tool_definition(definition, index)


def _deep(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


@pytest.mark.parametrize(
    ("definition", "match"),
    [
        ("add", r"tools\[3\] must be an object"),
        (
            {"type": "tool", "function": {"name": "add"}},
            r"tools\[3\].type must be 'function', got 'tool'",
        ),
        ({"type": "function"}, r"tools\[3\].function must be an object"),
        (tool(""), r"tools\[3\].function.name must match .* got ''"),
        (tool("has space"), r"tools\[3\].function.name must match .* got 'has space'"),
        (tool("x" * 65), r"tools\[3\].function.name must match"),
        ({"type": "function", "function": {"name": 5}}, r"tools\[3\].function.name .* got 5"),
        (
            {"type": "function", "function": {"name": "add", "description": 3}},
            r"tools\[3\] \('add'\).function.description must be a string",
        ),
        (
            tool("add", {"type": "string"}),
            r"tools\[3\] \('add'\).function.parameters must be an object schema",
        ),
        (tool("add", []), r"tools\[3\] \('add'\).function.parameters must be an object schema"),  # type: ignore[arg-type]
        (
            tool("add", {"type": "object", "properties": {"a": {"type": "int"}}}),
            r"tools\[3\] \('add'\).function.parameters.properties.a.type is not a valid JSON",
        ),
        (
            tool(
                "add", {"type": "object", "properties": {"a": {"type": "string", "pattern": "(x"}}}
            ),
            r"\('add'\).function.parameters.properties.a.pattern is not a valid JSON schema",
        ),
        (
            tool("add", {"type": "object", "required": "a"}),
            r"\('add'\).function.parameters.required is not a valid JSON schema",
        ),
        (
            tool(
                "add",
                {"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}},
            ),
            r"\('add'\).function.parameters.properties.a.\$ref must be a local reference",
        ),
        (
            tool("add", {"type": "object", "properties": {"a": {"$ref": "#anchor"}}}),
            r"\('add'\).function.parameters.properties.a.\$ref must be a local reference",
        ),
        (
            tool("add", {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}),
            r"\('add'\).function.parameters.properties.a.\$ref names nothing",
        ),
        (
            tool(
                "add",
                {
                    "type": "object",
                    "properties": {"a": {"type": "integer", "minimum": 5, "maximum": 1}},
                },
            ),
            r"\('add'\).function.parameters.properties.a admits no value: minimum 5 > maximum 1",
        ),
        (
            tool(
                "add",
                {
                    "type": "object",
                    "properties": {"a": {"type": "array", "minItems": 3, "maxItems": 2}},
                },
            ),
            r"admits no value: minItems 3 > maxItems 2",
        ),
        (tool("add", _deep(20)), r"\('add'\).function.parameters nests deeper than 32 levels"),
    ],
)
def test_bad_tool_definitions_name_the_tool_and_field(definition: Any, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        check_tool_definition(definition, 3)


def test_hostile_nesting_in_a_definition_does_not_recurse() -> None:
    schema: dict[str, Any] = {}
    for _ in range(100_000):
        schema = {"type": "object", "properties": {"x": schema}}
    with pytest.raises(ConfigurationError, match="deeper than 32"):
        check_tool_definition(tool("deep", schema), 0)


def test_local_references_resolve() -> None:
    parameters = {
        "type": "object",
        "definitions": {"a~b": {"type": "integer"}, "c/d": {"type": "string"}},
        "properties": {
            "x": {"$ref": "#/definitions/a~0b"},
            "y": {"$ref": "#/definitions/c~1d"},
            "z": {"$ref": "#"},
            "w": {"$ref": "#/properties/x"},
        },
    }
    check_tool_definition(tool("refs", parameters), 0)


# ---------------------------------------------------------------------------
# action_verifier and best-of-N


def test_action_verifier_scores() -> None:
    spec = ActionSpec.for_tools(TOOLS)
    verify = action_verifier(spec)
    assert verify("q", hermes("add", {"a": 1, "b": 2})) == 1.0
    assert verify("q", "13") == 1.0
    assert verify("q", hermes("add", {"a": 1})) == 0.0
    assert verify("q", "") == 0.0


def test_action_verifier_check() -> None:
    spec = ActionSpec.for_tools(TOOLS)

    def calls_add(action: Action) -> bool:
        return any(call.name == "add" for call in action.tool_calls)

    verify = action_verifier(spec, calls_add)
    assert verify("q", hermes("add", {"a": 1, "b": 2})) == 1.0
    assert verify("q", hermes("search", {"query": "x"})) == 0.0
    graded = action_verifier(spec, lambda action: 0.25 * len(action.tool_calls))
    assert graded("q", hermes("add", {"a": 1, "b": 2}) * 2) == 0.5
    assert graded("q", "no tool") == 0.0


def test_action_verifier_for_objects() -> None:
    verify = action_verifier(StructuredSpec(PERSON), lambda person: person["age"] >= 18)
    assert verify("q", '{"name": "Ada", "age": 36}') == 1.0
    assert verify("q", '{"name": "Tim", "age": 9}') == 0.0
    assert verify("q", '{"name": "Tim"}') == 0.0


async def test_best_of_n_picks_the_valid_action() -> None:
    spec = ActionSpec.for_tools(TOOLS)
    branches = [
        BranchView(0, hermes("add", {"a": "six", "b": 7}), True),
        BranchView(1, hermes("add", {"a": 6, "b": 7}), True),
        BranchView(2, hermes("delete", {}), True),
    ]
    scored = await score_branches(VerifierScorer(action_verifier(spec)), "q", branches)
    assert [b.score for b in scored] == [0.0, 1.0, 0.0]
    decision = best_of_n_vote(scored, spec)
    assert decision.winner_index == 1


# ---------------------------------------------------------------------------
# majority voting over actions


def test_majority_vote_picks_the_majority_action() -> None:
    spec = ActionSpec.for_tools(TOOLS)
    texts = [
        '{"answer": "13"}',
        "Let me add.\n" + hermes("add", {"a": 6, "b": 7}),
        hermes("add", {"b": 7, "a": 6}),
        '{"tool_calls": [{"name": "add", "arguments": {"a": 6.0, "b": 7}}]}',
        hermes("add", {"a": 6}),  # invalid: casts no vote
        '{"tool_calls": [{"name": "add", "argu',  # cut off: casts no vote
        "13",
    ]
    branches = [BranchView(i, text, finished=True) for i, text in enumerate(texts)]
    decision = majority_vote(branches, spec)
    call_key = 'call:[["add",{"a":6,"b":7}]]'
    assert decision.votes == {call_key: 3.0, "answer:13": 2.0}
    assert decision.voters == 5
    assert decision.winner_index == 1
    assert decision.answer is not None and decision.answer.key == call_key
    winner = parse_action(branches[decision.winner_index].text)
    assert winner.tool_calls == (ToolCall("add", {"a": 6, "b": 7}),)
    assert winner.content == "Let me add."
