"""Several processes' Prometheus expositions as one: what ``GET /metrics`` answers
when ``agentrt serve --workers N`` runs N processes behind one port.

Each worker's series are kept apart by a ``worker`` label (its process id), so a
counter is never summed twice nor a histogram's buckets mixed: Prometheus (or a
``sum without (worker)``) adds them up. Pure text in, text out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

__all__ = ["WORKER_LABEL", "merge_expositions"]

WORKER_LABEL = "worker"
"""The label that tells one worker's series from another's."""


def merge_expositions(by_worker: Mapping[str, str]) -> str:
    """One exposition of every worker's (``worker id -> exposition text``), each
    sample labelled ``worker="<id>"``; families in name order, each with its HELP
    and TYPE once. A worker whose text does not parse is left out (a half-written
    file is the next scrape's)."""
    families: dict[str, tuple[str, str, list[str]]] = {}
    for worker in sorted(by_worker):
        try:
            parsed = list(text_string_to_metric_families(by_worker[worker]))
        except ValueError:
            continue
        for family in parsed:
            _, _, lines = families.setdefault(family.name, (family.documentation, family.type, []))
            lines.extend(_line(sample, worker) for sample in family.samples)
    out: list[str] = []
    for name in sorted(families):
        documentation, kind, lines = families[name]
        # A counter's header names its _total series, as prometheus_client writes it
        # (and its parser reads it back): the family name alone would orphan them.
        shown = f"{name}_total" if kind == "counter" else name
        out.append(f"# HELP {shown} {_escape_help(documentation)}")
        out.append(f"# TYPE {shown} {kind}")
        out.extend(lines)
    return "\n".join(out) + "\n" if out else ""


def _line(sample: Sample, worker: str) -> str:
    labels = {**sample.labels, WORKER_LABEL: worker}
    inside = ",".join(f'{key}="{_escape_label(value)}"' for key, value in labels.items())
    return f"{sample.name}{{{inside}}} {_value(sample.value)}"


def _value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")
