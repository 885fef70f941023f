"""``agentrt serve``: the command's options and errors, and the app it builds from
graph paths (nothing is started: the served runs are tested in test_serve_runs)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from agentrt.cli.app import app
from agentrt.core._errors import ConfigurationError
from agentrt.serve import ServeConfig
from agentrt.serve._server import CONFIG_ENV, app_from_config, app_from_env

runner = CliRunner()


def test_help_lists_serve_and_its_options() -> None:
    assert "serve" in runner.invoke(app, ["--help"]).output
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--workers", "--checkpointer", "--max-in-flight"):
        assert option in result.output


def test_a_missing_graph_is_one_clear_line() -> None:
    result = runner.invoke(app, ["serve", "graphs/nope.py:graph", "--port", "0"])
    assert result.exit_code == 1
    assert "graph file not found: graphs/nope.py" in result.output
    assert "Traceback" not in result.output


def test_a_bad_checkpointer_is_one_clear_line() -> None:
    result = runner.invoke(
        app, ["serve", "graphs/math.py:graph", "--checkpointer", "redis://x", "--port", "0"]
    )
    assert result.exit_code == 1
    assert "checkpointer must be 'memory' or a postgresql:// URL" in result.output


def test_bad_options_are_refused_by_the_command() -> None:
    result = runner.invoke(app, ["serve", "graphs/math.py:graph", "--max-in-flight", "0"])
    assert result.exit_code == 2
    assert "max-in-flight" in result.output


def test_graph_paths_become_assistants_named_after_their_files() -> None:
    built = app_from_config(ServeConfig(graphs=("graphs/math.py:graph", "graphs/agent.py:graph")))
    catalog = built.state.catalog
    assert catalog.names() == ["math", "agent"]
    assert str(catalog.get("math").profile).endswith("budgets/math.toml")
    assert catalog.minimum_s("math") > 0  # math's profile: solve makes LLM calls
    assert built.state.admission.max_in_flight == 64


def test_a_graph_served_twice_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="two graphs are named 'math'"):
        app_from_config(ServeConfig(graphs=("graphs/math.py:graph", "graphs/math.py")))


def test_a_worker_without_its_config_says_how_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    with pytest.raises(ConfigurationError, match="start workers with `agentrt serve`"):
        app_from_env()
    config = ServeConfig(graphs=("graphs/math.py:graph",), max_in_flight=3)
    monkeypatch.setenv(CONFIG_ENV, config.model_dump_json())
    assert app_from_env().state.admission.max_in_flight == 3
