"""``agentrt tune``: the pure :func:`agentrt.tuning.tune` rendered by the command."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from agentrt.cli.app import app

TRACES = Path(__file__).parents[1] / "data" / "traces"


def test_tune_prints_the_fit_and_writes_the_profile(tmp_path: Path) -> None:
    output = tmp_path / "arith.tuned.toml"
    result = CliRunner().invoke(app, ["tune", str(TRACES), "--graph", "arith", "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert "held-out runs" in result.output and "per node" in result.output
    assert "wrote" in result.output
    assert output.is_file()


def test_tune_refuses_traces_of_another_graph_in_one_line(tmp_path: Path) -> None:
    output = tmp_path / "math.tuned.toml"
    result = CliRunner().invoke(app, ["tune", str(TRACES), "--graph", "math", "-o", str(output)])
    assert result.exit_code == 1
    assert "not of 'math'" in result.output and "Traceback" not in result.output
    assert not output.exists()
