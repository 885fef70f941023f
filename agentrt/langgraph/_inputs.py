"""A loaded graph's input (JSON, or a seeded task of its ``TASK_SUITE``) and the
judge that scores a run against that task (the module's ``answer_of``)."""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from typing import Any

from agentrt.core._errors import ConfigurationError
from agentrt.langgraph._loading import LoadedGraph
from agentrt.tasks import Task, is_correct, suite

__all__ = ["graph_input", "task_judge"]


def graph_input(
    loaded: LoadedGraph, text: str | None, task_seed: int | None
) -> tuple[Any, Task | None]:
    """The graph's input from ``--input`` JSON or a seeded task of the graph's suite."""
    if (text is None) == (task_seed is None):
        raise ConfigurationError("give exactly one of --input '{...}' or --task-seed N")
    if task_seed is not None:
        suite_name = loaded.optional("TASK_SUITE")
        make_input = loaded.optional("input_for")
        if suite_name is None or make_input is None:
            raise ConfigurationError(
                f"{loaded.path} defines no TASK_SUITE and input_for(task): use --input instead"
            )
        task = suite(str(suite_name), task_seed, 1)[0]
        return make_input(task), task
    assert text is not None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"--input is not valid JSON ({exc.msg} at {exc.pos}): {text!r}"
        ) from exc
    if not isinstance(value, dict):
        raise ConfigurationError(f"--input must be a JSON object, got {type(value).__name__}")
    _check_keys(loaded, value)
    return value, None


def task_judge(task: Task | None, loaded: LoadedGraph) -> Callable[[Any], bool] | None:
    """Whether a run's final state answers ``task`` (via the module's ``answer_of``);
    None without a task or an ``answer_of``."""
    answer_of = loaded.optional("answer_of")
    if task is None or answer_of is None:
        return None
    labelled = task

    def judge(state: Any) -> bool:
        answer = answer_of(state)
        return answer is not None and is_correct(labelled, str(answer))

    return judge


def _check_keys(loaded: LoadedGraph, value: dict[str, Any]) -> None:
    keys, required = _input_keys(loaded.graph)
    unknown = sorted(set(value) - keys)
    if keys and unknown:
        raise ConfigurationError(
            f"--input has keys {unknown} that graph {loaded.name!r} does not take; "
            f"its input keys are {sorted(keys)}"
        )
    missing = sorted(required - set(value))
    if missing:
        raise ConfigurationError(f"--input lacks keys {missing} that graph {loaded.name!r} needs")


def _input_keys(graph: Any) -> tuple[set[str], set[str]]:
    """The input state's keys and required keys, read from the builder's schema."""
    schema = getattr(getattr(graph, "builder", None), "input_schema", None)
    if schema is None:
        return set(), set()
    try:
        keys = set(typing.get_type_hints(schema))
    except (TypeError, NameError):
        return set(), set()
    return keys, set(getattr(schema, "__required_keys__", frozenset()))
