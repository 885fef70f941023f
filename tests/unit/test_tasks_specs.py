"""Tasks and answer specs: validation, the spec per name, grading plausible replies."""

from __future__ import annotations

from typing import Any

import pytest

import agentrt.tasks as tasks_api
from agentrt.core._errors import ConfigurationError
from agentrt.tasks import (
    ANSWER_SPEC_NAMES,
    Task,
    TaskError,
    answer_key,
    answer_spec_for,
    calculator_word_problems,
    is_correct,
    map_reduce_sums,
    multi_step_arithmetic,
    single_step_addition,
    suite,
)
from agentrt.tts._answers import (
    AnswerSpec,
    BoxedAnswer,
    ChoiceLetter,
    JsonField,
    LastNumber,
    NormalisedString,
)
from agentrt.tts._math_answers import MathEquivalent


def test_all_is_sorted_and_complete() -> None:
    names = tasks_api.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    modules = {"arithmetic", "jsonl", "registry", "task", "word_problems"}
    public = {n for n in vars(tasks_api) if not n.startswith("_")} - modules
    assert public == set(names)


def _task(spec: str, answer: str, **meta: Any) -> Task:
    return Task(id="t", prompt="q?", answer=answer, answer_spec=spec, meta=meta)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("task", "kind"),
    [
        (_task("last_number", "7"), LastNumber),
        (_task("boxed", "7"), BoxedAnswer),
        (_task("choice", "B"), ChoiceLetter),
        (_task("string", "paris"), NormalisedString),
        (_task("json_field", "7"), JsonField),
        (_task("math", "1/2"), MathEquivalent),
    ],
)
def test_answer_spec_for_each_name(task: Task, kind: type) -> None:
    spec = answer_spec_for(task)
    assert isinstance(spec, kind)
    assert isinstance(spec, AnswerSpec)


def test_every_name_is_covered() -> None:
    assert set(ANSWER_SPEC_NAMES) == {
        "last_number",
        "boxed",
        "choice",
        "string",
        "json_field",
        "math",
    }


def test_spec_options_from_meta() -> None:
    choice = answer_spec_for(_task("choice", "E", choices="ABCDE"))
    assert isinstance(choice, ChoiceLetter) and choice.choices == "ABCDE"
    field = answer_spec_for(_task("json_field", "3", json_path="result.value"))
    assert isinstance(field, JsonField) and field.path == "result.value"
    line = answer_spec_for(_task("string", "paris", last_line=True))
    assert isinstance(line, NormalisedString) and line.last_line
    inner = answer_spec_for(_task("math", "0.5", inner="last_number"))
    assert isinstance(inner, MathEquivalent) and isinstance(inner.inner, LastNumber)


@pytest.mark.parametrize(
    ("task", "reply", "correct"),
    [
        (_task("last_number", "7"), "3 + 4 = 7. The answer is 7.", True),
        (_task("last_number", "-3"), "We get 2 - 5 = -3", True),
        (_task("last_number", "1234.5"), "Total: $1,234.50", True),
        (_task("last_number", "7"), "3 plus 4 is 8.", False),
        (_task("last_number", "7"), "I do not know.", False),
        (_task("boxed", "\\frac{1}{2}"), "So \\boxed{\\dfrac{1}{2}}.", True),
        (_task("choice", "C"), "Let me think. The answer is C.", True),
        (_task("choice", "c"), "Answer: (C)", True),
        (_task("choice", "C"), "The answer is (D).", False),
        (_task("string", "Paris"), "  paris. ", True),
        (_task("string", "paris", last_line=True), "Thinking...\nParis", True),
        (_task("json_field", "7"), 'Here: {"answer": 7}', True),
        (_task("json_field", '"seven"'), '{"answer": "seven"}', True),
        (_task("json_field", "seven"), '{"answer": "seven"}', True),
        (_task("json_field", "7"), '{"answer": "7"}', False),
        (_task("json_field", "[1, 2]", json_path="r.0"), '{"r": [[1,2]]}', True),
        (_task("math", "1/2"), "The result is \\boxed{0.5}", True),
        (_task("math", "0.5", inner="last_number"), "so x = 1/2", False),
        (_task("math", "3", inner="last_number"), "that makes 3.0", True),
    ],
)
def test_is_correct_on_plausible_replies(task: Task, reply: str, correct: bool) -> None:
    assert is_correct(task, reply) is correct


@pytest.mark.parametrize(
    "make",
    [
        lambda: single_step_addition(0, 50),
        lambda: multi_step_arithmetic(0, 50),
        lambda: map_reduce_sums(0, 50),
        lambda: calculator_word_problems(0, 50),
    ],
)
def test_generated_answers_read_from_model_style_replies(make: Any) -> None:
    for task in make():
        assert answer_key(task) == task.answer
        assert is_correct(task, f"Let me work it out: {task.prompt} The answer is {task.answer}.")
        assert is_correct(task, f"**Answer:** {task.answer}")
        wrong = str(int(task.answer) + 1)
        assert not is_correct(task, f"The answer is {wrong}.")


def test_multi_step_sub_steps_are_gradable_tasks() -> None:
    for task in multi_step_arithmetic(2, 20):
        for step in task.meta["steps"]:
            sub = Task(id="s", prompt=step["question"], answer=step["answer"])
            assert is_correct(sub, f"{step['left']} + {step['right']} = {step['answer']}.")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"id": ""}, "id"),
        ({"prompt": "   "}, "prompt"),
        ({"answer": ""}, "answer"),
        ({"answer": "7.0"}, "answer"),
        ({"answer": "1,234"}, "answer"),
        ({"answer": "seven"}, "answer"),
        ({"answer_spec": "regex"}, "answer_spec"),
        ({"kind": ""}, "kind"),
        ({"meta": []}, "meta"),
        ({"answer_spec": "choice", "answer": "E"}, "answer"),
        ({"answer_spec": "choice", "answer": "A", "meta": {"choices": "ab"}}, "meta.choices"),
        ({"answer_spec": "json_field", "meta": {"json_path": "a..b"}}, "meta.json_path"),
        ({"answer_spec": "string", "meta": {"last_line": "yes"}}, "meta.last_line"),
        ({"answer_spec": "math", "meta": {"inner": "regex"}}, "meta.inner"),
        ({"answer_spec": "boxed", "answer": "}"}, "answer"),
    ],
)
def test_bad_task_names_field_and_value(kwargs: dict[str, Any], field: str) -> None:
    fields: dict[str, Any] = {"id": "t1", "prompt": "q?", "answer": "7", **kwargs}
    with pytest.raises(TaskError) as info:
        Task(**fields)
    assert info.value.field == field
    assert isinstance(info.value, ConfigurationError)
    assert repr(info.value.value)[:20] in str(info.value) or field == "meta"


def test_canonical_hint_in_message() -> None:
    with pytest.raises(TaskError, match="write it as '7'"):
        Task(id="t", prompt="q", answer="7.0")


def test_task_is_frozen_and_hashable() -> None:
    task = suite("multi-step", seed=1, count=1)[0]
    with pytest.raises(AttributeError):
        task.answer = "0"  # type: ignore[misc]
    assert hash(task) == hash(suite("multi-step", seed=1, count=1)[0])
