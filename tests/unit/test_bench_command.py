"""The bench command's surface: names, exports, refusing an unknown benchmark."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

import benchmarks
from agentrt.core._errors import ConfigurationError
from benchmarks import BENCHMARKS, bench_command


def test_exports_are_exactly_the_public_names() -> None:
    assert sorted(benchmarks.__all__) == sorted(
        ["BENCHMARKS", "SCHEMA_VERSION", "BenchResult", "Environment", "bench_command",
         "read_result"]
    )  # fmt: skip
    assert set(BENCHMARKS) >= {"branches", "frontier", "configs", "overhead", "peer"}


@pytest.mark.parametrize("path", sorted(Path("benchmarks/results").glob("*.json")), ids=str)
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
