"""The task suite: seeded generators with exact answers, and your own tasks from JSONL.

Every generator is a pure function of ``(seed, count, ...)`` using a private
``random.Random``; each :class:`Task` carries its answer in canonical form,
the name of the answer spec that reads it from a reply
(:func:`answer_spec_for`), and ``meta`` from which the answer can be
recomputed (operands, decomposition steps, sub-questions). See
``docs/tasks.md``.
"""

from agentrt.tasks._arithmetic import (
    ARITHMETIC_FAMILIES,
    map_reduce_sums,
    multi_step_arithmetic,
    single_step_addition,
    single_step_arithmetic,
    step_question,
)
from agentrt.tasks._jsonl import TaskFileError, load_jsonl, save_jsonl
from agentrt.tasks._registry import DEFAULT_COUNT, SUITE_NAMES, suite
from agentrt.tasks._task import (
    ANSWER_SPEC_NAMES,
    AnswerSpecName,
    Task,
    TaskError,
    answer_key,
    answer_spec_for,
    is_correct,
)
from agentrt.tasks._word_problems import apply_operator, calculator_word_problems

__all__ = [
    "ANSWER_SPEC_NAMES",
    "ARITHMETIC_FAMILIES",
    "DEFAULT_COUNT",
    "SUITE_NAMES",
    "AnswerSpecName",
    "Task",
    "TaskError",
    "TaskFileError",
    "answer_key",
    "answer_spec_for",
    "apply_operator",
    "calculator_word_problems",
    "is_correct",
    "load_jsonl",
    "map_reduce_sums",
    "multi_step_arithmetic",
    "save_jsonl",
    "single_step_addition",
    "single_step_arithmetic",
    "step_question",
    "suite",
]
