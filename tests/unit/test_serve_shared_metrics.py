"""Several workers' metrics answered as one: each series labelled by its worker,
nothing summed twice, a half-written or stale worker file left out."""

from __future__ import annotations

import os
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agentrt.serve._metrics import STALE_S, SharedMetrics
from agentrt.tracing import merge_expositions


def _exposition(runs: int, seconds: list[float], graph: str = "math") -> str:
    registry = CollectorRegistry()
    counter = Counter("agentrt_runs", "Runs by outcome.", ["graph"], registry=registry)
    counter.labels(graph).inc(runs)
    histogram = Histogram("call_seconds", "Call time.", registry=registry, buckets=(1.0, 5.0))
    for s in seconds:
        histogram.observe(s)
    return generate_latest(registry).decode()


def _families(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    return {
        f.name: [(s.name, s.labels, s.value) for s in f.samples]
        for f in text_string_to_metric_families(text)
    }


def test_each_workers_series_keep_their_own_worker_label() -> None:
    merged = merge_expositions({"11": _exposition(2, [0.5]), "22": _exposition(3, [2.0, 9.0])})
    families = _families(merged)
    totals = {labels["worker"]: v for n, labels, v in families["agentrt_runs"]
              if n == "agentrt_runs_total"}  # fmt: skip
    assert totals == {"11": 2.0, "22": 3.0}
    counts = {labels["worker"]: v for n, labels, v in families["call_seconds"]
              if n == "call_seconds_count"}  # fmt: skip
    assert counts == {"11": 1.0, "22": 2.0}
    buckets = {(labels["worker"], labels["le"]): v for n, labels, v in families["call_seconds"]
               if n == "call_seconds_bucket"}  # fmt: skip
    assert buckets[("22", "+Inf")] == 2.0 and buckets[("22", "5.0")] == 1.0
    assert merged.count("# TYPE agentrt_runs_total counter") == 1


def test_a_worker_whose_text_does_not_parse_is_left_out() -> None:
    merged = merge_expositions({"1": _exposition(1, []), "2": 'broken{le="'})
    assert {labels["worker"] for _, labels, _ in _families(merged)["agentrt_runs"]} == {"1"}
    assert merge_expositions({}) == ""


def test_label_values_are_escaped() -> None:
    merged = merge_expositions({"1": _exposition(1, [], graph='a "quoted"\\graph\nname')})
    (total,) = [labels for n, labels, _ in _families(merged)["agentrt_runs"]
                if n == "agentrt_runs_total"]  # fmt: skip
    assert total["graph"] == 'a "quoted"\\graph\nname'


def test_collect_reads_the_other_workers_fresh_files(tmp_path: Path) -> None:
    (tmp_path / "worker-7.prom").write_text(_exposition(4, []))
    stale = tmp_path / "worker-8.prom"
    stale.write_text(_exposition(100, []))
    old = time.time() - STALE_S - 10
    os.utime(stale, (old, old))
    shared = SharedMetrics(tmp_path, worker="9")
    shared.publish()
    assert shared.path.exists()
    families = _families(shared.collect().decode())
    workers = {labels["worker"] for _, labels, _ in families.get("agentrt_runs", [])}
    assert workers == {"7"}  # worker 9 (this one) has no runs yet; 8 has exited
