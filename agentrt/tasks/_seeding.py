"""Argument checks and seeded random sources shared by the generators."""

from __future__ import annotations

import random

from agentrt.core._errors import ConfigurationError

__all__ = ["check_count", "check_range", "rng_for", "task_id"]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def rng_for(family: str, seed: int) -> random.Random:
    """A private random source for ``family`` at ``seed``.

    Seeding with the family's name too keeps two families with the same seed
    uncorrelated; string seeds hash with SHA-512, so this is stable across runs.
    """
    if not _is_int(seed):
        raise ConfigurationError(f"{family}: seed must be an integer, got {seed!r}")
    return random.Random(f"agentrt.tasks:{family}:{seed}")


def check_count(family: str, count: int) -> None:
    if not _is_int(count) or count < 0:
        raise ConfigurationError(f"{family}: count must be an integer >= 0, got {count!r}")


def check_range(
    family: str, field: str, value: int | tuple[int, int], lowest: int, highest: int
) -> tuple[int, int]:
    """``value`` (one int, or an inclusive ``(low, high)`` pair) as a pair within bounds."""
    pair: tuple[object, ...] = (
        (value, value) if _is_int(value) else (value if isinstance(value, tuple) else ())
    )
    low, high = (pair[0], pair[-1]) if len(pair) == 2 else (None, None)
    if not (
        isinstance(low, int)
        and isinstance(high, int)
        and _is_int(low)
        and _is_int(high)
        and lowest <= low <= high <= highest
    ):
        raise ConfigurationError(
            f"{family}: {field} must be an integer or a (low, high) pair within "
            f"{lowest}..{highest}, got {value!r}"
        )
    return low, high


def task_id(family: str, seed: int, index: int) -> str:
    return f"{family}/{seed}/{index}"
