"""Benchmark tables, doc sections and the result JSON schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentrt.core._errors import ConfigurationError
from benchmarks.branches import speedup_by_n
from benchmarks.overhead import Pair, overhead_summary
from benchmarks.results import SCHEMA_VERSION, BenchResult, Environment, read_result
from benchmarks.tables import markdown_table, render_section, replace_section


def _result(quick: bool = True) -> BenchResult:
    return BenchResult(
        benchmark="branches", quick=quick, seed=3, started_at="2026-11-22T05:00:00+00:00",
        finished_at="2026-11-22T05:01:00+00:00", duration_s=60.0,
        environment=Environment(machine="x86_64, 2 cores", cores=2, pool=["plain http://h:1"],
                                model="m", load_avg_start=1.5, load_avg_end=2.0),
        parameters={"ns": [1, 2]}, rows=[{"group": "plain", "n": 1, "per_token_ms": 40.0}],
    )  # fmt: skip


def test_markdown_table_formats_cells() -> None:
    table = markdown_table([{"a": 0.12345, "b": None, "c": True, "d": "x|y", "e": 12345.6}])
    assert table.splitlines() == [
        "| a | b | c | d | e |",
        "|---|---|---|---|---|",
        "| 0.123 | - | yes | x\\|y | 12,346 |",
    ]
    assert markdown_table([]) == "_no rows_\n"
    assert markdown_table([{"a": 1, "b": 2}], ["b"]).splitlines()[2] == "| 2 |"


def test_a_section_is_replaced_in_place_or_appended() -> None:
    section = render_section(_result(), [("T", "| a |\n")], "p.png")
    assert section.startswith("<!-- bench:branches-quick -->")
    assert section.endswith("<!-- /bench:branches-quick -->")
    assert "seed 3" in section and "2 cores" in section and "![branches](p.png)" in section
    doc = replace_section("# Benchmarks\n\nprose\n", section)
    assert doc.count("<!-- bench:branches-quick -->") == 1 and "prose" in doc
    again = replace_section(doc + "\nafter\n", section.replace("| a |", "| b |"))
    assert "| b |" in again and "| a |" not in again and again.endswith("after\n")
    full = render_section(_result(quick=False), [], None)
    assert replace_section(again, full).count("<!-- bench:branches") == 2


def test_result_json_round_trips_with_its_schema(tmp_path: Path) -> None:
    path = _result().write(tmp_path)
    assert path.name == "branches-quick.json"
    document = json.loads(path.read_text())
    assert document["schema_version"] == SCHEMA_VERSION
    assert set(document) == {
        "schema_version", "benchmark", "quick", "seed", "started_at", "finished_at",
        "duration_s", "environment", "parameters", "rows", "summary",
    }  # fmt: skip
    assert set(document["environment"]) == {
        "machine", "cores", "pool", "model", "load_avg_start", "load_avg_end",
    }  # fmt: skip
    assert read_result(path) == _result()


def test_a_file_that_is_not_a_result_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"benchmark": "b"}))
    with pytest.raises(ConfigurationError, match=r"x\.json"):
        read_result(bad)


def test_speedup_is_plain_per_token_time_over_the_group() -> None:
    rows = [
        {"group": "plain", "n": 1, "per_token_ms": 40.0, "latency_s": 2.0},
        {"group": "spec", "n": 1, "per_token_ms": 20.0, "latency_s": 1.0},
        {"group": "spec", "n": 2, "per_token_ms": 20.0, "latency_s": 1.0},
    ]
    assert speedup_by_n(rows) == [{"group": "spec", "n": 1, "speedup": 2.0, "latency_speedup": 2.0}]


def test_overhead_summary_is_paired_medians_and_the_bars() -> None:
    pairs = [
        Pair(1.001, 1.000, 0.004, 0.002, 16, 16, True),
        Pair(1.003, 1.000, 0.005, 0.002, 16, 16, False),
        Pair(2.000, 1.000, 0.006, 0.002, 16, 15, True),
    ]
    summary = overhead_summary(pairs)
    assert summary["added_median_ms"] == pytest.approx(3.0)
    assert summary["ratio_median"] == pytest.approx(1.003)
    assert summary["added_cpu_median_ms"] == pytest.approx(3.0)
    assert summary["same_tokens"] == 2
    assert summary["meets_2ms_bar"] is False and summary["meets_3pct_bar"] is True
