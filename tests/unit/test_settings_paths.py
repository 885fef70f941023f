"""Where agentrt looks for files: the project (``AGENTRT_PROJECT_DIR`` or found
from the working directory upward), ``AGENTRT_HOME``, the packaged ``budgets/``,
and the error that names every path looked at."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from agentrt.core._errors import ConfigurationError
from agentrt.core._settings import DEFAULT_CALIBRATION, Settings, packaged_data_dir
from agentrt.langgraph._loading import load_graph

REPO = Path(__file__).parents[2]
_ENV = ("AGENTRT_PROJECT_DIR", "AGENTRT_CALIBRATION", "AGENTRT_HOME", "AGENTRT_DATA_DIR")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)


def _file(path: Path, text: str = "# test\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _bare(tmp_path: Path) -> Settings:
    """Settings with nothing to find: no project, an empty home, no packaged data."""
    return Settings(home=tmp_path / "home", data_dir=None)


def test_the_project_is_found_from_a_nested_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "proj"
    profile = _file(project / "budgets" / "math.toml")
    calibration = _file(project / DEFAULT_CALIBRATION)
    nested = project / "graphs" / "deep"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    settings = _bare(tmp_path)
    assert settings.project() == project.resolve()
    assert settings.find_budget_file("budgets/math.toml") == profile.resolve()
    assert settings.find_calibration() == calibration.resolve()
    assert settings.calibration_output() == calibration.resolve()


def test_the_working_directory_wins_over_the_project_for_a_relative_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "proj"
    _file(project / "budgets" / "math.toml")
    here = _file(project / "sub" / "budgets" / "math.toml").parent.parent
    monkeypatch.chdir(here)
    assert _bare(tmp_path).find_budget_file("budgets/math.toml") == Path("budgets/math.toml")


def test_agentrt_project_dir_overrides_discovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found, chosen = tmp_path / "found", tmp_path / "chosen"
    _file(found / DEFAULT_CALIBRATION)
    wanted = _file(chosen / DEFAULT_CALIBRATION)
    monkeypatch.chdir(found)
    monkeypatch.setenv("AGENTRT_PROJECT_DIR", str(chosen))
    settings = Settings(home=tmp_path / "home", data_dir=None)
    assert settings.project() == chosen
    assert settings.find_calibration() == wanted


def test_calibration_precedence_env_then_project_then_home_then_packaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, home, data = tmp_path / "proj", tmp_path / "home", tmp_path / "data"
    packaged = _file(data / DEFAULT_CALIBRATION)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTRT_HOME", str(home))
    monkeypatch.setenv("AGENTRT_DATA_DIR", str(data))
    assert Settings().find_calibration() == packaged

    in_home = _file(home / "calibration" / "local-pool.toml")
    assert Settings().find_calibration() == in_home
    assert Settings().calibration_output() == in_home  # no project: calibrate writes to home

    in_project = _file(project / DEFAULT_CALIBRATION)
    monkeypatch.setenv("AGENTRT_PROJECT_DIR", str(project))
    assert Settings().find_calibration() == in_project

    explicit = _file(tmp_path / "mine.toml")
    monkeypatch.setenv("AGENTRT_CALIBRATION", str(explicit))
    assert Settings().find_calibration() == explicit
    assert Settings().calibration_output() == explicit


def test_the_packaged_budgets_are_the_fallback_outside_a_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "site" / "agentrt" / "_data"
    shipped = _file(data / "budgets" / "math.toml")
    prior = _file(data / DEFAULT_CALIBRATION)
    monkeypatch.chdir(_file(tmp_path / "elsewhere" / "x").parent)
    settings = Settings(home=tmp_path / "home", data_dir=data)
    assert settings.project() is None
    assert settings.budget_file("budgets/math.toml") == shipped
    assert settings.calibration_path() == prior
    assert settings.find_budget_file("budgets/absent.toml") is None


def test_the_wheel_ships_budgets_where_settings_reads_them() -> None:
    """pyproject's force-include puts budgets/ at agentrt/_data/budgets, which is
    ``data_dir / "budgets"``; in a source checkout there is no packaged copy."""
    build = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    assert build["targets"]["wheel"]["force-include"]["budgets"] == "agentrt/_data/budgets"
    assert (REPO / DEFAULT_CALIBRATION).is_file()
    assert (REPO / "budgets" / "default.toml").is_file()
    assert packaged_data_dir() is None


def test_nothing_found_names_every_path_looked_at_and_how_to_set_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = _bare(tmp_path)
    with pytest.raises(ConfigurationError) as info:
        settings.calibration_path()
    message = str(info.value)
    assert str(tmp_path / "home" / "calibration" / "local-pool.toml") in message
    assert f"no budgets/ folder in {tmp_path.resolve()}" in message
    assert "AGENTRT_CALIBRATION" in message and "AGENTRT_PROJECT_DIR" in message
    assert "agentrt calibrate" in message

    with pytest.raises(ConfigurationError) as info:
        settings.budget_file("budgets/math.toml")
    message = str(info.value)
    assert str(tmp_path / "budgets" / "math.toml") in message
    assert "AGENTRT_PROJECT_DIR" in message


def test_a_missing_agentrt_calibration_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTRT_CALIBRATION", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigurationError, match=r"AGENTRT_CALIBRATION=.*nope\.toml is not a file"):
        Settings().find_calibration()


def test_a_graph_profile_resolves_through_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    loaded = load_graph("graphs/math.py:graph")
    assert loaded.profile(_bare(tmp_path)) == Path("budgets/math.toml")
    graph = _file(
        tmp_path / "lost.py",
        "from typing import TypedDict\n"
        "from langgraph.graph import StateGraph, START, END\n"
        "class S(TypedDict):\n    x: int\n"
        "b = StateGraph(S)\nb.add_node('f', lambda s: s)\n"
        "b.add_edge(START, 'f')\nb.add_edge('f', END)\n"
        "graph = b.compile()\nPROFILE = 'budgets/lost.toml'\n",
    )
    lost = load_graph(f"{graph}:graph")
    with pytest.raises(ConfigurationError, match=r"'budgets/lost\.toml' not found: looked at"):
        lost.profile(_bare(tmp_path))
