"""Benchmarks against the live pool (``python -m benchmarks NAME``); see docs/BENCHMARKS.md."""

from benchmarks.command import BENCHMARKS, bench_command
from benchmarks.results import SCHEMA_VERSION, BenchResult, Environment, read_result

__all__ = [
    "BENCHMARKS",
    "SCHEMA_VERSION",
    "BenchResult",
    "Environment",
    "bench_command",
    "read_result",
]
