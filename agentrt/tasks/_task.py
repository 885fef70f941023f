"""A task: a prompt, its exact answer, and which answer spec reads a reply.

``answer`` is stored in canonical form (``"7"``, ``"-3"``, ``"1234.5"`` for
``last_number`` tasks), so a reply is correct exactly when the key its spec
extracts equals :func:`answer_key` of the task. Construction validates every
field and raises :class:`~agentrt.core._errors.ConfigurationError` naming it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from agentrt.core._errors import ConfigurationError
from agentrt.tts._answers import (
    AnswerSpec,
    BoxedAnswer,
    ChoiceLetter,
    JsonField,
    LastNumber,
    NormalisedString,
    canonical_number,
)
from agentrt.tts._math_answers import MathEquivalent

__all__ = [
    "ANSWER_SPEC_NAMES",
    "AnswerSpecName",
    "Task",
    "TaskError",
    "answer_key",
    "answer_spec_for",
    "is_correct",
]

AnswerSpecName = Literal["last_number", "boxed", "choice", "string", "json_field", "math"]
ANSWER_SPEC_NAMES: tuple[str, ...] = get_args(AnswerSpecName)
"""The answer-spec names a task may carry (see :func:`answer_spec_for`)."""

_MATH_INNERS = ("boxed", "last_number")


class TaskError(ConfigurationError):
    """A task with a bad field: ``field`` names it (``"answer"``, ``"meta.choices"``)
    and ``value`` holds what was given."""

    def __init__(self, field: str, value: object, message: str) -> None:
        self.field = field
        self.value = value
        super().__init__(message)


@dataclass(frozen=True)
class Task:
    """One problem with an exact answer.

    ``meta`` holds JSON-compatible details: operands, decomposition steps,
    and spec options (``json_path`` for ``json_field``, ``choices`` for
    ``choice``, ``last_line`` for ``string``, ``inner`` for ``math``).
    """

    id: str
    prompt: str
    answer: str
    answer_spec: AnswerSpecName = "last_number"
    kind: str = "custom"
    meta: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in ("id", "prompt", "answer", "kind"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise TaskError(
                    name, value, f"Task.{name} must be a non-empty string, got {value!r}"
                )
        if self.answer_spec not in ANSWER_SPEC_NAMES:
            raise TaskError(
                "answer_spec",
                self.answer_spec,
                f"Task.answer_spec must be one of {list(ANSWER_SPEC_NAMES)}, "
                f"got {self.answer_spec!r} (task {self.id!r})",
            )
        if not isinstance(self.meta, dict):
            raise TaskError(
                "meta",
                self.meta,
                f"Task.meta must be a dict, got {type(self.meta).__name__} (task {self.id!r})",
            )
        if self.answer_spec == "last_number":
            canonical = canonical_number(self.answer)
            if canonical != self.answer:
                hint = f"; write it as {canonical!r}" if canonical is not None else ""
                raise TaskError(
                    "answer",
                    self.answer,
                    f"Task.answer must be a canonical number for answer_spec 'last_number', "
                    f"got {self.answer!r}{hint} (task {self.id!r})",
                )
        answer_key(self)


def _meta_str(task: Task, name: str, default: str) -> str:
    value = task.meta.get(name, default)
    if not isinstance(value, str) or not value:
        raise TaskError(
            f"meta.{name}",
            value,
            f"Task.meta[{name!r}] must be a non-empty string, got {value!r} (task {task.id!r})",
        )
    return value


def answer_spec_for(task: Task) -> AnswerSpec:
    """The :mod:`agentrt.tts._answers` spec that reads ``task``'s answer from a reply."""
    name = task.answer_spec
    if name == "last_number":
        return LastNumber()
    if name == "boxed":
        return BoxedAnswer()
    if name == "choice":
        choices = _meta_str(task, "choices", "ABCD")
        if not choices.isalpha() or not choices.isupper():
            raise TaskError(
                "meta.choices",
                choices,
                f"Task.meta['choices'] must be upper-case letters, got {choices!r} "
                f"(task {task.id!r})",
            )
        return ChoiceLetter(choices=choices)
    if name == "string":
        last_line = task.meta.get("last_line", False)
        if not isinstance(last_line, bool):
            raise TaskError(
                "meta.last_line",
                last_line,
                f"Task.meta['last_line'] must be true or false, got {last_line!r} "
                f"(task {task.id!r})",
            )
        return NormalisedString(last_line=last_line)
    if name == "json_field":
        path = _meta_str(task, "json_path", "answer")
        try:
            return JsonField(path=path)
        except ConfigurationError as exc:
            raise TaskError(
                "meta.json_path", path, f"Task.meta['json_path']: {exc} (task {task.id!r})"
            ) from exc
    inner = _meta_str(task, "inner", "boxed")
    if inner not in _MATH_INNERS:
        raise TaskError(
            "meta.inner",
            inner,
            f"Task.meta['inner'] must be one of {list(_MATH_INNERS)}, got {inner!r} "
            f"(task {task.id!r})",
        )
    return MathEquivalent(BoxedAnswer() if inner == "boxed" else LastNumber())


def _reply_holding_answer(task: Task) -> str:
    """A reply whose extracted key is, by construction, the task's answer key."""
    name = task.answer_spec
    if name == "json_field":
        try:
            value: object = json.loads(task.answer)
        except ValueError:
            value = task.answer
        document: object = value
        for part in reversed(_meta_str(task, "json_path", "answer").split(".")):
            document = [None] * int(part) + [document] if part.isdigit() else {part: document}
        return json.dumps(document)
    if name == "boxed" or (name == "math" and task.meta.get("inner", "boxed") == "boxed"):
        return f"\\boxed{{{task.answer}}}"
    if name == "choice":
        return f"The answer is ({task.answer.strip().upper()})."
    return task.answer


def answer_key(task: Task) -> str:
    """The canonical key a correct reply's extracted answer has.

    For ``json_field`` tasks, ``answer`` is the JSON text of the value
    (``"7"`` is the number 7, ``'"seven"'`` a string); text that is not JSON
    is taken as a string.
    """
    found = answer_spec_for(task).extract(_reply_holding_answer(task))
    if found is None:
        raise TaskError(
            "answer",
            task.answer,
            f"Task.answer {task.answer!r} cannot be read by answer_spec "
            f"{task.answer_spec!r} (task {task.id!r})",
        )
    return found.key


def is_correct(task: Task, reply: str) -> bool:
    """Whether ``reply``'s extracted answer equals the task's answer."""
    found = answer_spec_for(task).extract(reply)
    return found is not None and found.key == answer_key(task)
