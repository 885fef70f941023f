"""What a benchmark is to ``python -m benchmarks``: a name, a ``measure`` coroutine and
the tables (and optional plot) its result renders into ``docs/BENCHMARKS.md``.

Adding a benchmark is one module that builds a :class:`Benchmark` and one line
in :mod:`benchmarks.catalog`; the command opens the pool, times the run,
writes the JSON and the docs section for every benchmark alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from agentrt.core._settings import Settings
from agentrt.pool._pool import EndpointPool
from agentrt.tts._calibrate import load_latency_models
from agentrt.tts._calibration_store import find_cached, pool_fingerprint_of
from agentrt.tts._latency import LatencyModel
from benchmarks.results import BenchResult

__all__ = ["CALIBRATION", "BenchContext", "Benchmark", "Measured", "Tables"]

CALIBRATION = Settings(project_dir=Path(__file__).resolve().parents[1]).calibration_output()
"""The local pool's calibrated latency models, where ``agentrt calibrate`` writes
them for this checkout (``AGENTRT_CALIBRATION`` when set)."""

Tables = list[tuple[str, str]]
"""(caption, markdown table) pairs, in the order they appear in the docs."""


@dataclass(frozen=True)
class BenchContext:
    """What one benchmark run gets: the open pool and the command's options."""

    pool: EndpointPool
    quick: bool
    seed: int
    tasks: str | Path
    count: int | None
    console: Console

    @property
    def groups(self) -> list[str]:
        return sorted(self.pool.groups)

    def calibration_file(self) -> Path:
        """Where the pool's latency models come from: the calibration cached for its
        fingerprint on this machine (``agentrt up`` measures one), else the checkout's
        file (``agentrt calibrate``'s output, or the prior measured elsewhere)."""
        settings = Settings(project_dir=CALIBRATION.parents[2])
        if settings.calibration is not None:
            return settings.calibration
        cached = find_cached(settings, pool_fingerprint_of(self.pool, settings=settings))
        return cached or CALIBRATION

    def latency_models(self) -> dict[str, LatencyModel]:
        """The calibrated latency models of the groups this pool has (:meth:`calibration_file`)."""
        models = load_latency_models(self.calibration_file())
        return {g: m for g, m in models.items() if g in self.groups}


@dataclass(frozen=True)
class Measured:
    """A benchmark's output: its parameters, one row per measured point, a summary."""

    parameters: dict[str, Any]
    rows: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Benchmark:
    """One entry of ``python -m benchmarks``.

    ``pool`` is the local pool's shape (plain servers, speculative servers) used
    when no pool is configured; ``plot`` draws the PNG beside the docs.
    """

    name: str
    summary: str
    measure: Callable[[BenchContext], Awaitable[Measured]]
    tables: Callable[[BenchResult], Tables]
    plot: Callable[[list[dict[str, Any]], Path, str], object] | None = None
    pool: tuple[int, int] = (1, 1)
