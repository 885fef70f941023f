"""``python -m benchmarks``: names, exports, output paths, refusing an unknown benchmark."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

import benchmarks
from agentrt.core._errors import ConfigurationError
from benchmarks import BENCHMARKS, bench_command
from benchmarks.__main__ import app
from benchmarks.command import DOCS_FILE, RESULTS_DIR

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _python(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run this interpreter in ``cwd`` with only the repository root to find packages by."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def test_exports_are_exactly_the_public_names() -> None:
    assert sorted(benchmarks.__all__) == sorted(
        ["BENCHMARKS", "SCHEMA_VERSION", "BenchResult", "Environment", "bench_command",
         "read_result"]
    )  # fmt: skip
    assert set(BENCHMARKS) >= {"branches", "frontier", "configs", "overhead", "peer"}


@pytest.mark.parametrize("path", sorted(RESULTS_DIR.glob("*.json")), ids=lambda p: p.name)
def test_every_stored_result_renders_its_docs_section(path: Path, tmp_path: Path) -> None:
    from benchmarks import read_result
    from benchmarks.command import document_result

    result = read_result(path)
    docs = tmp_path / "BENCHMARKS.md"
    document_result(result, docs, Console(file=None, quiet=True))
    text = docs.read_text(encoding="utf-8")
    tag = f"{result.benchmark}{'-quick' if result.quick else ''}"
    assert f"<!-- bench:{tag} -->" in text and f"<!-- /bench:{tag} -->" in text
    assert "| " in text  # at least one table


async def test_an_unknown_benchmark_is_refused_before_any_pool(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown benchmark 'nope'"):
        await bench_command("nope", quick=True, console=Console(file=None), output_dir=tmp_path)


def test_the_peer_graph_compiles_with_a_node_timeout() -> None:
    pytest.importorskip("langchain_openai")
    from benchmarks.peer import peer_graph

    graph = peer_graph("http://127.0.0.1:9", "m", n=2, max_tokens=16, step_timeout_s=1.0)
    assert set(graph.get_graph().nodes) >= {"decompose", "solve", "combine", "check"}


def test_help_from_another_directory_lists_every_benchmark(tmp_path: Path) -> None:
    done = _python(["-m", "benchmarks", "--help"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "python -m benchmarks" in done.stdout
    for name in BENCHMARKS:
        assert f"{name}: " in done.stdout
    for option in ("--quick", "--tasks", "--seed", "--count", "--output", "--docs"):
        assert option in done.stdout


def test_output_paths_are_the_checkouts_whatever_the_cwd(tmp_path: Path) -> None:
    assert RESULTS_DIR == REPO / "benchmarks" / "results"
    assert DOCS_FILE == REPO / "docs" / "BENCHMARKS.md"
    defaults = inspect.signature(bench_command).parameters
    assert defaults["output_dir"].default == RESULTS_DIR
    assert defaults["docs"].default == DOCS_FILE
    printed = "from benchmarks.command import DOCS_FILE, RESULTS_DIR; print(RESULTS_DIR, DOCS_FILE)"
    done = _python(["-c", printed], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(RESULTS_DIR), str(DOCS_FILE)]


def test_the_command_writes_to_the_checkout_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    async def fake_bench_command(name: str, **options: Any) -> None:
        calls.append({"name": name, **options})

    monkeypatch.setattr("benchmarks.__main__.bench_command", fake_bench_command)
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["branches", "--quick"]).exit_code == 0
    elsewhere = ["frontier", "-o", "out", "--docs", "d.md", "--count", "3"]
    assert runner.invoke(app, elsewhere).exit_code == 0
    first, second = calls
    assert (first["name"], first["quick"], first["output_dir"], first["docs"]) == (
        "branches", True, RESULTS_DIR, DOCS_FILE,
    )  # fmt: skip
    assert (second["output_dir"], second["docs"], second["count"]) == (Path("out"), Path("d.md"), 3)


def test_an_unknown_benchmark_is_one_line_and_exit_1() -> None:
    result = runner.invoke(app, ["nope"])
    assert result.exit_code == 1
    assert "unknown benchmark 'nope'" in result.output and "Traceback" not in result.output


def test_the_library_has_no_bench_command_and_does_not_import_benchmarks(tmp_path: Path) -> None:
    from agentrt.cli.app import app as agentrt_app

    assert "bench" not in {c.name for c in agentrt_app.registered_commands}
    probe = "import sys, agentrt, agentrt.cli.app; print('benchmarks' in sys.modules)"
    done = _python(["-c", probe], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    wheel = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert wheel["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["agentrt"]
