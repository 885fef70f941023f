"""Every benchmark ``python -m benchmarks`` knows, by name. Add yours here."""

from __future__ import annotations

from benchmarks import (
    branches,
    chaos,
    configs,
    drift,
    frontier,
    hedging,
    load,
    overhead,
    peer,
    policies,
    priority,
    serve_load,
    tools,
)
from benchmarks.registry import Benchmark

__all__ = ["CATALOG"]

CATALOG: dict[str, Benchmark] = {
    b.name: b
    for b in (
        branches.BENCHMARK,
        frontier.BENCHMARK,
        configs.BENCHMARK,
        overhead.BENCHMARK,
        peer.BENCHMARK,
        policies.BENCHMARK,
        chaos.BENCHMARK,
        load.BENCHMARK,
        hedging.BENCHMARK,
        drift.BENCHMARK,
        tools.BENCHMARK,
        priority.BENCHMARK,
        serve_load.BENCHMARK,
    )
}
