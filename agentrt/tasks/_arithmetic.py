"""Small-number arithmetic families: single steps, chains, and sums of parts.

Every generator is a pure function of its arguments: task ``i`` of a seed is
the same whatever ``count`` is asked for (a shorter list is a prefix of a
longer one). Each task's ``meta`` holds its operands, so its answer can be
recomputed, and the multi-part families hold single-step sub-questions a
graph can solve one LLM call at a time.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from agentrt.core._errors import ConfigurationError
from agentrt.tasks._seeding import check_count, check_range, rng_for, task_id
from agentrt.tasks._task import Task

__all__ = [
    "ARITHMETIC_FAMILIES",
    "MAX_PARTS",
    "MAX_STEPS",
    "Operation",
    "map_reduce_sums",
    "multi_step_arithmetic",
    "single_step_addition",
    "single_step_arithmetic",
    "step_question",
]

Operation = Literal["plus", "minus"]

ARITHMETIC_FAMILIES: tuple[str, ...] = (
    "addition",
    "subtraction",
    "addition-hard",
    "subtraction-hard",
)
"""Single-step families by ``difficulty`` (0-3), hardest last; the kind of their tasks.

0: one-digit + one-digit; 1: one-digit minus a smaller or equal one-digit
(result >= 0); 2: two-digit + one-digit; 3: two-digit minus one-digit.
Measured single-sample accuracy of SmolLM2-135M is in ``docs/tasks.md``.
"""

MAX_STEPS = 8
MAX_PARTS = 10


def _apply(left: int, op: Operation, right: int) -> int:
    return left + right if op == "plus" else left - right


def step_question(left: int, op: Operation, right: int) -> dict[str, Any]:
    """One single-step sub-question as JSON-ready meta: ``"What is 3 plus 4?"`` -> ``"7"``."""
    return {
        "question": f"What is {left} {op} {right}?",
        "answer": str(_apply(left, op, right)),
        "left": left,
        "op": op,
        "right": right,
    }


def _draw_single(rng: random.Random, difficulty: int) -> tuple[int, Operation, int]:
    if difficulty == 0:
        return rng.randint(1, 9), "plus", rng.randint(1, 9)
    if difficulty == 1:
        left = rng.randint(2, 9)
        return left, "minus", rng.randint(1, left)
    if difficulty == 2:
        return rng.randint(10, 99), "plus", rng.randint(1, 9)
    return rng.randint(10, 99), "minus", rng.randint(1, 9)


def single_step_arithmetic(seed: int, count: int, difficulty: int = 0) -> list[Task]:
    """``count`` one-operation questions ("What is 47 plus 8?") of a difficulty (0-3).

    Difficulty 0 is the calibrated family: SmolLM2-135M answers ~35% of it
    right in one sample and ~60% by majority of 8 (last number, T=0.7).
    See :data:`ARITHMETIC_FAMILIES` and ``docs/tasks.md`` for the others.
    """
    if not isinstance(difficulty, int) or not 0 <= difficulty < len(ARITHMETIC_FAMILIES):
        raise ConfigurationError(
            f"single_step_arithmetic: difficulty must be 0..{len(ARITHMETIC_FAMILIES) - 1}, "
            f"got {difficulty!r}"
        )
    family = ARITHMETIC_FAMILIES[difficulty]
    check_count(family, count)
    rng = rng_for(family, seed)
    tasks = []
    for index in range(count):
        left, op, right = _draw_single(rng, difficulty)
        step = step_question(left, op, right)
        tasks.append(
            Task(
                id=task_id(family, seed, index),
                prompt=step["question"],
                answer=step["answer"],
                kind=family,
                meta={"left": left, "op": op, "right": right, "difficulty": difficulty},
            )
        )
    return tasks


def single_step_addition(seed: int, count: int) -> list[Task]:
    """``count`` single-digit additions, "What is 3 plus 4?" (difficulty 0)."""
    return single_step_arithmetic(seed, count, difficulty=0)


def _chain_prompt(start: int, ops: list[tuple[Operation, int]]) -> str:
    verbs = {"plus": "add", "minus": "subtract"}
    sentences = [f"Start with {start}."]
    for position, (op, operand) in enumerate(ops):
        verb = verbs[op]
        sentences.append(
            f"{verb.capitalize()} {operand}." if position == 0 else f"Then {verb} {operand}."
        )
    sentences.append("What is the result?")
    return " ".join(sentences)


def multi_step_arithmetic(
    seed: int, count: int, steps: int | tuple[int, int] = (2, 4)
) -> list[Task]:
    """Chains like "Start with 3. Add 4. Then add 2. What is the result?".

    ``steps`` is the number of operations, fixed or drawn per task from an
    inclusive ``(low, high)`` range. ``meta["steps"]`` lists each operation as
    its own sub-question on the running value ("What is 3 plus 4?" -> "7",
    then "What is 7 plus 2?" -> "9"); the last step's answer is the task's.
    Operands are one-digit and the running value never goes below zero.
    """
    family = "multi-step"
    check_count(family, count)
    low, high = check_range(family, "steps", steps, 1, MAX_STEPS)
    rng = rng_for(family, seed)
    tasks = []
    for index in range(count):
        start = value = rng.randint(1, 9)
        ops: list[tuple[Operation, int]] = []
        records = []
        for _ in range(rng.randint(low, high)):
            op: Operation = "minus" if value >= 1 and rng.random() < 0.4 else "plus"
            operand = rng.randint(1, min(9, value)) if op == "minus" else rng.randint(1, 9)
            records.append(step_question(value, op, operand))
            ops.append((op, operand))
            value = _apply(value, op, operand)
        tasks.append(
            Task(
                id=task_id(family, seed, index),
                prompt=_chain_prompt(start, ops),
                answer=str(value),
                kind=family,
                meta={"start": start, "steps": records},
            )
        )
    return tasks


def map_reduce_sums(seed: int, count: int, parts: int | tuple[int, int] = (2, 5)) -> list[Task]:
    """Independent sub-questions whose answers are summed, for a ``Send`` fan-out.

    "What is 2 plus 3? What is 4 plus 1? Add up the answers." has answer
    ``"10"``; ``meta["sub_questions"]`` holds each single-digit addition with
    its own answer. ``parts`` is fixed or drawn per task from ``(low, high)``.
    """
    family = "map-reduce"
    check_count(family, count)
    low, high = check_range(family, "parts", parts, 1, MAX_PARTS)
    rng = rng_for(family, seed)
    tasks = []
    for index in range(count):
        subs = [
            step_question(rng.randint(1, 9), "plus", rng.randint(1, 9))
            for _ in range(rng.randint(low, high))
        ]
        total = sum(int(sub["answer"]) for sub in subs)
        prompt = " ".join([*(sub["question"] for sub in subs), "Add up the answers."])
        tasks.append(
            Task(
                id=task_id(family, seed, index),
                prompt=prompt,
                answer=str(total),
                kind=family,
                meta={"sub_questions": subs, "reduce": "sum"},
            )
        )
    return tasks
