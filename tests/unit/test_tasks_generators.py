"""Task generators: determinism per seed, exact answers recomputed from meta."""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from typing import Any

import pytest

from agentrt.core._errors import ConfigurationError
from agentrt.tasks import (
    ARITHMETIC_FAMILIES,
    Task,
    apply_operator,
    calculator_word_problems,
    map_reduce_sums,
    multi_step_arithmetic,
    single_step_addition,
    single_step_arithmetic,
)

Generator = Callable[[int, int], list[Task]]

GENERATORS: dict[str, Generator] = {
    **{
        family: functools.partial(single_step_arithmetic, difficulty=d)
        for d, family in enumerate(ARITHMETIC_FAMILIES)
    },
    "multi-step": multi_step_arithmetic,
    "map-reduce": map_reduce_sums,
    "calculator": calculator_word_problems,
}


def _apply(left: int, op: str, right: int) -> int:
    return left + right if op == "plus" else left - right


@pytest.mark.parametrize("name", GENERATORS)
def test_same_seed_same_tasks_and_prefix_stable(name: str) -> None:
    make = GENERATORS[name]
    assert make(7, 30) == make(7, 30)
    assert make(7, 30)[:10] == make(7, 10)
    assert make(7, 0) == []


@pytest.mark.parametrize("name", GENERATORS)
def test_different_seeds_differ(name: str) -> None:
    make = GENERATORS[name]
    first, second = make(1, 30), make(2, 30)
    assert [t.prompt for t in first] != [t.prompt for t in second]
    assert [t.id for t in first] != [t.id for t in second]


@pytest.mark.parametrize("name", GENERATORS)
def test_ids_unique_kind_and_spec(name: str) -> None:
    tasks = GENERATORS[name](3, 200)
    assert len({t.id for t in tasks}) == 200
    assert {t.kind for t in tasks} == {name}
    assert {t.answer_spec for t in tasks} == {"last_number"}
    assert tasks[4].id == f"{name}/3/4"


def test_generators_do_not_touch_the_global_rng() -> None:
    import random

    random.seed(99)
    expected = random.random()
    random.seed(99)
    for make in GENERATORS.values():
        make(5, 20)
    assert random.random() == expected


def test_single_step_addition_is_single_digit_plus() -> None:
    tasks = single_step_addition(0, 300)
    assert tasks == single_step_arithmetic(0, 300, 0)
    for task in tasks:
        left, right = task.meta["left"], task.meta["right"]
        assert 1 <= left <= 9 and 1 <= right <= 9
        assert task.prompt == f"What is {left} plus {right}?"
        assert task.answer == str(left + right)
    assert len({(t.meta["left"], t.meta["right"]) for t in tasks}) > 60


@pytest.mark.parametrize(
    ("difficulty", "op", "left_range", "right_range"),
    [
        (0, "plus", (1, 9), (1, 9)),
        (1, "minus", (2, 9), (1, 9)),
        (2, "plus", (10, 99), (1, 9)),
        (3, "minus", (10, 99), (1, 9)),
    ],
)
def test_difficulty_families(
    difficulty: int, op: str, left_range: tuple[int, int], right_range: tuple[int, int]
) -> None:
    for task in single_step_arithmetic(11, 200, difficulty):
        meta = task.meta
        assert meta["op"] == op and meta["difficulty"] == difficulty
        assert left_range[0] <= meta["left"] <= left_range[1]
        assert right_range[0] <= meta["right"] <= right_range[1]
        assert task.answer == str(_apply(meta["left"], op, meta["right"]))
        assert int(task.answer) >= 0
        assert task.prompt == f"What is {meta['left']} {op} {meta['right']}?"


def test_multi_step_steps_chain_to_the_answer() -> None:
    tasks = multi_step_arithmetic(4, 300)
    assert {len(t.meta["steps"]) for t in tasks} == {2, 3, 4}
    for task in tasks:
        value = task.meta["start"]
        for step in task.meta["steps"]:
            assert step["left"] == value
            value = _apply(value, step["op"], step["right"])
            assert value >= 0
            assert step["answer"] == str(value)
            assert step["question"] == f"What is {step['left']} {step['op']} {step['right']}?"
        assert task.answer == str(value)
        assert task.prompt.startswith(f"Start with {task.meta['start']}. ")
        assert task.prompt.endswith(" What is the result?")


def test_multi_step_prompt_wording() -> None:
    task = next(
        t
        for t in multi_step_arithmetic(0, 200, steps=2)
        if [s["op"] for s in t.meta["steps"]] == ["plus", "plus"]
    )
    first, second = task.meta["steps"]
    assert task.prompt == (
        f"Start with {first['left']}. Add {first['right']}. "
        f"Then add {second['right']}. What is the result?"
    )


def test_multi_step_fixed_step_count() -> None:
    assert {len(t.meta["steps"]) for t in multi_step_arithmetic(0, 50, steps=3)} == {3}


def test_map_reduce_sub_questions_sum_to_the_answer() -> None:
    tasks = map_reduce_sums(8, 300)
    assert {len(t.meta["sub_questions"]) for t in tasks} == {2, 3, 4, 5}
    for task in tasks:
        subs: list[dict[str, Any]] = task.meta["sub_questions"]
        for sub in subs:
            assert sub["answer"] == str(sub["left"] + sub["right"])
        assert task.answer == str(sum(int(s["answer"]) for s in subs))
        assert task.prompt == " ".join([*(s["question"] for s in subs), "Add up the answers."])
    assert {len(t.meta["sub_questions"]) for t in map_reduce_sums(8, 20, parts=2)} == {2}


def test_calculator_operations_recompute_the_answer() -> None:
    tasks = calculator_word_problems(5, 300)
    assert {len(t.meta["operations"]) for t in tasks} == {1, 2, 3, 4}
    assert {op["op"] for t in tasks for op in t.meta["operations"]} == {"+", "-", "*", "/"}
    for task in tasks:
        value = task.meta["start"]
        for step in task.meta["operations"]:
            value = apply_operator(value, step["op"], step["operand"])
            assert value > 0 and step["result"] == value
        assert task.answer == str(value)
        assert _evaluate(ast.parse(task.meta["expression"], mode="eval").body) == value
        assert str(task.meta["start"]) in task.prompt
        assert task.prompt.endswith("End with the number.")


_AST_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


def _evaluate(node: ast.expr) -> int:
    """The fully parenthesised integer expression, with exact division."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    assert isinstance(node, ast.BinOp)
    op = _AST_OPS[type(node.op)]
    return apply_operator(_evaluate(node.left), op, _evaluate(node.right))  # type: ignore[arg-type]


def test_apply_operator_refuses_inexact_division() -> None:
    assert apply_operator(12, "/", 4) == 3
    with pytest.raises(ValueError, match="not exact"):
        apply_operator(7, "/", 2)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: single_step_addition(0, -1), "count"),
        (lambda: single_step_addition(0, True), "count"),
        (lambda: single_step_addition("x", 3), "seed"),  # type: ignore[arg-type]
        (lambda: single_step_arithmetic(0, 3, 4), "difficulty"),
        (lambda: multi_step_arithmetic(0, 3, steps=0), "steps"),
        (lambda: multi_step_arithmetic(0, 3, steps=(4, 2)), "steps"),
        (lambda: map_reduce_sums(0, 3, parts=(1, 99)), "parts"),
        (lambda: map_reduce_sums(0, 3, parts=2.5), "parts"),  # type: ignore[arg-type]
        (lambda: calculator_word_problems(0, 3, operations=(0, 2)), "operations"),
    ],
)
def test_bad_arguments_name_the_field(call: Callable[[], object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        call()
