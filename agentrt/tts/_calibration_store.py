"""Which latency calibration a pool uses, and the cache of calibrations by pool fingerprint.

Precedence, first found wins: an explicit file (``--calibration``, ``latency=``
built from one), ``AGENTRT_CALIBRATION``, the calibration cached for the pool's
fingerprint (``<home>/calibration/<hash>.toml``, or one whose recorded pool
covers this one), then — for a local pool only — a quick calibration measured
now when auto-calibration is on, else the prior (the project's
``budgets/calibration/local-pool.toml``, measured on another machine, or the
copy shipped in the wheel). A remote pool with nothing cached plans with the
placeholder models: calibrating it is opt-in (``agentrt calibrate``).

The choice is pure (:func:`choose_calibration`, :func:`should_auto_calibrate`);
:func:`resolve_latency` does the I/O and says what it chose (:class:`CalibrationChoice`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import statistics
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli_w

from agentrt.core._clock import current_clock
from agentrt.core._errors import AgentrtError
from agentrt.core._files import atomic_write_text
from agentrt.core._log import log_dropped
from agentrt.core._settings import Settings
from agentrt.core._validation import without_none
from agentrt.pool._fingerprint import PoolFingerprint, covers, fingerprint_pool
from agentrt.pool._local import LocalPool, ServerRecord
from agentrt.pool._pool import EndpointPool
from agentrt.tts._calibrate import (
    CalibrationPlan,
    Measurement,
    calibrate,
    calibration_document,
    fit_models,
    load_latency_models,
)
from agentrt.tts._latency import LatencyModel

__all__ = [
    "CalibrationChoice",
    "CalibrationKind",
    "cache_path",
    "choose_calibration",
    "find_cached",
    "measure_and_cache",
    "measured_summary",
    "pool_fingerprint_of",
    "recorded_fingerprint",
    "render_calibration",
    "resolve_latency",
    "should_auto_calibrate",
    "write_atomic",
]

CalibrationKind = Literal["explicit", "environment", "fingerprint", "measured", "prior", "none"]
"""Where a pool's latency models came from: a file given, ``AGENTRT_CALIBRATION``,
the fingerprint's cached calibration, one measured now, the prior, or none (the
placeholder models)."""


@dataclass(frozen=True)
class CalibrationChoice:
    """The latency calibration a pool uses and why (``describe()`` says it in words)."""

    kind: CalibrationKind
    path: Path | None
    fingerprint: str | None
    reason: str = ""
    models: Mapping[str, LatencyModel] | None = field(default=None, compare=False, repr=False)
    summary: tuple[str, ...] = ()
    """What a calibration measured now found, one line per group (empty otherwise)."""

    def describe(self) -> str:
        pool = f"pool {self.fingerprint}" if self.fingerprint else "the pool"
        where = f" {self.path}" if self.path is not None else ""
        why = f" ({self.reason})" if self.reason else ""
        text = {
            "explicit": f"calibration{where} (given)",
            "environment": f"calibration{where} (AGENTRT_CALIBRATION)",
            "fingerprint": f"calibration for {pool}:{where}",
            "measured": f"calibration measured now for {pool}:{where}",
            "prior": f"prior calibration{where}, measured on another machine{why}",
            "none": f"placeholder latency models{why}",
        }[self.kind]
        return text if self.kind in ("prior", "none") else text + why


def cache_path(settings: Settings, fingerprint: PoolFingerprint) -> Path:
    """``<home>/calibration/<hash>.toml``: the calibration of one pool fingerprint."""
    return settings.calibration_dir / f"{fingerprint.hash}.toml"


def recorded_fingerprint(path: Path) -> PoolFingerprint | None:
    """The ``[fingerprint]`` a calibration file records, or None (a prior, or
    unreadable: logged, and the file is passed over)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
        table = document.get("fingerprint")
        return None if not isinstance(table, dict) else PoolFingerprint.from_dict(table)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log_dropped(f"calibration {path}: unreadable, skipped", exc, level=logging.DEBUG)
        return None


def find_cached(settings: Settings, fingerprint: PoolFingerprint) -> Path | None:
    """The cached calibration for ``fingerprint``: its own file, else a cached file
    whose recorded pool covers it (same machine, a superset of its servers)."""
    exact = cache_path(settings, fingerprint)
    if exact.is_file():
        return exact
    with contextlib.suppress(OSError):
        for path in sorted(settings.calibration_dir.glob("*.toml")):
            recorded = recorded_fingerprint(path)
            if recorded is not None and covers(recorded, fingerprint):
                return path
    return None


def should_auto_calibrate(*, cached: bool, overridden: bool, auto: bool, local: bool) -> bool:
    """Measure now: nothing is cached for the fingerprint, no file is given
    (explicitly or by ``AGENTRT_CALIBRATION``), auto-calibration is on, and the pool
    is local (a remote pool is calibrated only when asked: ``agentrt calibrate``)."""
    return not cached and not overridden and auto and local


def choose_calibration(
    *,
    explicit: Path | None,
    environment: Path | None,
    cached: Path | None,
    prior: Path | None,
) -> tuple[CalibrationKind, Path] | None:
    """The precedence, pure: explicit > AGENTRT_CALIBRATION > fingerprint cache > prior."""
    for kind, path in (
        ("explicit", explicit),
        ("environment", environment),
        ("fingerprint", cached),
        ("prior", prior),
    ):
        if path is not None:
            return kind, path  # type: ignore[return-value]
    return None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a reader sees the old file or the whole new one
    (:func:`agentrt.core._files.atomic_write_text`: temporary file, fsync, rename)."""
    atomic_write_text(path, text)


def render_calibration(document: Mapping[str, Any], header: str) -> str:
    """The TOML text of a calibration document (TOML has no null: None is dropped)."""
    return header + tomli_w.dumps(without_none(document))


def measured_summary(measurements: Sequence[Measurement], wall_s: float) -> tuple[str, ...]:
    """Per group: TTFT and per-token time at N=1 and the largest N; then the time taken."""
    lines: list[str] = []
    for group in sorted({m.group for m in measurements}):
        decode = [m for m in measurements if m.group == group and m.tokens > 8]
        if not decode:
            continue
        low, high = min(m.n for m in decode), max(m.n for m in decode)
        parts = []
        for n in sorted({low, high}):
            at_n = [m for m in decode if m.n == n]
            ttft_ms = statistics.median(m.ttft_s for m in at_n) * 1000
            per_token_ms = statistics.median(m.per_token_s for m in at_n) * 1000
            parts.append(f"n={n}: TTFT {ttft_ms:.0f} ms, {per_token_ms:.1f} ms/token")
        lines.append(f"{group}: " + "; ".join(parts))
    lines.append(f"measured in {wall_s:.1f} s")
    return tuple(lines)


def pool_fingerprint_of(
    pool: EndpointPool, local_servers: Sequence[ServerRecord] | None = None,
    settings: Settings | None = None,
) -> PoolFingerprint:  # fmt: skip
    """The fingerprint of an opened pool (served models and versions as it learned
    them); its endpoints that are servers of the local pool count as local."""
    if local_servers is None:
        local_servers = LocalPool(settings or Settings()).alive()
    return fingerprint_pool(
        [(s.spec, s.served_model, s.version) for s in pool.endpoints], local_servers
    )


async def measure_and_cache(
    pool: EndpointPool,
    fingerprint: PoolFingerprint,
    output: Path,
    *,
    plan: CalibrationPlan,
    header: str,
) -> tuple[dict[str, LatencyModel], list[Measurement], float]:
    """Calibrate ``pool`` per ``plan``, fit its models and write them, with the
    fingerprint, atomically to ``output``; return the models, points and seconds."""
    clock = current_clock()
    started = clock.now()
    measurements = await calibrate(pool, plan)
    wall_s = clock.now() - started
    draft = {s.spec.group: s.spec.draft_tokens or 4 for s in pool.endpoints if s.spec.speculative}
    models = fit_models(measurements, draft)
    model_name = pool.endpoints[0].served_model or "unknown"
    cores = dict(fingerprint.threads).get("cpus", str(os.cpu_count() or 0))
    machine = f"{fingerprint.cpu_model}, {cores} cores" if fingerprint.local else "remote pool"
    document = calibration_document(
        measurements, models, plan=plan, model_name=model_name, machine=machine,
        fingerprint=fingerprint.to_dict(), wall_s=wall_s,
    )  # fmt: skip
    write_atomic(output, render_calibration(document, header))
    return models, measurements, wall_s


async def resolve_latency(
    pool: EndpointPool,
    *,
    settings: Settings | None = None,
    explicit: Path | None = None,
    local_servers: Sequence[ServerRecord] | None = None,
    auto: bool | None = None,
    plan: CalibrationPlan | None = None,
    announce: Callable[[str], None] | None = None,
) -> CalibrationChoice:
    """The latency models for an opened ``pool``, by the precedence above; on an
    uncalibrated local pool with auto-calibration on (``AGENTRT_AUTO_CALIBRATE``,
    or ``auto``) it measures ``plan`` (default :meth:`CalibrationPlan.auto`) now and
    caches the result. ``announce`` hears what is being done and what was measured."""
    settings = settings or Settings()
    fingerprint = pool_fingerprint_of(pool, local_servers, settings)
    cached = find_cached(settings, fingerprint)
    overridden = explicit is not None or settings.calibration is not None
    auto = settings.auto_calibrate if auto is None else auto
    if should_auto_calibrate(
        cached=cached is not None, overridden=overridden, auto=auto, local=fingerprint.local
    ):
        output = cache_path(settings, fingerprint)
        plan = plan or CalibrationPlan.auto()
        if announce is not None:
            announce(
                f"no calibration for pool {fingerprint.describe()}: measuring one "
                f"(N in {list(plan.ns)}, {plan.tokens} tokens; AGENTRT_AUTO_CALIBRATE=0 "
                "turns this off)..."
            )
        try:
            models, measurements, wall_s = await measure_and_cache(
                pool, fingerprint, output, plan=plan,
                header=f"# Written by agentrt's auto-calibration for pool {fingerprint.hash}.\n",
            )  # fmt: skip
        except AgentrtError as exc:
            failure = f"calibrating failed: {exc}"
        else:
            summary = measured_summary(measurements, wall_s)
            if announce is not None:
                for line in summary:
                    announce(f"  {line}")
            return CalibrationChoice(
                "measured", output, fingerprint.hash, models=models, summary=summary
            )
    else:
        failure = "" if auto or not fingerprint.local else "auto-calibration is off"
    prior = _prior(settings) if fingerprint.local and not overridden else None
    chosen = choose_calibration(
        explicit=explicit, environment=settings.calibration, cached=cached, prior=prior
    )
    if chosen is None:
        reason = failure or (
            f"nothing cached for remote pool {fingerprint.hash}: run `agentrt calibrate`"
        )
        return CalibrationChoice("none", None, fingerprint.hash, reason=reason)
    kind, path = chosen
    if kind == "environment":
        settings.find_calibration()  # the error when AGENTRT_CALIBRATION is not a file
    reason = (failure or "no calibration for this pool") if kind == "prior" else ""
    return CalibrationChoice(
        kind, path, fingerprint.hash, reason=reason, models=load_latency_models(path)
    )


def _prior(settings: Settings) -> Path | None:
    """The prior: the project's (or home's) ``local-pool.toml``, else the packaged one."""
    if settings.calibration is not None:
        return None
    return settings.find_calibration()
