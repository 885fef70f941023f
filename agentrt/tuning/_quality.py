"""Fit quality on held-out spans: absolute percentage error of predicted latency.

Runs are split by trace id (a stable hash: every fourth run is held out), the
models are fitted on the rest, and each held-out *complete* call (every
branch ran to its end: no early stop, no cut) is predicted again. "Before" is
the mean latency the executor predicted when it ran the call (recorded on its
span); "after" is what the fitted models predict for the same config, prompt
and node (with the length model a run derives from the node's profile
statistics). Calls an early stop or the slice cut short are left out: their
latency is not the config's.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from agentrt.core._stats import quantile
from agentrt.tts._latency import LatencyModel
from agentrt.tts._length import LengthModel
from agentrt.tuning._fit import Fit, config_of, fit
from agentrt.tuning._samples import CallSample, RunSample

__all__ = ["ErrorStats", "FitQuality", "evaluate", "held_out", "latency_errors", "predict_mean_s"]

HOLD_OUT_EVERY = 4


@dataclass(frozen=True)
class ErrorStats:
    """Median and p90 absolute percentage error over ``count`` calls (in %)."""

    count: int
    median_pct: float | None
    p90_pct: float | None

    @classmethod
    def of(cls, errors: Sequence[float]) -> ErrorStats:
        if not errors:
            return cls(0, None, None)
        return cls(len(errors), 100 * quantile(errors, 0.5), 100 * quantile(errors, 0.9))


@dataclass(frozen=True)
class FitQuality:
    """Latency-prediction error on the held-out calls, before and after tuning."""

    held_out_runs: int
    before: ErrorStats
    after: ErrorStats


def held_out(runs: Sequence[RunSample]) -> tuple[list[RunSample], list[RunSample]]:
    """``(train, test)``: every :data:`HOLD_OUT_EVERY`-th run (by a stable hash of
    its trace id) is held out; with fewer than that many runs, the last one."""
    test = [r for r in runs if zlib.crc32(r.trace_id.encode()) % HOLD_OUT_EVERY == 0]
    if not test and len(runs) > 1:
        test = [runs[-1]]
    chosen = {r.trace_id for r in test}
    return [r for r in runs if r.trace_id not in chosen], test


def predict_mean_s(
    call: CallSample, latency: dict[str, LatencyModel], length: LengthModel
) -> float | None:
    """The models' mean latency for the config, prompt and node of ``call`` (no load:
    the planner plans without it)."""
    model = latency.get(call.group)
    if model is None:
        return None
    return model.predict_mean(config_of(call), call.prompt_tokens, length)


def latency_errors(
    calls: Sequence[CallSample], fitted: Fit | None
) -> list[tuple[float, float | None]]:
    """``(before, after)`` absolute relative errors per complete call
    (``after`` is None without a fit or a model for the call's group)."""
    errors: list[tuple[float, float | None]] = []
    for call in calls:
        if not call.complete or call.predicted_mean_s is None or call.latency_s <= 0:
            continue
        before = abs(call.predicted_mean_s - call.latency_s) / call.latency_s
        after = None
        if fitted is not None:
            node = fitted.nodes.get(call.node)
            length = node.runtime_length if node is not None else LengthModel()
            predicted = predict_mean_s(call, fitted.latency, length)
            if predicted is not None:
                after = abs(predicted - call.latency_s) / call.latency_s
        errors.append((before, after))
    return errors


def evaluate(runs: Sequence[RunSample]) -> FitQuality:
    """Fit on the training runs and measure both errors on the held-out ones."""
    train, test = held_out(runs)
    fitted = fit(train) if train else None
    errors = latency_errors([c for r in test for c in r.calls], fitted)
    return FitQuality(
        held_out_runs=len(test),
        before=ErrorStats.of([b for b, _ in errors]),
        after=ErrorStats.of([a for _, a in errors if a is not None]),
    )
