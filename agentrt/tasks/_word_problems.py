"""Word problems for a tool-using agent: 1-4 operations on larger numbers.

The numbers are big enough (two and three digits, products in the
thousands) that a small model does better calling a calculator than doing
the sums in its head. Operations apply left to right to a running count that
stays a positive integer: subtraction never reaches zero, division is exact.
``meta["expression"]`` is the fully parenthesised calculation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

from agentrt.tasks._seeding import check_count, check_range, rng_for, task_id
from agentrt.tasks._task import Task

__all__ = ["MAX_OPERATIONS", "Operator", "apply_operator", "calculator_word_problems"]

Operator = Literal["+", "-", "*", "/"]
MAX_OPERATIONS = 6


@dataclass(frozen=True)
class _Theme:
    opening: str  # "{n}" is the starting count
    unit: str
    phrases: dict[Operator, str]  # "{n}" is the operand


_THEMES: tuple[_Theme, ...] = (
    _Theme(
        "A warehouse holds {n} boxes.",
        "boxes",
        {
            "+": "A truck delivers {n} more boxes.",
            "-": "{n} boxes are shipped to customers.",
            "*": "The stock grows to {n} times as many boxes.",
            "/": "The boxes are split evenly across {n} stores, and the warehouse keeps "
            "one store's share.",
        },
    ),
    _Theme(
        "A library has {n} books.",
        "books",
        {
            "+": "It buys {n} new books.",
            "-": "{n} books are withdrawn.",
            "*": "A donation multiplies the collection by {n}.",
            "/": "The books are divided equally among {n} branches, and this library keeps "
            "one branch's share.",
        },
    ),
    _Theme(
        "A farm collects {n} eggs.",
        "eggs",
        {
            "+": "The hens lay {n} more eggs.",
            "-": "{n} eggs are sold at the market.",
            "*": "Over the season the total becomes {n} times as large.",
            "/": "The eggs are packed equally into {n} crates, and one crate is kept.",
        },
    ),
    _Theme(
        "A savings jar holds {n} coins.",
        "coins",
        {
            "+": "Someone adds {n} coins.",
            "-": "{n} coins are spent.",
            "*": "A bonus makes the savings {n} times bigger.",
            "/": "The coins are shared equally among {n} friends, and the jar keeps one share.",
        },
    ),
)


def apply_operator(left: int, op: Operator, right: int) -> int:
    """``left op right`` on integers; ``/`` must divide exactly."""
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    quotient, remainder = divmod(left, right)
    if remainder:
        raise ValueError(f"{left} / {right} is not exact")
    return quotient


def _draw_operation(rng: random.Random, value: int) -> tuple[Operator, int]:
    divisors = [d for d in range(2, 13) if value % d == 0 and value // d >= 2]
    choices: list[Operator] = ["+", "*"]
    if value > 2:
        choices.append("-")
    if divisors:
        choices.append("/")
    op = rng.choice(choices)
    if op == "+":
        return op, rng.randint(11, 499)
    if op == "-":
        return op, rng.randint(1, min(value - 1, 499))
    if op == "*":
        return op, rng.randint(2, 12)
    return op, rng.choice(divisors)


def calculator_word_problems(
    seed: int, count: int, operations: int | tuple[int, int] = (1, 4)
) -> list[Task]:
    """``count`` word problems with a number of operations fixed or drawn from ``(low, high)``.

    The answer is the exact final integer, read as the last number of the
    reply; ``meta["operations"]`` lists ``{"op", "operand", "result"}`` per step.
    """
    family = "calculator"
    check_count(family, count)
    low, high = check_range(family, "operations", operations, 1, MAX_OPERATIONS)
    rng = rng_for(family, seed)
    tasks = []
    for index in range(count):
        theme = rng.choice(_THEMES)
        start = value = rng.randint(24, 960)
        expression = str(start)
        sentences = [theme.opening.format(n=start)]
        records: list[dict[str, Any]] = []
        for _ in range(rng.randint(low, high)):
            op, operand = _draw_operation(rng, value)
            value = apply_operator(value, op, operand)
            expression = f"({expression} {op} {operand})"
            sentences.append(theme.phrases[op].format(n=operand))
            records.append({"op": op, "operand": operand, "result": value})
        sentences.append(f"How many {theme.unit} are there now? End with the number.")
        tasks.append(
            Task(
                id=task_id(family, seed, index),
                prompt=" ".join(sentences),
                answer=str(value),
                kind=family,
                meta={
                    "start": start,
                    "operations": records,
                    "expression": expression[1:-1],
                },
            )
        )
    return tasks
