"""The tool-use suite ("agent"): seeded tasks, exact tools, and which calls are right."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agentrt.core._errors import ConfigurationError
from agentrt.tasks import SUITE_NAMES, Task, TaskError, is_correct, suite
from agentrt.tasks._tools import (
    ELEMENTS,
    MAX_EXPRESSION_CHARS,
    MAX_MAGNITUDE,
    TOOL_NAMES,
    calculate,
    call_is_right,
    convert,
    expected_call,
    lookup,
    tool_use_tasks,
)

DATA = Path(__file__).resolve().parents[2] / "agentrt" / "tasks" / "data" / "elements.csv"
TOOLS = {"calculate": calculate, "lookup": lookup, "convert": convert}


def _task(tool: str, arguments: dict[str, Any]) -> Task:
    return Task(id="t", prompt="q?", answer="1", meta={"tool": tool, "arguments": arguments})


# -- the generator ------------------------------------------------------------------


def test_the_suite_is_registered_as_agent() -> None:
    assert "agent" in SUITE_NAMES
    assert suite("agent", 4, 9) == tool_use_tasks(4, 9)


def test_same_seed_same_tasks_and_prefix_stable() -> None:
    assert tool_use_tasks(7, 30) == tool_use_tasks(7, 30)
    assert tool_use_tasks(7, 30)[:10] == tool_use_tasks(7, 10)
    assert tool_use_tasks(7, 0) == []
    assert [t.prompt for t in tool_use_tasks(1, 30)] != [t.prompt for t in tool_use_tasks(2, 30)]


def test_each_block_of_three_asks_one_question_per_tool() -> None:
    tasks = tool_use_tasks(3, 60)
    for start in range(0, 60, 3):
        assert sorted(t.meta["tool"] for t in tasks[start : start + 3]) == sorted(TOOL_NAMES)
    assert Counter(t.meta["tool"] for t in tasks) == {name: 20 for name in TOOL_NAMES}
    assert {t.kind for t in tasks} == {"agent"}
    assert [t.id for t in tasks[:2]] == ["agent/3/0", "agent/3/1"]


@pytest.mark.parametrize("seed", [0, 1, 2, 11])
def test_answers_are_the_canonical_calls_exact_results(seed: int) -> None:
    for task in tool_use_tasks(seed, 45):
        call = expected_call(task)
        result = TOOLS[call["tool"]](**call["arguments"])
        assert result == task.meta["expected"]
        assert task.answer_spec == "last_number"
        assert is_correct(task, f"The answer is {result}.")
        assert call_is_right(task, call["tool"], call["arguments"])
        assert task.meta["accepts"]


def test_questions_read_as_their_calls() -> None:
    tasks = {t.meta["tool"]: t for t in tool_use_tasks(5, 3)}
    calc, look, conv = tasks["calculate"], tasks["lookup"], tasks["convert"]
    left, op, right = calc.meta["arguments"]["expression"].split()
    word = {"+": "plus", "-": "minus", "*": "times"}[op]
    assert calc.prompt == f"What is {left} {word} {right}?"
    assert look.meta["arguments"]["name"] in look.prompt
    assert conv.prompt.startswith("How many ")


def test_a_bad_seed_or_count_names_the_suite() -> None:
    with pytest.raises(ConfigurationError, match="agent: count"):
        tool_use_tasks(0, -1)
    with pytest.raises(ConfigurationError, match="agent: seed"):
        tool_use_tasks("x", 3)  # type: ignore[arg-type]


# -- calculate ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("37 * 12", 444),
        ("  482+379 ", 861),
        ("905 - 987", -82),
        ("(3 + 4) * -2", -14),
        ("+5", 5),
        ("2 * (10 - (3 - 1))", 16),
    ],
)
def test_calculate_is_exact(expression: str, value: int) -> None:
    assert calculate(expression) == value


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("7 / 2", "only integers"),
        ("2 ** 8", "only integers"),
        ("1.5 * 2", "not an integer"),
        ("True + 1", "not an integer"),
        ("x * 2", "only integers"),
        ("__import__('os')", "only integers"),
        ("37 x 12", "does not parse"),
        ("", "empty"),
        ("1 + " * 100 + "1", "characters"),
        (" + ".join(["1"] * 40), "too many terms"),
        ("999999999 * 999999999 * 999999999", "goes past"),
        ("1" * 19, "goes past"),
    ],
)
def test_calculate_rejects_what_it_does_not_do(expression: str, names: str) -> None:
    with pytest.raises(ValueError, match=names):
        calculate(expression)


def test_calculate_limits_are_what_they_say() -> None:
    assert calculate(str(MAX_MAGNITUDE)) == MAX_MAGNITUDE
    assert MAX_EXPRESSION_CHARS == 200
    with pytest.raises(ValueError, match="text"):
        calculate(12)  # type: ignore[arg-type]


# -- lookup -------------------------------------------------------------------------


def test_the_table_ships_as_package_data_and_is_read_whole() -> None:
    with DATA.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(ELEMENTS) >= 20
    assert [e.name for e in ELEMENTS] == [r["name"] for r in rows]
    assert len({e.symbol for e in ELEMENTS}) == len(ELEMENTS)
    assert [e.atomic_number for e in ELEMENTS] == sorted(e.atomic_number for e in ELEMENTS)


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("neon", "atomic_number", 10),
        ("Neon", "Atomic Number", 10),
        ("NE", "atomic-number", 10),
        ("gold", "symbol", "Au"),
        ("Fe", "name", "iron"),
        ("chlorine", "group", 17),
        ("potassium", "period", 4),
        ("aluminum", "atomic_number", 13),
        (" sulphur ", "period", 3),
    ],
)
def test_lookup_is_case_insensitive_and_exact(name: str, field: str, value: object) -> None:
    assert lookup(name, field) == value


def test_lookup_errors_say_what_is_known() -> None:
    with pytest.raises(ValueError, match=r"no element named 'unobtainium'.*neon"):
        lookup("unobtainium", "period")
    with pytest.raises(ValueError, match=r"no field 'mass'.*atomic_number"):
        lookup("neon", "mass")
    with pytest.raises(ValueError, match="name must be text"):
        lookup(10, "period")  # type: ignore[arg-type]


# -- convert ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "source", "target", "result"),
    [
        (3.5, "km", "m", 3500),
        (3.5, "kilometres", "Meters", 3500),
        ("3.5", "kilometer", "m", 3500),
        (2500, "g", "kg", 2.5),
        (150, "minutes", "hours", 2.5),
        (0.1, "m", "mm", 100),  # exact on the decimal 0.1, not the float
        (1, "h", "s", 3600),
        (85, "mm", "cm", 8.5),
        (0, "kg", "g", 0),
        (-2, "min", "sec", -120),
    ],
)
def test_convert_is_exact(value: Any, source: str, target: str, result: float) -> None:
    converted = convert(value, source, target)
    assert converted == result
    assert type(converted) is type(result)


@pytest.mark.parametrize(
    ("arguments", "names"),
    [
        ((1, "km", "kg"), "cannot convert length"),
        ((1, "furlong", "m"), "unknown from_unit 'furlong'"),
        ((1, "m", "parsec"), "unknown to_unit"),
        ((float("nan"), "m", "cm"), "finite"),
        ((float("inf"), "m", "cm"), "finite"),
        (("Infinity", "m", "cm"), "finite"),
        (("1e999999999", "m", "cm"), "out of range"),
        (("1e-999999999", "m", "cm"), "out of range"),
        ((10**19, "m", "cm"), "larger than"),
        (("three", "m", "cm"), "must be a number"),
        ((True, "m", "cm"), "must be a number"),
        ((None, "m", "cm"), "must be a number"),
        ((1, 3, "cm"), "from_unit must be text"),
    ],
)
def test_convert_rejects_what_it_does_not_do(arguments: tuple[Any, ...], names: str) -> None:
    with pytest.raises(ValueError, match=names):
        convert(*arguments)


# -- scoring calls --------------------------------------------------------------------


def test_any_expression_with_the_same_value_is_right() -> None:
    task = _task("calculate", {"expression": "37 * 12"})
    assert call_is_right(task, "calculate", {"expression": "12*37"})
    assert call_is_right(task, "calculate", {"expression": "400 + 44"})
    assert not call_is_right(task, "calculate", {"expression": "37 + 12"})
    assert not call_is_right(task, "calculate", {"expression": "37 / 12"})  # rejected: wrong
    assert not call_is_right(task, "lookup", {"expression": "37 * 12"})
    assert not call_is_right(task, "calculate", {"expr": "37 * 12"})
    assert not call_is_right(task, "calculate", {"expression": "37 * 12", "extra": 1})


def test_the_same_element_and_field_is_right() -> None:
    task = _task("lookup", {"name": "neon", "field": "atomic_number"})
    assert call_is_right(task, "lookup", {"name": "Ne", "field": "atomic number"})
    assert call_is_right(task, "lookup", {"field": "atomic_number", "name": "NEON"})
    assert not call_is_right(task, "lookup", {"name": "argon", "field": "atomic_number"})
    assert not call_is_right(task, "lookup", {"name": "neon", "field": "period"})
    assert not call_is_right(task, "lookup", {"name": "neonium", "field": "atomic_number"})


def test_the_same_value_and_units_are_right() -> None:
    task = _task("convert", {"value": 3.5, "from_unit": "km", "to_unit": "m"})
    assert call_is_right(
        task, "convert", {"value": 3.5, "from_unit": "kilometers", "to_unit": "meters"}
    )
    assert call_is_right(task, "convert", {"value": "3.50", "from_unit": "KM", "to_unit": "m"})
    assert not call_is_right(task, "convert", {"value": 3500, "from_unit": "m", "to_unit": "m"})
    assert not call_is_right(task, "convert", {"value": 3.5, "from_unit": "m", "to_unit": "km"})
    assert not call_is_right(task, "convert", {"value": 35, "from_unit": "km", "to_unit": "m"})
    assert not call_is_right(task, "convert", ["3.5", "km", "m"])  # type: ignore[arg-type]


def test_a_task_without_a_call_is_a_task_error() -> None:
    with pytest.raises(TaskError, match="meta\\['tool'\\]") as info:
        expected_call(Task(id="t", prompt="q?", answer="1"))
    assert info.value.field == "meta.tool"
    with pytest.raises(TaskError, match="meta\\['arguments'\\]"):
        expected_call(_task("lookup", "neon"))  # type: ignore[arg-type]
