"""Task suites by name: the generated families, or a JSON Lines file of your own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agentrt.core._errors import ConfigurationError
from agentrt.tasks._arithmetic import (
    map_reduce_sums,
    multi_step_arithmetic,
    single_step_arithmetic,
)
from agentrt.tasks._jsonl import load_jsonl
from agentrt.tasks._task import Task
from agentrt.tasks._tools import tool_use_tasks
from agentrt.tasks._word_problems import calculator_word_problems

__all__ = ["DEFAULT_COUNT", "SUITE_NAMES", "suite"]

DEFAULT_COUNT = 100
"""Tasks a generated suite has when no ``count`` is given."""

_Generator = Callable[[int, int], list[Task]]

_GENERATORS: dict[str, _Generator] = {
    "addition": lambda seed, count: single_step_arithmetic(seed, count, 0),
    "subtraction": lambda seed, count: single_step_arithmetic(seed, count, 1),
    "addition-hard": lambda seed, count: single_step_arithmetic(seed, count, 2),
    "subtraction-hard": lambda seed, count: single_step_arithmetic(seed, count, 3),
    "multi-step": multi_step_arithmetic,
    "map-reduce": map_reduce_sums,
    "calculator": calculator_word_problems,
    "agent": tool_use_tasks,
}

SUITE_NAMES: tuple[str, ...] = tuple(_GENERATORS)
"""The generated suites :func:`suite` knows by name."""


def _is_path(name: str) -> bool:
    return name.endswith(".jsonl") or "/" in name or "\\" in name


def suite(name: str | Path, seed: int = 0, count: int | None = None) -> list[Task]:
    """The tasks of suite ``name``: a name in :data:`SUITE_NAMES` or a ``.jsonl`` path.

    A generated suite has ``count`` tasks (:data:`DEFAULT_COUNT` if ``None``)
    drawn with ``seed``. A file gives its first ``count`` tasks (all if
    ``None``) in file order; ``seed`` does not apply to it, and asking for
    more tasks than it holds is an error rather than a silently short suite.
    """
    if isinstance(name, Path) or _is_path(name):
        tasks = load_jsonl(name)
        if count is None:
            return tasks
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ConfigurationError(f"suite: count must be an integer >= 0, got {count!r}")
        if count > len(tasks):
            raise ConfigurationError(
                f"suite: count {count} is more than the {len(tasks)} tasks in {name}"
            )
        return tasks[:count]
    generator = _GENERATORS.get(name)
    if generator is None:
        raise ConfigurationError(
            f"suite: name must be one of {list(SUITE_NAMES)} or a path to a .jsonl file, "
            f"got {name!r}"
        )
    return generator(seed, DEFAULT_COUNT if count is None else count)
