"""`agentrt run` rejects bad input with one clear line, before starting any server."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentrt.cli.app import app
from agentrt.cli.run import parse_deadline
from agentrt.core._errors import ConfigurationError

runner = CliRunner()


def run_cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["run", *args], env={"AGENTRT_ENDPOINTS": "http://127.0.0.1:9"})
    assert "Traceback" not in result.output
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.parametrize(
    ("text", "seconds"), [("8s", 8.0), ("500ms", 0.5), ("1.5", 1.5), ("2m", 120.0), (".5s", 0.5)]
)
def test_deadlines_parse(text: str, seconds: float) -> None:
    assert parse_deadline(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["0", "0s", "-1s", "soon", "8 hours", ""])
def test_bad_deadlines_are_named(text: str) -> None:
    with pytest.raises(ConfigurationError, match="--deadline"):
        parse_deadline(text)


def test_negative_deadline_on_the_command_line() -> None:
    code, out = run_cli("graphs/math.py:graph", "--deadline", "-2s", "--task-seed", "1")
    assert code == 1 and "--deadline must be" in out


def test_unknown_graph_path() -> None:
    code, out = run_cli("graphs/nope.py:graph", "--task-seed", "1")
    assert code == 1 and "graph file not found: graphs/nope.py" in out


def test_not_a_python_path() -> None:
    code, out = run_cli("graphs/math.txt", "--task-seed", "1")
    assert code == 1 and "graphs/NAME.py:graph" in out


def test_missing_attribute() -> None:
    code, out = run_cli("graphs/math.py:nothing", "--task-seed", "1")
    assert code == 1 and "has no attribute 'nothing'" in out


def test_attribute_that_is_not_a_graph() -> None:
    code, out = run_cli("graphs/math.py:spec", "--task-seed", "1")
    assert code == 1 and "not a compiled LangGraph graph" in out


def test_malformed_input_json() -> None:
    code, out = run_cli("graphs/math.py:graph", "--input", "{problem: 1")
    assert code == 1 and "--input is not valid JSON" in out


def test_input_must_be_an_object() -> None:
    code, out = run_cli("graphs/math.py:graph", "--input", "[1, 2]")
    assert code == 1 and "--input must be a JSON object, got list" in out


def test_input_keys_must_match_the_graph() -> None:
    code, out = run_cli("graphs/math.py:graph", "--input", '{"question": "2+2"}')
    assert code == 1 and "does not take" in out and "'problem'" in out


def test_input_or_task_seed_but_not_both() -> None:
    code, out = run_cli("graphs/math.py:graph")
    assert code == 1 and "exactly one of --input" in out


def test_task_seed_needs_a_task_suite(tmp_path: Path) -> None:
    module = tmp_path / "bare.py"
    module.write_text(
        "from typing import TypedDict\n"
        "from langgraph.graph import StateGraph, START, END\n"
        "class S(TypedDict):\n    x: int\n"
        "def f(s: S) -> S:\n    return s\n"
        "b = StateGraph(S)\nb.add_node('f', f)\nb.add_edge(START, 'f')\nb.add_edge('f', END)\n"
        "graph = b.compile()\n"
    )
    code, out = run_cli(f"{module}:graph", "--task-seed", "1")
    assert code == 1 and "defines no TASK_SUITE" in out


def test_profile_for_another_graph() -> None:
    code, out = run_cli(
        "graphs/math.py:graph", "--task-seed", "1", "--profile", "budgets/mapreduce.toml"
    )
    assert code == 1 and "is for graph 'graphs/mapreduce.py:graph'" in out


def test_bad_profile_names_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[spec]\ndeadline_s = -1\n")
    code, out = run_cli("graphs/math.py:graph", "--task-seed", "1", "--profile", str(bad))
    assert code == 1 and "bad.toml" in out and "deadline_s" in out
