"""``agentrt calibrate``: measure the pool, print the tables, write the calibration
under the pool's fingerprint; the calibration step of ``agentrt up`` and ``status``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agentrt.core._settings import Settings
from agentrt.pool._local import ServerRecord, pool_endpoints
from agentrt.pool._pool import EndpointPool
from agentrt.tts._calibrate import CalibrationPlan, speedup_rows, table_rows
from agentrt.tts._calibration_store import (
    cache_path,
    find_cached,
    measure_and_cache,
    measured_summary,
    pool_fingerprint_of,
    resolve_latency,
)

__all__ = ["calibrate_if_needed", "calibration_status", "run_calibration"]


def _print_table(console: Console, title: str, rows: list[dict[str, object]]) -> None:
    if not rows:
        return
    table = Table(title=title)
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*("-" if v is None else str(v) for v in row.values()))
    console.print(table)


async def run_calibration(*, quick: bool, output: Path | None, console: Console) -> None:
    """Measure the pool (the configured one, else the local one, started for this if
    none runs) and write the calibration to ``output``, by default the cache file of
    the pool's fingerprint, which every later run on the same pool finds."""
    plan = CalibrationPlan.quick() if quick else CalibrationPlan()
    settings = Settings()
    async with (
        pool_endpoints(plain=1, spec=1, announce=console.print) as specs,
        EndpointPool(specs) as pool,
    ):
        fingerprint = pool_fingerprint_of(pool, settings=settings)
        target = output or cache_path(settings, fingerprint)
        console.print(
            f"pool {fingerprint.describe()}\n"
            f"measuring groups {sorted(pool.groups)}, N in {list(plan.ns)}, "
            f"{plan.tokens} tokens per branch, {plan.repeats} repeat(s)...",
            highlight=False, soft_wrap=True,
        )  # fmt: skip
        header = "# Written by `agentrt calibrate`" + (" --quick" if quick else "") + ".\n"
        models, measurements, wall_s = await measure_and_cache(
            pool, fingerprint, target, plan=plan, header=header
        )
    _print_table(console, "per-token time by concurrent branches", table_rows(measurements))
    _print_table(console, "speculative speedup over plain", speedup_rows(models, plan.ns))
    for line in measured_summary(measurements, wall_s):
        console.print(f"  {line}", highlight=False)
    console.print(f"wrote {target}", highlight=False)


async def calibrate_if_needed(
    records: Sequence[ServerRecord], *, auto: bool | None, console: Console
) -> None:
    """After ``agentrt up``: say which calibration the pool will use, measuring a
    quick one first when none exists for its fingerprint (and auto is on)."""
    async with EndpointPool([r.endpoint() for r in records], health_interval_s=0) as pool:
        choice = await resolve_latency(
            pool, local_servers=records, auto=auto, announce=console.print
        )
    console.print(f"latency: {choice.describe()}", highlight=False, soft_wrap=True)


def calibration_status(pool: EndpointPool) -> str:
    """``agentrt status``'s line: the pool's fingerprint and its calibration, if any."""
    settings = Settings()
    fingerprint = pool_fingerprint_of(pool, settings=settings)
    found = find_cached(settings, fingerprint)
    if found is not None:
        return f"pool fingerprint {fingerprint.hash}: calibrated ({found})"
    nothing = f"pool fingerprint {fingerprint.hash}: no calibration for it"
    if fingerprint.local:
        return nothing + " (the next `agentrt run` measures one, unless AGENTRT_AUTO_CALIBRATE=0)"
    return nothing + " (run `agentrt calibrate`)"
