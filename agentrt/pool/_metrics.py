"""Reading vLLM's Prometheus ``/metrics`` text.

Only plain samples are kept, summed over label sets per metric name
(``vllm:num_requests_running{model_name="x"} 2`` -> ``{"vllm:num_requests_running": 2.0}``).
Histogram ``_sum``/``_count`` samples keep their suffixes.
"""

from __future__ import annotations

import math
from collections.abc import Collection

__all__ = ["parse_prometheus_text"]


def parse_prometheus_text(text: str, names: Collection[str] | None = None) -> dict[str, float]:
    """Sum every sample of the exposition ``text`` by metric name; only the metrics
    in ``names`` when given (the pool's load check reads two of ~600 lines)."""
    wanted = tuple(names) if names is not None else None
    totals: dict[str, float] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if wanted is not None and not line.startswith(wanted):
            continue
        name, value = _split_sample(line)
        if name is None:
            continue
        if wanted is not None and name not in wanted:
            continue  # a longer name sharing a wanted prefix
        totals[name] = totals.get(name, 0.0) + value
    return totals


def _split_sample(line: str) -> tuple[str | None, float]:
    if "{" in line:
        name, _, rest = line.partition("{")
        _, _, tail = rest.rpartition("}")
    else:
        name, _, tail = line.partition(" ")
    fields = tail.split()
    if not name or not fields:
        return None, 0.0
    try:
        value = float(fields[0])
    except ValueError:
        return None, 0.0
    if math.isnan(value):
        return None, 0.0
    return name.strip(), value
