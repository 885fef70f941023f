"""``agentrt calibrate``: measure the pool, print the tables, write the profile."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import tomli_w
from rich.console import Console
from rich.table import Table

from agentrt.pool._local import pool_endpoints
from agentrt.pool._pool import EndpointPool
from agentrt.tts._calibrate import (
    CalibrationPlan,
    calibrate,
    calibration_document,
    fit_models,
    speedup_rows,
    table_rows,
)

__all__ = ["run_calibration"]


def _print_table(console: Console, title: str, rows: list[dict[str, object]]) -> None:
    if not rows:
        return
    table = Table(title=title)
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*("-" if v is None else str(v) for v in row.values()))
    console.print(table)


async def run_calibration(*, quick: bool, output: Path, console: Console) -> None:
    plan = CalibrationPlan.quick() if quick else CalibrationPlan()
    async with (
        pool_endpoints(plain=1, spec=1, announce=console.print) as specs,
        EndpointPool(specs) as pool,
    ):
        console.print(
            f"measuring groups {sorted(pool.groups)}, N in {list(plan.ns)}, "
            f"{plan.tokens} tokens per branch, {plan.repeats} repeat(s)..."
        )
        measurements = await calibrate(pool, plan)
        model_name = pool.endpoints[0].served_model or "unknown"
        draft = {
            s.spec.group: s.spec.draft_tokens or 4 for s in pool.endpoints if s.spec.speculative
        }
    models = fit_models(measurements, draft)
    _print_table(console, "per-token time by concurrent branches", table_rows(measurements))
    _print_table(console, "speculative speedup over plain", speedup_rows(models, plan.ns))
    machine = f"{platform.machine()} {platform.processor() or ''} {_cores()} cores".strip()
    document = calibration_document(
        measurements, models, plan=plan, model_name=model_name, machine=machine
    )
    header = "# Written by `agentrt calibrate`" + (" --quick" if quick else "") + ".\n"
    _write(output, header + tomli_w.dumps(_without_none(document)))
    console.print(f"wrote {output}")


def _without_none(value: Any) -> Any:
    """TOML has no null: drop keys whose value is None, recursively."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _cores() -> int:
    return os.cpu_count() or 0
