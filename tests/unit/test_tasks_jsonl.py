"""Task files (JSON Lines) and the suite registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentrt.core._errors import ConfigurationError
from agentrt.tasks import (
    DEFAULT_COUNT,
    SUITE_NAMES,
    Task,
    TaskFileError,
    calculator_word_problems,
    load_jsonl,
    map_reduce_sums,
    multi_step_arithmetic,
    save_jsonl,
    single_step_arithmetic,
    suite,
)


def _write(tmp_path: Path, *lines: str, name: str = "mine.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_round_trip_of_every_family(tmp_path: Path) -> None:
    tasks = [
        *single_step_arithmetic(1, 5, 3),
        *multi_step_arithmetic(1, 5),
        *map_reduce_sums(1, 5),
        *calculator_word_problems(1, 5),
        Task(id="q/1", prompt="Capital of France?", answer="Paris", answer_spec="string"),
        Task(id="q/2", prompt="Pick", answer="B", answer_spec="choice", meta={"choices": "AB"}),
        Task(id="q/3", prompt="JSON", answer='{"x": 1}', answer_spec="json_field"),
        Task(id="q/4", prompt="½ ?", answer="\\frac{1}{2}", answer_spec="math"),
    ]
    path = save_jsonl(tasks, tmp_path / "all.jsonl")
    assert load_jsonl(path) == tasks
    assert len(path.read_text(encoding="utf-8").splitlines()) == len(tasks)


def test_minimal_lines_and_defaults(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        json.dumps({"prompt": "What is 3 plus 4?", "answer": "7", "answer_spec": "last_number"}),
        "",
        json.dumps({"prompt": "GSM-style", "answer": "1,234.00"}),
        json.dumps({"prompt": "n", "answer": 42, "answer_spec": "last_number", "id": "x"}),
        json.dumps({"prompt": "f", "answer": 0.5, "kind": "gsm8k", "meta": {"src": "test"}}),
    )
    first, second, third, fourth = load_jsonl(path)
    assert (first.id, first.kind, first.answer, first.meta) == ("mine/1", "custom", "7", {})
    assert (second.id, second.answer, second.answer_spec) == ("mine/3", "1234", "last_number")
    assert (third.id, third.answer) == ("x", "42")
    assert (fourth.kind, fourth.answer, fourth.meta) == ("gsm8k", "0.5", {"src": "test"})


@pytest.mark.parametrize(
    ("line", "field", "value"),
    [
        ('{"prompt": "q"}', "answer", None),
        ('{"answer": "7"}', "prompt", None),
        ('{"prompt": "q", "answer": true}', "answer", True),
        ('{"prompt": "q", "answer": "7", "answer_spec": "regex"}', "answer_spec", "regex"),
        ('{"prompt": "q", "answer": "seven"}', "answer", "seven"),
        ('{"prompt": "", "answer": "7"}', "prompt", ""),
        ('{"prompt": "q", "answer": "7", "anwser": "7"}', "anwser", "7"),
        ('{"prompt": "q", "answer": "7", "meta": [1]}', "meta", [1]),
        ('{"prompt": "q", "answer": "E", "answer_spec": "choice"}', "answer", "E"),
        ('{"prompt": 3, "answer": "7"}', "prompt", 3),
    ],
)
def test_bad_line_names_file_line_field_and_value(
    tmp_path: Path, line: str, field: str, value: object
) -> None:
    good = json.dumps({"prompt": "q", "answer": "1"})
    path = _write(tmp_path, good, good.replace("}", ', "id": "two"}'), line)
    with pytest.raises(TaskFileError) as info:
        load_jsonl(path)
    error = info.value
    assert isinstance(error, ConfigurationError)
    assert (error.path, error.line, error.field, error.value) == (path, 3, field, value)
    assert f"{path}:3:" in str(error) and repr(field) in str(error)


@pytest.mark.parametrize(
    ("line", "reason"), [("{not json", "not valid JSON"), ("[1, 2]", "JSON object")]
)
def test_malformed_lines(tmp_path: Path, line: str, reason: str) -> None:
    path = _write(tmp_path, line)
    with pytest.raises(TaskFileError, match=reason) as info:
        load_jsonl(path)
    assert info.value.line == 1 and info.value.field is None


def test_duplicate_ids(tmp_path: Path) -> None:
    row = json.dumps({"id": "a", "prompt": "q", "answer": "1"})
    with pytest.raises(TaskFileError, match="first used on line 1") as info:
        load_jsonl(_write(tmp_path, row, row))
    assert (info.value.line, info.value.field, info.value.value) == (2, "id", "a")


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "none.jsonl"
    with pytest.raises(TaskFileError, match=r"none\.jsonl"):
        load_jsonl(missing)


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_suite_by_name(name: str) -> None:
    tasks = suite(name, seed=3, count=12)
    assert len(tasks) == 12 and {t.kind for t in tasks} == {name}
    assert tasks == suite(name, seed=3, count=12)
    assert len(suite(name, seed=3)) == DEFAULT_COUNT


def test_required_suite_names_exist() -> None:
    for name in ("addition", "addition-hard", "multi-step", "map-reduce", "calculator"):
        assert name in SUITE_NAMES
    assert suite("addition", 0, 5) == single_step_arithmetic(0, 5, 0)
    assert suite("addition-hard", 0, 5) == single_step_arithmetic(0, 5, 2)
    assert suite("subtraction", 0, 5) == single_step_arithmetic(0, 5, 1)


def test_suite_from_file(tmp_path: Path) -> None:
    tasks = map_reduce_sums(0, 6)
    path = save_jsonl(tasks, tmp_path / "mr.jsonl")
    assert suite(str(path)) == tasks
    assert suite(path, count=2) == tasks[:2]
    assert suite(str(path), seed=9, count=6) == tasks
    with pytest.raises(ConfigurationError, match="more than the 6 tasks"):
        suite(path, count=7)
    with pytest.raises(ConfigurationError, match="count"):
        suite(path, count=-1)


def test_unknown_suite_lists_the_names() -> None:
    with pytest.raises(ConfigurationError, match="'gsm8k'") as info:
        suite("gsm8k")
    assert "multi-step" in str(info.value)
