"""A benchmark's result document: what ran, where, under what load, and the rows.

Every result file under ``benchmarks/results/`` has this shape, so the tables
and plots in ``docs/BENCHMARKS.md`` can be rebuilt from the files alone.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentrt.core._errors import ConfigurationError
from agentrt.pool._hardware import NATIVE_BF16_FLAGS, cpu_family, cpu_flags, cpu_model

__all__ = ["SCHEMA_VERSION", "BenchResult", "Environment", "environment", "read_result"]

SCHEMA_VERSION = 1


class Environment(BaseModel):
    """Where a benchmark ran: machine, pool, model and the load beside it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    machine: str
    cores: int
    pool: list[str]
    model: str
    load_avg_start: float
    load_avg_end: float | None = None


class BenchResult(BaseModel):
    """One benchmark run: parameters, rows (one dict per measured point), summary."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    benchmark: str
    quick: bool
    seed: int
    started_at: str
    finished_at: str
    duration_s: float = Field(ge=0.0)
    environment: Environment
    parameters: dict[str, Any]
    rows: list[dict[str, Any]]
    summary: dict[str, Any] = Field(default_factory=dict)

    @property
    def file_name(self) -> str:
        return f"{self.benchmark}{'-quick' if self.quick else ''}.json"

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / self.file_name
        path.write_text(json.dumps(self.model_dump(), indent=1) + "\n", encoding="utf-8")
        return path


def read_result(path: Path) -> BenchResult:
    """Load a result file, naming the file when it is not one."""
    try:
        return BenchResult.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{path}: not a benchmark result: {exc}") from exc


def environment(pool: list[str], model: str) -> Environment:
    """The environment now: machine (its CPU model, as ``lscpu`` names it, and
    whether it has native bf16), cores, 1-minute load average."""
    cores = os.cpu_count() or 1
    flags = cpu_flags()
    bf16 = "native bf16" if NATIVE_BF16_FLAGS & flags else "no native bf16"
    family = cpu_family()
    named = f"{cpu_model()}, family {family}" if family else cpu_model()
    machine = f"{platform.machine()} {named} ({bf16})"
    return Environment(
        machine=f"{machine}, {cores} cores", cores=cores, pool=pool, model=model,
        load_avg_start=_load(),
    )  # fmt: skip


def _load() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return -1.0


def load_now() -> float:
    return _load()
