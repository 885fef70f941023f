"""Tasks as JSON Lines: one object per line, so users can bring their own sets.

Each line is ``{"prompt": ..., "answer": ..., "answer_spec": ...}`` with
optional ``id`` (default ``"<file stem>/<line number>"``), ``kind`` (default
``"custom"``) and ``meta`` (an object). Numeric answers of ``last_number``
tasks are canonicalised (``"1,234.0"`` -> ``"1234"``); a JSON number is read
as its text. Blank lines are skipped. Any other problem raises
:class:`TaskFileError` naming the file, line, field and value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictFloat, StrictInt, StrictStr, ValidationError

from agentrt.core._errors import ConfigurationError
from agentrt.tasks._task import ANSWER_SPEC_NAMES, Task, TaskError
from agentrt.tts._answers import canonical_number

__all__ = ["TaskFileError", "load_jsonl", "save_jsonl"]


class TaskFileError(ConfigurationError):
    """A task file that does not load: ``path``, ``line`` (1-based), ``field`` and
    ``value`` say where and what, when known."""

    def __init__(
        self, path: Path, line: int | None, field: str | None, value: object, reason: str
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.value = value
        where = f"{path}:{line}" if line is not None else str(path)
        what = f" field {field!r} = {_shown(value)}:" if field is not None else ""
        super().__init__(f"{where}:{what} {reason}")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


class _TaskLine(BaseModel):
    """One line of a task file, as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: StrictStr
    answer: StrictStr | StrictInt | StrictFloat
    answer_spec: StrictStr = "last_number"
    id: StrictStr | None = None
    kind: StrictStr = "custom"
    meta: dict[str, Any] = {}


def _answer_text(row: _TaskLine) -> str:
    answer = row.answer if isinstance(row.answer, str) else json.dumps(row.answer)
    if row.answer_spec == "last_number":
        return canonical_number(answer.strip()) or answer
    return answer


def _parse_line(path: Path, number: int, text: str) -> Task:
    try:
        raw: object = json.loads(text)
    except ValueError as exc:
        raise TaskFileError(path, number, None, None, f"not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise TaskFileError(path, number, None, None, "each line must be a JSON object")
    try:
        row = _TaskLine.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"][:1]) or None
        value = raw.get(field) if field is not None else None
        raise TaskFileError(path, number, field, value, error["msg"]) from exc
    if row.answer_spec not in ANSWER_SPEC_NAMES:
        raise TaskFileError(
            path,
            number,
            "answer_spec",
            row.answer_spec,
            f"must be one of {list(ANSWER_SPEC_NAMES)}",
        )
    try:
        return Task(
            id=row.id if row.id is not None else f"{path.stem}/{number}",
            prompt=row.prompt,
            answer=_answer_text(row),
            answer_spec=row.answer_spec,  # type: ignore[arg-type]  # checked above
            kind=row.kind,
            meta=dict(row.meta),
        )
    except TaskError as exc:
        raise TaskFileError(path, number, exc.field, exc.value, str(exc)) from exc


def load_jsonl(path: str | Path) -> list[Task]:
    """The tasks in a JSON Lines file, in file order; ids must be unique."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskFileError(path, None, None, None, f"cannot read task file ({exc})") from exc
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        task = _parse_line(path, number, text)
        if task.id in seen:
            raise TaskFileError(
                path, number, "id", task.id, f"duplicate id, first used on line {seen[task.id]}"
            )
        seen[task.id] = number
        tasks.append(task)
    return tasks


def save_jsonl(tasks: Iterable[Task], path: str | Path) -> Path:
    """Write ``tasks`` one per line (every field), so :func:`load_jsonl` reads them back."""
    path = Path(path)
    lines = [
        json.dumps(
            {
                "id": task.id,
                "prompt": task.prompt,
                "answer": task.answer,
                "answer_spec": task.answer_spec,
                "kind": task.kind,
                "meta": task.meta,
            },
            ensure_ascii=False,
            sort_keys=False,
        )
        for task in tasks
    ]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path
