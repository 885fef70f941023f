"""Tool-use tasks: each is answered by exactly one call to one of three exact tools.

The tools are pure and bounded, so a graph that calls them and a benchmark
that scores the calls share one truth:

- :func:`calculate` — ``+ - *`` on integers, parsed with :mod:`ast` (nothing
  is evaluated but integer literals and those three operators);
- :func:`lookup` — a field of one of the chemical elements in
  ``agentrt/tasks/data/elements.csv`` (name or symbol, any case);
- :func:`convert` — a value between units of one dimension (km/m/cm/mm,
  kg/g, hours/minutes/seconds), computed on exact fractions.

Unknown inputs raise ``ValueError`` with a message a model can act on.
:func:`tool_use_tasks` draws the suite ``"agent"``; each task's ``meta``
holds the canonical call (``tool``, ``arguments``), the tool's ``expected``
result and which other calls are ``accepts``-ed as right
(:func:`call_is_right`).
"""

from __future__ import annotations

import ast
import csv
import io
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation
from fractions import Fraction
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal

from agentrt.tasks._seeding import check_count, rng_for, task_id
from agentrt.tasks._task import Task, TaskError
from agentrt.tts._answers import canonical_number

__all__ = [
    "ELEMENTS",
    "ELEMENT_FIELDS",
    "MAX_EXPRESSION_CHARS",
    "MAX_MAGNITUDE",
    "TOOL_NAMES",
    "UNITS",
    "Element",
    "ToolName",
    "calculate",
    "call_is_right",
    "convert",
    "expected_call",
    "lookup",
    "tool_use_tasks",
]

ToolName = Literal["calculate", "lookup", "convert"]
TOOL_NAMES: tuple[ToolName, ...] = ("calculate", "lookup", "convert")
FAMILY = "agent"

MAX_EXPRESSION_CHARS = 200
"""Longest expression :func:`calculate` parses."""
MAX_MAGNITUDE = 10**18
"""Largest absolute value :func:`calculate` and :func:`convert` take or give, at any step."""
_MAX_NODES = 64  # syntax-tree nodes of one expression

# -- calculate --------------------------------------------------------------------

_BINARY: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
}
_ALLOWED = "only integers, + - * and parentheses are allowed"


def _bounded(value: int, expression: str) -> int:
    if abs(value) > MAX_MAGNITUDE:
        raise ValueError(f"calculate: {expression!r} goes past {MAX_MAGNITUDE:.0e} in size")
    return value


def _evaluate(node: ast.expr, expression: str) -> int:
    if isinstance(node, ast.Constant):
        if type(node.value) is not int:
            raise ValueError(f"calculate: {_ALLOWED}; {node.value!r} is not an integer")
        return _bounded(node.value, expression)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _evaluate(node.operand, expression)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _evaluate(node.left, expression)
        right = _evaluate(node.right, expression)
        return _bounded(_BINARY[type(node.op)](left, right), expression)
    raise ValueError(f"calculate: {_ALLOWED}; got {expression!r}")


def calculate(expression: str) -> int:
    """The exact integer value of ``expression`` (``"37 * 12"`` -> ``444``).

    Only integer literals, ``+``, ``-``, ``*``, unary signs and parentheses
    are accepted; the text is at most :data:`MAX_EXPRESSION_CHARS` long and no
    step may go past :data:`MAX_MAGNITUDE`, so the work is bounded.
    """
    if not isinstance(expression, str):
        raise ValueError(f"calculate: expression must be text, got {expression!r}")
    text = expression.strip()
    if not text:
        raise ValueError("calculate: expression is empty")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ValueError(
            f"calculate: expression is {len(text)} characters, at most "
            f"{MAX_EXPRESSION_CHARS} are allowed"
        )
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"calculate: {_ALLOWED}; {expression!r} does not parse") from exc
    if sum(1 for _ in ast.walk(tree)) > _MAX_NODES:
        raise ValueError(f"calculate: {expression!r} has too many terms")
    return _evaluate(tree.body, expression)


# -- lookup -----------------------------------------------------------------------


@dataclass(frozen=True)
class Element:
    """One row of ``elements.csv``."""

    name: str
    symbol: str
    atomic_number: int
    period: int
    group: int


ELEMENT_FIELDS: tuple[str, ...] = ("name", "symbol", "atomic_number", "period", "group")
"""The fields :func:`lookup` answers."""
_NUMERIC_FIELDS: tuple[str, ...] = ("atomic_number", "period", "group")
_NAME_ALIASES = {"aluminum": "aluminium", "sulphur": "sulfur"}


def _load_elements() -> tuple[Element, ...]:
    text = resources.files("agentrt.tasks").joinpath("data", "elements.csv").read_text("utf-8")
    return tuple(
        Element(
            name=row["name"],
            symbol=row["symbol"],
            atomic_number=int(row["atomic_number"]),
            period=int(row["period"]),
            group=int(row["group"]),
        )
        for row in csv.DictReader(io.StringIO(text))
    )


ELEMENTS: tuple[Element, ...] = _load_elements()
"""The table :func:`lookup` reads, in atomic-number order."""
_BY_KEY: Mapping[str, Element] = MappingProxyType(
    {key: e for e in ELEMENTS for key in (e.name.lower(), e.symbol.lower())}
)


def _element(name: object) -> Element:
    if not isinstance(name, str):
        raise ValueError(f"lookup: name must be text, got {name!r}")
    key = name.strip().lower()
    found = _BY_KEY.get(_NAME_ALIASES.get(key, key))
    if found is None:
        known = ", ".join(e.name for e in ELEMENTS)
        raise ValueError(f"lookup: no element named {name!r}; known elements: {known}")
    return found


def _field(field: object) -> str:
    if not isinstance(field, str):
        raise ValueError(f"lookup: field must be text, got {field!r}")
    key = field.strip().lower().replace(" ", "_").replace("-", "_")
    if key not in ELEMENT_FIELDS:
        raise ValueError(f"lookup: no field {field!r}; fields are {', '.join(ELEMENT_FIELDS)}")
    return key


def lookup(name: str, field: str) -> int | str:
    """``field`` of the element ``name`` (``lookup("neon", "atomic_number")`` -> ``10``).

    ``name`` is an element's name or symbol, in any case; ``field`` one of
    :data:`ELEMENT_FIELDS` (spaces or hyphens for underscores are fine).
    """
    element = _element(name)
    value: int | str = getattr(element, _field(field))
    return value


# -- convert ----------------------------------------------------------------------

UNITS: Mapping[str, tuple[str, int]] = MappingProxyType(
    {
        "km": ("length", 1_000_000),
        "m": ("length", 1_000),
        "cm": ("length", 10),
        "mm": ("length", 1),
        "kg": ("mass", 1_000),
        "g": ("mass", 1),
        "hours": ("time", 3_600),
        "minutes": ("time", 60),
        "seconds": ("time", 1),
    }
)
"""Canonical unit -> (dimension, size in the dimension's smallest unit)."""

_UNIT_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        alias: unit
        for unit, aliases in {
            "km": ("kilometer", "kilometers", "kilometre", "kilometres"),
            "m": ("meter", "meters", "metre", "metres"),
            "cm": ("centimeter", "centimeters", "centimetre", "centimetres"),
            "mm": ("millimeter", "millimeters", "millimetre", "millimetres"),
            "kg": ("kilogram", "kilograms", "kilogramme", "kilogrammes", "kilo", "kilos"),
            "g": ("gram", "grams", "gramme", "grammes"),
            "hours": ("h", "hr", "hrs", "hour"),
            "minutes": ("min", "mins", "minute"),
            "seconds": ("s", "sec", "secs", "second"),
        }.items()
        for alias in (unit, *aliases)
    }
)


def _unit(unit: object, role: str) -> str:
    if not isinstance(unit, str):
        raise ValueError(f"convert: {role} must be text, got {unit!r}")
    found = _UNIT_ALIASES.get(unit.strip().lower().rstrip("."))
    if found is None:
        raise ValueError(f"convert: unknown {role} {unit!r}; units are {', '.join(UNITS)}")
    return found


_SMALLEST_ADJUSTED = -12
_LARGEST_ADJUSTED = 17  # below MAX_MAGNITUDE (1e18)
_MAX_DIGITS = 40


def _exact(value: object) -> Fraction:
    """``value`` (an int, a float or a plain numeric text) as the decimal it is written as."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"convert: value must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"convert: value must be finite, got {value!r}")
    if isinstance(value, int):
        if abs(value) > MAX_MAGNITUDE:
            raise ValueError(f"convert: value {value!r} is larger than {MAX_MAGNITUDE:.0e}")
        decimal = Decimal(value)
    else:
        try:
            decimal = Decimal(value.strip() if isinstance(value, str) else repr(value))
        except InvalidOperation as exc:
            raise ValueError(f"convert: value must be a number, got {value!r}") from exc
    if not decimal.is_finite():
        raise ValueError(f"convert: value must be a finite number, got {value!r}")
    # Bounded before it becomes a fraction: "1e999999999" would be a billion digits.
    if decimal and not _SMALLEST_ADJUSTED <= decimal.adjusted() <= _LARGEST_ADJUSTED:
        raise ValueError(
            f"convert: value {value!r} is out of range (1e{_SMALLEST_ADJUSTED} .. "
            f"{MAX_MAGNITUDE:.0e})"
        )
    if len(decimal.as_tuple().digits) > _MAX_DIGITS:
        raise ValueError(f"convert: value {value!r} has more than {_MAX_DIGITS} digits")
    return Fraction(decimal)


def _convert_exact(value: object, from_unit: object, to_unit: object) -> Fraction:
    source, target = _unit(from_unit, "from_unit"), _unit(to_unit, "to_unit")
    (source_kind, source_size), (target_kind, target_size) = UNITS[source], UNITS[target]
    if source_kind != target_kind:
        raise ValueError(
            f"convert: cannot convert {source_kind} ({from_unit!r}) to {target_kind} ({to_unit!r})"
        )
    return _exact(value) * source_size / target_size


def _as_number(exact: Fraction) -> int | float:
    return exact.numerator if exact.denominator == 1 else float(exact)


def convert(value: float, from_unit: str, to_unit: str) -> int | float:
    """``value`` in ``from_unit`` as ``to_unit`` (``convert(3.5, "km", "m")`` -> ``3500``).

    Units: km, m, cm, mm; kg, g; hours, minutes, seconds (and their full names,
    singular or plural). The arithmetic is exact on the decimal ``value`` is
    written as; an integral result is an ``int``, any other the nearest float
    (exact for every result a task of this suite has: a short decimal).
    """
    return _as_number(_convert_exact(value, from_unit, to_unit))


# -- the tasks --------------------------------------------------------------------

_ACCEPTS: Mapping[str, str] = MappingProxyType(
    {
        "calculate": "any expression with the same value",
        "lookup": "the same element (name or symbol, any case) and field",
        "convert": "the same value and units (any name of each unit)",
    }
)

_UNIT_WORDS = {
    "km": ("kilometer", "kilometers"),
    "m": ("meter", "meters"),
    "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"),
    "kg": ("kilogram", "kilograms"),
    "g": ("gram", "grams"),
    "hours": ("hour", "hours"),
    "minutes": ("minute", "minutes"),
    "seconds": ("second", "seconds"),
}
# (from, to): to a smaller unit the value has at most one decimal (3.5 km);
# to a larger one it is a multiple of half the larger unit (2500 g = 2.5 kg).
_CONVERSIONS: tuple[tuple[str, str], ...] = (
    ("km", "m"), ("m", "cm"), ("cm", "mm"), ("m", "mm"), ("kg", "g"),
    ("hours", "minutes"), ("minutes", "seconds"), ("hours", "seconds"),
    ("m", "km"), ("g", "kg"), ("minutes", "hours"), ("seconds", "minutes"), ("mm", "cm"),
)  # fmt: skip
_FIELD_QUESTIONS = {
    "atomic_number": "What is the atomic number of {name}?",
    "period": "In which period of the periodic table is {name}?",
    "group": "In which group of the periodic table is {name}?",
}
_WORDS = {"+": "plus", "-": "minus", "*": "times"}


def _exact_text(exact: Fraction) -> str:
    """The canonical decimal of a fraction whose decimal expansion ends."""
    digits = Context(prec=64).divide(Decimal(exact.numerator), Decimal(exact.denominator))
    text = canonical_number(f"{digits:f}")
    assert text is not None and Fraction(Decimal(text)) == exact, exact
    return text


def _number_text(value: int | float) -> str:
    return _exact_text(Fraction(Decimal(repr(value))))


def _calculation(rng: random.Random) -> tuple[str, dict[str, Any], int]:
    op = rng.choice(("+", "-", "*"))
    if op == "*":
        left, right = rng.randint(11, 99), rng.randint(3, 99)
    else:
        left, right = rng.randint(100, 999), rng.randint(11, 99 if op == "-" else 999)
    expression = f"{left} {op} {right}"
    return (
        f"What is {left} {_WORDS[op]} {right}?",
        {"expression": expression},
        calculate(expression),
    )


def _lookup_question(rng: random.Random) -> tuple[str, dict[str, Any], int]:
    element = rng.choice(ELEMENTS)
    field = rng.choice(_NUMERIC_FIELDS)
    value = lookup(element.name, field)
    assert isinstance(value, int)
    question = _FIELD_QUESTIONS[field].format(name=element.name)
    return question, {"name": element.name, "field": field}, value


def _conversion(rng: random.Random) -> tuple[str, dict[str, Any], int | float]:
    source, target = rng.choice(_CONVERSIONS)
    ratio = Fraction(UNITS[source][1], UNITS[target][1])
    value: int | float
    if ratio > 1:  # to a smaller unit: a whole number 1-20, or 0.5-20 in tenths
        tenths = rng.randint(1, 20) * 10 if rng.random() < 0.5 else rng.randint(5, 200)
        value = tenths // 10 if tenths % 10 == 0 else tenths / 10
    else:  # to a larger unit: a multiple of half of it
        value = int(rng.randint(1, 40) * Fraction(1, 2) / ratio)
    result = convert(value, source, target)
    singular, plural = _UNIT_WORDS[source]
    amount = _number_text(value)
    question = (
        f"How many {_UNIT_WORDS[target][1]} are in {amount} "
        f"{singular if amount == '1' else plural}?"
    )
    return question, {"value": value, "from_unit": source, "to_unit": target}, result


_DRAW: Mapping[str, Callable[[random.Random], tuple[str, dict[str, Any], int | float]]] = (
    MappingProxyType(
        {"calculate": _calculation, "lookup": _lookup_question, "convert": _conversion}
    )
)


def tool_use_tasks(seed: int, count: int) -> list[Task]:
    """``count`` questions that each need one tool call, spread evenly over the tools.

    Each block of three tasks asks one question per tool, in a seeded order
    ("What is 37 times 12?", "What is the atomic number of neon?", "How many
    meters are in 3.5 kilometers?"). The answer is the tool's exact result,
    read as the last number of a reply; ``meta`` holds the canonical call
    (``tool``, ``arguments``), its ``expected`` result and the ``accepts`` rule
    of :func:`call_is_right`. Task ``i`` of a seed is the same whatever
    ``count`` is.
    """
    check_count(FAMILY, count)
    rng = rng_for(FAMILY, seed)
    tasks: list[Task] = []
    order: list[ToolName] = []
    for index in range(count):
        if not order:
            order = rng.sample(TOOL_NAMES, len(TOOL_NAMES))
        tool = order.pop()
        question, arguments, expected = _DRAW[tool](rng)
        tasks.append(
            Task(
                id=task_id(FAMILY, seed, index),
                prompt=question,
                answer=_number_text(expected),
                kind=FAMILY,
                meta={
                    "tool": tool,
                    "arguments": arguments,
                    "expected": expected,
                    "accepts": _ACCEPTS[tool],
                },
            )
        )
    return tasks


# -- scoring calls ----------------------------------------------------------------


def expected_call(task: Task) -> dict[str, Any]:
    """The canonical call that answers ``task``: ``{"tool": ..., "arguments": {...}}``."""
    tool = task.meta.get("tool")
    arguments = task.meta.get("arguments")
    if tool not in TOOL_NAMES:
        raise TaskError(
            "meta.tool",
            tool,
            f"Task.meta['tool'] must be one of {list(TOOL_NAMES)}, got {tool!r} (task {task.id!r})",
        )
    if not isinstance(arguments, dict):
        raise TaskError(
            "meta.arguments",
            arguments,
            f"Task.meta['arguments'] must be an object, got {arguments!r} (task {task.id!r})",
        )
    return {"tool": tool, "arguments": dict(arguments)}


def _same_call(tool: str, given: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    if tool == "calculate":
        return calculate(given["expression"]) == calculate(wanted["expression"])
    if tool == "lookup":
        return _element(given["name"]) == _element(wanted["name"]) and _field(
            given["field"]
        ) == _field(wanted["field"])
    return (
        _unit(given["from_unit"], "from_unit") == _unit(wanted["from_unit"], "from_unit")
        and _unit(given["to_unit"], "to_unit") == _unit(wanted["to_unit"], "to_unit")
        and _exact(given["value"]) == _exact(wanted["value"])
    )


def call_is_right(task: Task, name: str, arguments: Mapping[str, Any]) -> bool:
    """Whether calling tool ``name`` with ``arguments`` answers ``task`` as its
    canonical call does (``meta["accepts"]`` says how: any expression of the same
    value; the same element and field; the same value and units).

    The argument names must be exactly the tool's; arguments the tool would
    reject make the call wrong, never an error.
    """
    wanted = expected_call(task)
    if name != wanted["tool"] or not isinstance(arguments, Mapping):
        return False
    if set(arguments) != set(wanted["arguments"]):
        return False
    try:
        return _same_call(name, arguments, wanted["arguments"])
    except ValueError:
        return False
