"""Scoring candidates against deadlines, and the oracle: the best static config
per deadline in hindsight (pure functions over recorded outcomes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Outcome", "absolute_percentage_error", "best_static", "score", "within"]


@dataclass(frozen=True)
class Outcome:
    """One candidate on one task: was the answer right, how long the call took."""

    candidate: str
    task: int
    correct: bool
    latency_s: float
    tokens: int = 0
    deadline_s: float | None = None
    config: str | None = None
    predicted_s: float | None = None
    cut: bool = False
    model_s: float | None = None
    """``config``: the config that ran; ``deadline_s``: the deadline it ran under
    (None: run once, scored at every deadline); ``predicted_s``: the latency the
    plan's models predicted for it (their mean, the point estimate); ``cut``: the
    slice cut its branches (its latency is then a lower bound, not a reading);
    ``model_s``: for one greedy branch, what the latency model (as corrected when
    the call was planned) predicts for the tokens it did generate: the latency
    model's own error, without the output length's."""


def within(outcome: Outcome, deadline_s: float, margin_s: float) -> bool:
    return outcome.latency_s <= deadline_s + margin_s


def score(
    outcomes: Sequence[Outcome], deadline_s: float, margin_s: float
) -> dict[str, dict[str, float]]:
    """Per candidate at one deadline: accuracy counting an overrun as wrong, share
    of calls inside ``deadline_s + margin_s``, mean tokens and latency. Outcomes
    run under another deadline are left out."""
    by: dict[str, list[Outcome]] = {}
    for o in outcomes:
        if o.deadline_s is None or o.deadline_s == deadline_s:
            by.setdefault(o.candidate, []).append(o)
    table: dict[str, dict[str, float]] = {}
    for name, rows in by.items():
        inside = [within(o, deadline_s, margin_s) for o in rows]
        table[name] = {
            "accuracy": sum(o.correct and ok for o, ok in zip(rows, inside, strict=True))
            / len(rows),
            "inside": sum(inside) / len(rows),
            "tokens": sum(o.tokens for o in rows) / len(rows),
            "latency_s": sum(o.latency_s for o in rows) / len(rows),
            "tasks": float(len(rows)),
        }
    return table


def best_static(
    scores: Mapping[str, Mapping[str, float]], static: Sequence[str]
) -> tuple[str, float] | None:
    """The static candidate with the highest accuracy (ties: fewer tokens, then
    name order), as ``(name, accuracy)``; None when none was scored."""
    ranked = sorted(
        (name for name in static if name in scores),
        key=lambda n: (-scores[n]["accuracy"], scores[n]["tokens"], n),
    )
    return (ranked[0], scores[ranked[0]]["accuracy"]) if ranked else None


def absolute_percentage_error(predicted_s: float | None, actual_s: float) -> float | None:
    """``|predicted - actual| / actual``; None without a prediction or a duration."""
    if predicted_s is None or actual_s <= 0:
        return None
    return abs(predicted_s - actual_s) / actual_s
