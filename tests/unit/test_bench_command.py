"""The bench command's surface: names, exports, refusing an unknown benchmark."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

import agentrt.bench
from agentrt.bench import BENCHMARKS, bench_command
from agentrt.errors import ConfigurationError


def test_exports_are_exactly_the_public_names() -> None:
    assert sorted(agentrt.bench.__all__) == sorted(
        ["BENCHMARKS", "SCHEMA_VERSION", "BenchResult", "Environment", "bench_command",
         "read_result"]
    )  # fmt: skip
    assert BENCHMARKS == ("branches", "frontier", "configs", "overhead", "peer")


async def test_an_unknown_benchmark_is_refused_before_any_pool(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown benchmark 'nope'"):
        await bench_command("nope", quick=True, console=Console(file=None), output_dir=tmp_path)


def test_the_peer_graph_compiles_with_a_node_timeout() -> None:
    pytest.importorskip("langchain_openai")
    from agentrt.bench.peer import peer_graph

    graph = peer_graph("http://127.0.0.1:9", "m", n=2, max_tokens=16, step_timeout_s=1.0)
    assert set(graph.get_graph().nodes) >= {"decompose", "solve", "combine", "check"}
