"""Absolute deadlines on a monotonic clock, and their ambient scope.

A :class:`Deadline` is an instant on a :class:`~agentrt.core._clock.Clock`;
``remaining()`` is arithmetic. It has a *hard* instant (cancel work) and an
optional earlier *soft* instant (stop starting work, wrap up and return the best
so far). Children never outlive their parent.

The deadline in force travels in a contextvar (:func:`deadline_scope`,
:func:`current_deadline`) so nodes, tools and chat models read it without
plumbing. Across a process boundary only the time *remaining* travels, as a
``grpc-timeout``-style header (:meth:`Deadline.to_header`,
:meth:`Deadline.from_header`), never an absolute time.
"""

from __future__ import annotations

import contextvars
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from agentrt.core._clock import Clock, current_clock, wall_time_ns
from agentrt.core._errors import ConfigurationError, DeadlineExceeded

__all__ = [
    "DEADLINE_HEADER",
    "PRIORITY_EPOCH_S",
    "Deadline",
    "current_deadline",
    "deadline_scope",
]

DEADLINE_HEADER = "agentrt-timeout"
"""Header carrying the time remaining, in gRPC's ``grpc-timeout`` format."""

PRIORITY_EPOCH_S = 1_767_225_600
"""2026-01-01T00:00:00Z: :meth:`Deadline.priority` counts milliseconds from it, so
every process and machine (with a synchronised clock) ranks the same deadline
the same way, in numbers that stay far inside a 64-bit integer."""

_HEADER_UNITS_S = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_HEADER_RE = re.compile(r"^(\d{1,8})([HMSmun])$")


@dataclass(frozen=True)
class Deadline:
    """An absolute hard instant (and optional soft instant) on ``clock``."""

    hard_at: float
    clock: Clock = field(repr=False, compare=False)
    soft_at: float = math.inf
    started_at: float = 0.0
    scope: str = "run"

    def __post_init__(self) -> None:
        if math.isnan(self.hard_at):
            raise ConfigurationError("Deadline.hard_at must be a number, got nan")
        if self.soft_at > self.hard_at:
            object.__setattr__(self, "soft_at", self.hard_at)

    # -- construction -------------------------------------------------------

    @classmethod
    def after(
        cls,
        seconds: float,
        *,
        clock: Clock | None = None,
        soft_margin_s: float = 0.0,
        scope: str = "run",
    ) -> Deadline:
        """A deadline ``seconds`` from now; the soft instant ``soft_margin_s`` before it."""
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            raise ConfigurationError(f"deadline must be a number of seconds, got {seconds!r}")
        if math.isnan(seconds) or seconds <= 0:
            raise ConfigurationError(f"deadline must be > 0 seconds, got {seconds!r}")
        if soft_margin_s < 0 or math.isnan(soft_margin_s):
            raise ConfigurationError(f"soft_margin_s must be >= 0, got {soft_margin_s!r}")
        clock = clock or current_clock()
        now = clock.now()
        hard_at = now + seconds
        return cls(
            hard_at=hard_at,
            clock=clock,
            soft_at=hard_at - min(soft_margin_s, seconds),
            started_at=now,
            scope=scope,
        )

    @classmethod
    def never(cls, *, clock: Clock | None = None, scope: str = "run") -> Deadline:
        """A deadline that never expires (``remaining()`` is infinite)."""
        clock = clock or current_clock()
        return cls(hard_at=math.inf, clock=clock, started_at=clock.now(), scope=scope)

    def child(
        self,
        *,
        at_most_s: float | None = None,
        fraction: float | None = None,
        soft_margin_s: float = 0.0,
        scope: str | None = None,
    ) -> Deadline:
        """A deadline inside this one: at most ``at_most_s`` from now and/or a
        ``fraction`` of the time remaining, never later than this deadline."""
        if at_most_s is not None and (math.isnan(at_most_s) or at_most_s < 0):
            raise ConfigurationError(f"at_most_s must be >= 0, got {at_most_s!r}")
        if fraction is not None and not 0.0 <= fraction <= 1.0:
            raise ConfigurationError(f"fraction must be in [0, 1], got {fraction!r}")
        now = self.clock.now()
        hard_at = self.hard_at
        if at_most_s is not None:
            hard_at = min(hard_at, now + at_most_s)
        if fraction is not None and fraction < 1.0:
            remaining = self.remaining()
            # a fraction of forever is forever, except none of it (0 * inf is nan)
            share = 0.0 if fraction == 0.0 else fraction * remaining
            hard_at = min(hard_at, now + share)
        soft_at = min(self.soft_at, hard_at - soft_margin_s)
        return Deadline(
            hard_at=hard_at,
            clock=self.clock,
            soft_at=max(now, soft_at),
            started_at=now,
            scope=scope or self.scope,
        )

    # -- reading ------------------------------------------------------------

    @property
    def budget_s(self) -> float:
        """The whole budget this deadline was given, in seconds."""
        return self.hard_at - self.started_at

    def elapsed(self) -> float:
        """Seconds since this deadline was created."""
        return self.clock.now() - self.started_at

    def remaining(self) -> float:
        """Seconds until the hard instant, never below zero."""
        return max(0.0, self.hard_at - self.clock.now())

    def soft_remaining(self) -> float:
        """Seconds until the soft instant (wrap-up time), never below zero."""
        return max(0.0, self.soft_at - self.clock.now())

    def overrun(self) -> float:
        """Seconds past the hard instant (0 while not expired)."""
        return max(0.0, self.clock.now() - self.hard_at)

    @property
    def expired(self) -> bool:
        return self.clock.now() >= self.hard_at

    @property
    def soft_expired(self) -> bool:
        return self.clock.now() >= self.soft_at

    def check(self) -> None:
        """Raise :class:`DeadlineExceeded` if the hard instant has passed."""
        if self.expired:
            raise self.exceeded()

    def exceeded(self) -> DeadlineExceeded:
        """The error describing this deadline's expiry, ready to raise."""
        return DeadlineExceeded(self.scope, self.budget_s, self.elapsed())

    # -- crossing a process boundary ----------------------------------------

    def to_header(self) -> str:
        """The time remaining in ``grpc-timeout`` format (e.g. ``"1500m"``; ``"0n"``
        once expired)."""
        remaining = max(0.0, self.remaining())
        if math.isinf(remaining):
            return "99999999H"
        for unit, scale in (("n", 1e-9), ("u", 1e-6), ("m", 1e-3), ("S", 1.0), ("M", 60.0)):
            value = math.ceil(remaining / scale)
            if value < 100_000_000:
                return f"{value}{unit}"
        return f"{min(99_999_999, math.ceil(remaining / 3600.0))}H"

    def priority(self) -> int | None:
        """This deadline as a vLLM request ``priority`` (lower is served first):
        the wall-clock instant it expires, in milliseconds since
        :data:`PRIORITY_EPOCH_S`. Earliest deadline first, across runs, worker
        processes and hosts. ``None`` for a deadline that never expires."""
        remaining = self.remaining()
        if math.isinf(remaining):
            return None
        return round((wall_time_ns() / 1e9 + remaining - PRIORITY_EPOCH_S) * 1000.0)

    @classmethod
    def from_header(
        cls, value: str, *, clock: Clock | None = None, scope: str = "remote"
    ) -> Deadline:
        """A local deadline from a received time-remaining header."""
        match = _HEADER_RE.match(value.strip())
        if match is None:
            raise ConfigurationError(
                f"{DEADLINE_HEADER} header must look like '1500m' (digits + one of H M S m u n),"
                f" got {value!r}"
            )
        seconds = int(match.group(1)) * _HEADER_UNITS_S[match.group(2)]
        clock = clock or current_clock()
        now = clock.now()
        return cls(hard_at=now + seconds, clock=clock, started_at=now, scope=scope)


_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "agentrt_deadline", default=None
)


def current_deadline() -> Deadline | None:
    """The deadline in force in this context, or ``None`` outside any scope."""
    return _current.get()


@contextmanager
def deadline_scope(deadline: Deadline) -> Iterator[Deadline]:
    """Make ``deadline`` ambient inside the block; a nested scope can only tighten it."""
    outer = _current.get()
    effective = deadline
    if outer is not None and outer.hard_at < deadline.hard_at:
        effective = outer.child(scope=deadline.scope)
    token = _current.set(effective)
    try:
        yield effective
    finally:
        _current.reset(token)
