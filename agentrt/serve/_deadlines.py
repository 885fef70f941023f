"""A run's deadline from its request (pure).

A caller may say how long a run may take in three places:

* the ``agentrt-timeout`` header, the time remaining in gRPC's ``grpc-timeout``
  format (``1500m``, ``8S``), as an upstream agentrt run or ``remote_graph`` sends it;
* ``context["deadline_s"]`` in the run's body;
* ``config["configurable"]["deadline_s"]`` in the run's body.

The tightest of those given wins: a caller can shorten an upstream deadline but
never extend it. With none given, the graph's budget profile's ``deadline_s``
applies. Each given value must be a number of seconds, finite, above zero and at
most the server's ``max_deadline_s`` (3600 by default); anything else is refused
with a 422 naming where it came from and the value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from agentrt.core._clock import FakeClock
from agentrt.core._deadline import DEADLINE_HEADER, Deadline
from agentrt.core._errors import ConfigurationError
from agentrt.serve._protocol import RequestRefused, shown

__all__ = ["MAX_DEADLINE_S", "RunDeadline", "deadline_from_header", "run_deadline"]

MAX_DEADLINE_S = 3600.0
"""The longest deadline a request may ask for, by default."""

DeadlineSource = Literal["header", "context", "config", "profile"]


@dataclass(frozen=True)
class RunDeadline:
    """The seconds a run is given, and which of the request's sources set them."""

    seconds: float
    source: DeadlineSource


def deadline_from_header(value: str) -> float:
    """The seconds an ``agentrt-timeout`` header gives (a 422 if it is malformed)."""
    try:
        # The header is a duration: read on a clock at zero, nothing depends on the time.
        return Deadline.from_header(value, clock=FakeClock(0.0)).budget_s
    except ConfigurationError as exc:
        raise RequestRefused(
            422, f"header {DEADLINE_HEADER}: {exc}", field=f"header {DEADLINE_HEADER}", value=value
        ) from None


def run_deadline(
    *,
    header: str | None,
    context: Mapping[str, Any] | None,
    configurable: Mapping[str, Any] | None,
    profile_deadline_s: float,
    max_deadline_s: float = MAX_DEADLINE_S,
) -> RunDeadline:
    """The run's deadline: the tightest of the header, ``context["deadline_s"]`` and
    ``configurable["deadline_s"]`` that are given, else the profile's."""
    given: list[RunDeadline] = []
    if header is not None:
        where = f"header {DEADLINE_HEADER}"
        seconds = _checked(deadline_from_header(header), where, header, max_deadline_s)
        given.append(RunDeadline(seconds, "header"))
    sources: tuple[tuple[DeadlineSource, str, Mapping[str, Any] | None], ...] = (
        ("context", "context.deadline_s", context),
        ("config", "config.configurable.deadline_s", configurable),
    )
    for source, where, mapping in sources:
        if mapping is not None and "deadline_s" in mapping:
            raw = mapping["deadline_s"]
            given.append(RunDeadline(_checked(raw, where, raw, max_deadline_s), source))
    if not given:
        return RunDeadline(float(profile_deadline_s), "profile")
    return min(given, key=lambda d: d.seconds)


def _checked(seconds: object, where: str, raw: object, max_deadline_s: float) -> float:
    """``seconds`` if it is a usable deadline, else a 422 naming ``where`` and ``raw``."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        problem = "must be a number of seconds"
    elif math.isnan(seconds) or math.isinf(seconds):
        problem = "must be a finite number of seconds"
    elif seconds <= 0:
        problem = "must be greater than zero"
    elif seconds > max_deadline_s:
        problem = f"must be at most {max_deadline_s:g} s (this server's longest deadline)"
    else:
        return float(seconds)
    raise RequestRefused(422, f"{where} = {shown(raw)}: {problem}", field=where, value=raw)
