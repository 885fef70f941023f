"""Reading vLLM's Prometheus ``/metrics`` text.

Samples are summed over label sets per sample name
(``vllm:num_requests_running{model_name="x"} 2`` -> ``{"vllm:num_requests_running": 2.0}``).
Histogram ``_bucket``/``_sum``/``_count`` and counter ``_total``/``_created`` samples
keep their suffixes; NaN samples are dropped. The sample lines are read by
``prometheus_client``'s parser (label quoting and escaping, timestamps, exemplars);
a line it rejects is skipped, as a scraper skips a series it cannot read, so one bad
line does not hide the load figures.

Parsing is bounded, as Prometheus's own ``sample_limit`` bounds a scrape: more than
:data:`MAX_SAMPLE_LINES` sample lines (or :data:`MAX_LINES_PER_NAME` per name asked
for) is a ``ValueError`` rather than seconds of the event loop spent on a junk
``/metrics``; the client reads the body under a byte cap and turns that into a
``ProtocolError``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

__all__ = ["MAX_LINES_PER_NAME", "MAX_SAMPLE_LINES", "parse_prometheus_text"]

MAX_SAMPLE_LINES = 20_000
"""Sample lines one exposition may have (vLLM serves ~1,000-3,000)."""
MAX_LINES_PER_NAME = 256
"""Sample lines per metric asked for (one per engine and model label set)."""


def parse_prometheus_text(text: str, names: Collection[str] | None = None) -> dict[str, float]:
    """Sum every sample of the exposition ``text`` by sample name; only the metrics
    in ``names`` when given (the pool's load check reads two of ~600 lines)."""
    wanted = tuple(names) if names is not None else None
    # Comment lines (# HELP, # TYPE) are dropped before parsing: without a TYPE the
    # parser keeps each sample's name as written (a counter TYPE would rename its
    # samples to ``_total``), and only sample lines carry values.
    lines = [line.strip() for line in text.splitlines()]
    if wanted is not None:
        lines = [line for line in lines if line.startswith(wanted)]
        limit = MAX_LINES_PER_NAME * max(1, len(wanted))
    else:
        lines = [line for line in lines if line and line[0] != "#"]
        limit = MAX_SAMPLE_LINES
    if len(lines) > limit:
        raise ValueError(f"{len(lines)} sample lines, more than the {limit} read")
    totals: dict[str, float] = {}
    for sample in _samples(lines):
        if math.isnan(sample.value) or (wanted is not None and sample.name not in wanted):
            continue  # ... or a longer name sharing a wanted prefix
        totals[sample.name] = totals.get(sample.name, 0.0) + float(sample.value)
    return totals


def _samples(lines: list[str]) -> Iterable[Sample]:
    try:
        return _parse("\n".join(lines))
    except ValueError:  # some line is malformed: read the lines one by one, skip the bad
        samples: list[Sample] = []
        for line in lines:
            try:
                samples.extend(_parse(line))
            except ValueError:
                continue
        return samples


def _parse(text: str) -> list[Sample]:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]
