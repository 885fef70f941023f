"""Answer specs: extraction, canonical keys, and bounded work on hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrt.core._errors import ConfigurationError
from agentrt.tts._answers import (
    Answer,
    AnswerSpec,
    BoxedAnswer,
    ChoiceLetter,
    JsonField,
    LastNumber,
    NormalisedString,
    canonical_number,
)
from agentrt.tts._math_answers import MathEquivalent, parse_math

ALL_SPECS: list[AnswerSpec] = [
    LastNumber(),
    BoxedAnswer(),
    ChoiceLetter(),
    NormalisedString(),
    NormalisedString(last_line=True),
    JsonField("answer"),
    MathEquivalent(),
    MathEquivalent(LastNumber()),
]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("The answer is 7.", "7"),
        ("3 plus 4 is 7", "7"),
        ("It costs $1,234.50 in total", "1234.5"),
        ("x = -3", "-3"),
        ("from 3-5 we get", "5"),
        ("7.0", "7"),
        ("-0", "0"),
        ("0.250", "0.25"),
    ],
)
def test_last_number(text: str, key: str) -> None:
    found = LastNumber().extract(text)
    assert found is not None and found.key == key
    assert found.text.replace(",", "") in text.replace(",", "")


@pytest.mark.parametrize("text", ["", "no digits here", "...", "-"])
def test_last_number_none(text: str) -> None:
    assert LastNumber().extract(text) is None


def test_canonical_number_refuses_exponents_and_junk() -> None:
    assert canonical_number("1e5") is None
    assert canonical_number("1.2.3") is None
    assert canonical_number("9" * 300) is None
    assert canonical_number("100") == "100"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (r"so \boxed{7}.", "7"),
        (r"\boxed{ \dfrac{1}{2} }", r"\frac{1}{2}"),
        (r"first \boxed{3} then \boxed{\left( 4 \right)}", "(4)"),
        (r"\boxed{x^{2}+1}", "x^{2}+1"),
        (r"\fbox{A}", "A"),
        (r"\boxed{7.50}", "7.5"),
    ],
)
def test_boxed(text: str, key: str) -> None:
    found = BoxedAnswer().extract(text)
    assert found is not None and found.key == key


@pytest.mark.parametrize("text", [r"\boxed{unclosed", "no box", r"\boxed{}", r"\boxed{ }"])
def test_boxed_none(text: str) -> None:
    assert BoxedAnswer().extract(text) is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("B", "B"),
        ("(c)".upper(), "C"),
        ("I think it's (A), no wait. Answer: (D)", "D"),
        ("The answer is B because A is wrong", "B"),
        ("Options (A) and (C) look close; I pick (C)", "C"),
        ("**D**", "D"),
    ],
)
def test_choice_letter(text: str, key: str) -> None:
    found = ChoiceLetter().extract(text)
    assert found is not None and found.key == key


def test_choice_letter_none_and_custom_choices() -> None:
    assert ChoiceLetter().extract("Apples are red") is None
    assert ChoiceLetter(choices="ABCDE").extract("answer: E") == Answer("E", "E")
    with pytest.raises(ConfigurationError, match="choices"):
        ChoiceLetter(choices="ab")


def test_normalised_string() -> None:
    spec = NormalisedString()
    quoted, plain = spec.extract('  "Paris."  '), spec.extract("paris")
    assert quoted is not None and plain is not None and quoted.key == plain.key == "paris"
    assert spec.extract("New   York\nCity") == Answer("new york city", "New   York\nCity")
    assert NormalisedString(last_line=True).extract("Thinking...\n\nParis\n") == Answer(
        "paris", "Paris"
    )
    assert spec.extract("  ...  ") is None


def test_json_field() -> None:
    spec = JsonField("result.value")
    assert spec.extract('{"result": {"value": 3}}') == Answer("3", "3")
    fenced = 'Sure:\n```json\n{"result": {"value": "Paris"}}\n```'
    assert spec.extract(fenced) == Answer('"Paris"', "Paris")
    assert JsonField("items.1").extract('{"items": [1, {"b": 2, "a": 1}]}') == Answer(
        '{"a":1,"b":2}', '{"a":1,"b":2}'
    )
    assert spec.extract('{"result": {}}') is None
    assert spec.extract("not json") is None
    assert JsonField("a").extract('{"a": null}') == Answer("null", "null")
    with pytest.raises(ConfigurationError, match="path"):
        JsonField("a..b")


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (r"\boxed{\frac{1}{2}}", r"\boxed{0.5}"),
        (r"\boxed{2\sqrt{2}}", r"\boxed{\sqrt{8}}"),
        (r"\boxed{(x+1)^2}", r"\boxed{x^2+2x+1}"),
        (r"\boxed{\frac{\pi}{2}}", r"\boxed{0.5\pi}"),
        (r"\boxed{6/4}", r"\boxed{1.5}"),
    ],
)
def test_math_equivalent_keys_match(left: str, right: str) -> None:
    spec = MathEquivalent()
    a, b = spec.extract(left), spec.extract(right)
    assert a is not None and b is not None and a.key == b.key


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (r"\boxed{\frac{1}{3}}", r"\boxed{0.333}"),
        (r"\boxed{x+1}", r"\boxed{y+1}"),
        (r"\boxed{\sqrt{2}}", r"\boxed{1.414}"),
    ],
)
def test_math_equivalent_keys_differ(left: str, right: str) -> None:
    spec = MathEquivalent()
    a, b = spec.extract(left), spec.extract(right)
    assert a is not None and b is not None and a.key != b.key


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os')",
        "9^9^9^9",
        "((2^100)^100)^100",
        "(" * 100 + "1" + ")" * 100,
        "1/0",
        "x^(10^9)",
        r"\int_0^1 x",
    ],
)
def test_parse_math_refuses_what_it_cannot_bound(expression: str) -> None:
    assert parse_math(expression) is None


def test_math_equivalent_keeps_inner_key_when_unparsable() -> None:
    assert MathEquivalent().extract(r"\boxed{\text{blue}}") == Answer(
        r"\text{blue}", r"\text{blue}"
    )
    assert MathEquivalent(LastNumber()).extract("it is 12") == Answer("math:12/1", "12")


def test_specs_declare_partial_support() -> None:
    assert not LastNumber().from_partial
    assert LastNumber(from_partial=True).from_partial
    assert MathEquivalent(LastNumber(from_partial=True)).from_partial
    for spec in ALL_SPECS:
        assert isinstance(spec, AnswerSpec)


def test_max_chars_is_validated() -> None:
    with pytest.raises(ConfigurationError, match="max_chars"):
        LastNumber(max_chars=0)


# -- hostile input: bounded work -------------------------------------------------

HOSTILE_FRAGMENTS = [
    "\\boxed{",
    "{",
    "}",
    "1,",
    "1.",
    "-",
    "(",
    "(A",
    "answer ",
    "a" * 7,
    '{"answer": ',
    "[",
    "\\frac{",
    "^",
    " ",
    "9",
]


@settings(max_examples=40, deadline=None)
@given(
    fragments=st.lists(st.sampled_from(HOSTILE_FRAGMENTS), min_size=1, max_size=4),
    repeat=st.integers(min_value=1_000, max_value=40_000),
)
@pytest.mark.timeout(60)
def test_hostile_repetitions_finish_and_match_their_tail(fragments: list[str], repeat: int) -> None:
    """Pathological repetitions (up to ~1.5 MB) are read in bounded time: each spec
    looks only at the last max_chars characters, so the answer of the whole
    text is the answer of its tail."""
    text = "".join(fragments) * repeat
    for spec in ALL_SPECS:
        found = spec.extract(text)
        assert found is None or isinstance(found, Answer)
        assert found == spec.extract(text[-100_000:])


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=400))
def test_any_text_gives_an_answer_or_none(text: str) -> None:
    for spec in ALL_SPECS:
        found = spec.extract(text)
        assert found is None or (isinstance(found.key, str) and len(found.key) <= 1_000 + 80)


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet="0123456789+-*/^(){}.xyz\\frac\\sqrt\\pi ", max_size=200))
def test_parse_math_is_total_on_its_alphabet(text: str) -> None:
    expr = parse_math(text)
    if expr is not None:
        found = MathEquivalent().extract(f"\\boxed{{{text}}}")
        assert found is not None


@given(number=st.integers(min_value=-(10**30), max_value=10**30))
def test_last_number_reads_any_integer(number: int) -> None:
    found = LastNumber().extract(f"so the result is {number}.")
    assert found is not None and found.key == str(number)


@given(number=st.integers(min_value=0, max_value=10**12))
def test_thousands_separators_do_not_change_the_key(number: int) -> None:
    assert LastNumber().extract(f"{number:,}") == Answer(str(number), f"{number:,}")
