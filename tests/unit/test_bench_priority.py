"""The priority benchmark: its pure parts (rate, deadlines, arrival schedule, the
summaries), and its driver against an in-process fake server on a fake clock."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from agentrt.core._clock import FakeClock
from agentrt.core._errors import ConfigurationError
from agentrt.pool import EndpointSpec
from benchmarks import BENCHMARKS
from benchmarks.catalog import CATALOG
from benchmarks.command import document_result
from benchmarks.priority import (
    PriorityPlan,
    PriorityRun,
    RequestRecord,
    _prompts,
    arm_order,
    arm_rows,
    arrival_schedule,
    block_rows,
    class_deadlines,
    class_rows,
    measured,
    offered_rate,
    run_priority,
    sla_met,
)
from benchmarks.results import BenchResult, Environment
from tests.unit.vllm_double import FakeVLLM, answers_chunks

QUIET = Console(file=None, quiet=True)


def test_the_rate_is_the_load_times_the_probed_capacity() -> None:
    assert offered_rate(8, 4.0, 2.0) == 4.0
    assert offered_rate(8, 2.0, 1.0) == 4.0
    bad = [(0, 1.0, 1.0), (8, 0.0, 1.0), (8, math.inf, 1.0), (8, 1.0, 0.0), (8, 1.0, math.nan),
           (8, 1.0, math.inf)]  # fmt: skip
    for requests, wall_s, load in bad:
        with pytest.raises(ConfigurationError):
            offered_rate(requests, wall_s, load)


def test_the_deadlines_are_factors_of_the_unloaded_latency() -> None:
    assert class_deadlines(1.25, 2.0, 6.0) == {"tight": 2.5, "loose": 7.5}
    with pytest.raises(ConfigurationError, match="unloaded latency"):
        class_deadlines(0.0, 2.0, 6.0)
    with pytest.raises(ConfigurationError, match="tight_factor <= loose_factor"):
        class_deadlines(1.0, 6.0, 2.0)
    with pytest.raises(ConfigurationError, match="tight_factor"):
        class_deadlines(1.0, 0.0, 2.0)


def test_the_schedule_is_a_seeded_poisson_process_behind_its_fill() -> None:
    def schedule(seed: int = 0, label: str = "2-0", share: float = 0.5) -> list[Any]:
        return arrival_schedule(seed, label, 4.0, fill=10, scored=2000, tight_share=share,
                                prompts=7)  # fmt: skip

    first = schedule()
    assert first == schedule()
    assert first != schedule(label="2-1") and first != schedule(seed=1)
    assert [a.index for a in first] == list(range(2010))
    assert [a.scored for a in first] == [False] * 10 + [True] * 2000
    assert all(b.at_s >= a.at_s for a, b in itertools.pairwise(first))
    assert first[0].at_s > 0
    assert abs(first[-1].at_s / len(first) - 0.25) < 0.02  # mean gap 1 / rate
    assert 0.45 < sum(a.sla_class == "tight" for a in first) / len(first) < 0.55
    assert {a.prompt for a in first} == set(range(7))
    assert {a.sla_class for a in schedule(share=0.0)} == {"loose"}
    assert {a.sla_class for a in schedule(share=1.0)} == {"tight"}


@pytest.mark.parametrize(
    ("rate", "options", "match"),
    [
        (0.0, {}, "rate_rps"),
        (math.inf, {}, "rate_rps"),
        (1.0, {"tight_share": 1.5}, "tight_share"),
        (1.0, {"scored": 0}, "scored >= 1"),
        (1.0, {"fill": -1}, "fill >= 0"),
        (1.0, {"prompts": 0}, "prompts >= 1"),
    ],
)
def test_a_bad_schedule_is_refused(rate: float, options: dict[str, Any], match: str) -> None:
    arguments: dict[str, Any] = {"fill": 0, "scored": 5, "tight_share": 0.5, "prompts": 3}
    with pytest.raises(ConfigurationError, match=match):
        arrival_schedule(0, "x", rate, **{**arguments, **options})


def test_the_arms_take_turns_going_first() -> None:
    assert arm_order(0) == ("priority", "fcfs")
    assert arm_order(1) == ("fcfs", "priority")
    assert [arm_order(b)[0] for b in range(4)] == ["priority", "fcfs"] * 2


def test_sla_met_is_complete_and_uncut_within_deadline_plus_margin() -> None:
    def met(**change: Any) -> bool:
        options: dict[str, Any] = {"complete": True, "cut": False, "error": None, "latency_s": 1.0,
                                   "deadline_s": 2.0, "margin_s": 0.05}  # fmt: skip
        return sla_met(**{**options, **change})

    assert met()
    assert met(latency_s=2.05) and not met(latency_s=2.0501)
    assert not met(cut=True) and not met(complete=False) and not met(error="EndpointUnavailable")


def record(arm: str, sla_class: str, *, met: bool, latency_s: float = 1.0, at_s: float = 0.0,
           block: int = 0, scored: bool = True, ttft_s: float | None = 0.2, cut: bool = False,
           tokens: int = 10, load: float = 2.0) -> dict[str, Any]:  # fmt: skip
    deadline_s = 1.0 if sla_class == "tight" else 3.0
    return asdict(RequestRecord(
        load=load, block=block, arm=arm, index=0, sla_class=sla_class, prompt=0, scored=scored,
        rate_rps=4.0, at_s=at_s, start_lag_s=0.001, deadline_s=deadline_s, latency_s=latency_s,
        ttft_s=ttft_s, complete=met, cut=cut, met=met, tokens=tokens,
        error="DeadlineExceeded" if cut and ttft_s is None else None,
    ))  # fmt: skip


def test_class_rows_summarise_the_scored_requests_of_each_arm_and_class() -> None:
    rows = [record("priority", "tight", met=True, latency_s=0.5, at_s=i) for i in range(3)]
    rows += [record("priority", "tight", met=False, latency_s=1.0, cut=True, at_s=3)]
    rows += [record("priority", "tight", met=False, scored=False)]  # the fill: not counted
    rows += [
        record("fcfs", "tight", met=False, latency_s=1.0, cut=True, ttft_s=None),
        record("fcfs", "tight", met=False, latency_s=1.0, cut=True, ttft_s=0.8, at_s=1),
    ]
    rows += [record(arm, "loose", met=True, latency_s=2.0) for arm in ("priority", "fcfs")]
    by_key = {(r["arm"], r["class"]): r for r in class_rows(rows)}
    assert list(by_key) == [("priority", "tight"), ("priority", "loose"), ("fcfs", "tight"),
                            ("fcfs", "loose")]  # fmt: skip
    edf = by_key["priority", "tight"]
    assert (edf["offered"], edf["met_pct"], edf["cut_pct"]) == (4, 75.0, 25.0)
    assert (edf["p50_s"], edf["deadline_s"], edf["started_pct"]) == (0.5, 1.0, 100.0)
    assert edf["started_missed_pct"] == 25.0 and edf["errors"] == 0
    fcfs = by_key["fcfs", "tight"]
    assert (fcfs["offered"], fcfs["met_pct"], fcfs["cut_pct"]) == (2, 0.0, 100.0)
    assert (fcfs["started_pct"], fcfs["started_missed_pct"]) == (50.0, 50.0)
    assert fcfs["ttft_p50_s"] == 0.8
    assert by_key["fcfs", "loose"]["met_pct"] == 100.0


def test_arm_and_block_rows_count_met_runs_per_second() -> None:
    rows = []
    for block in (0, 1):
        for i in range(5):  # offered at 4 requests/s
            rows.append(record("priority", "tight", met=True, at_s=i, block=block, tokens=10))
            rows.append(record("fcfs", "tight", met=i < 2, at_s=i, block=block, tokens=10))
    rows.append(record("fcfs", "tight", met=True, at_s=100.0, scored=False))  # fill: ignored
    edf, fcfs = arm_rows(rows)
    assert (edf["arm"], edf["offered"], edf["met"], edf["met_per_s"]) == ("priority", 10, 10, 4.0)
    assert (fcfs["met"], fcfs["met_per_s"], fcfs["met_pct"]) == (4, 1.6, 40.0)
    assert (edf["vs_fcfs"], fcfs["vs_fcfs"]) == (2.5, 1.0)
    assert (edf["tokens"], fcfs["tokens_to_met_pct"]) == (100, 40.0)
    assert edf["start_lag_p95_ms"] == 1.0
    first, second = block_rows(rows)
    assert (first["first"], second["first"]) == ("priority", "fcfs")
    assert (first["priority_met_per_s"], first["fcfs_met_per_s"]) == (4.0, 1.6)


def test_prompts_come_from_a_generated_suite_or_a_whole_file(tmp_path: Path) -> None:
    prompts = _prompts("addition", 0)
    assert len(prompts) == 200 and prompts == _prompts("addition", 0)
    tasks = tmp_path / "mine.jsonl"
    tasks.write_text(json.dumps({"id": "a", "prompt": "What is 1 plus 1?", "answer": "2"}) + "\n",
                     encoding="utf-8")  # fmt: skip
    assert _prompts(str(tasks), 0) == ["What is 1 plus 1?"]


def test_the_benchmark_is_registered_with_its_own_small_batch_server() -> None:
    assert "priority" in BENCHMARKS
    benchmark = CATALOG["priority"]
    assert benchmark.pool == (1, 0)
    full, quick = PriorityPlan(), PriorityPlan.quick()
    assert quick.loads == (2.0,) and 2.0 in full.loads and quick.blocks < full.blocks
    assert quick.blocks % 2 == 0 and full.blocks % 2 == 0  # each arm goes first equally often
    assert full.server_args == ["--max-num-seqs", "4", "--no-enable-prefix-caching"]


async def _fake_run(plan: PriorityPlan) -> tuple[PriorityRun, list[dict[str, Any]], list[str]]:
    """``plan`` against a fake server: every call answers in 0.5 s (fake time), one
    whose prompt says SLOW in 10 s, past every deadline."""
    clock = FakeClock(autojump=True)
    server = FakeVLLM(chunks=answers_chunks(["7"]))
    bodies: list[dict[str, Any]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/chat/completions":
            bodies.append(json.loads(request.content))
            await clock.sleep(10.0 if b"SLOW" in request.content else 0.5)
        return await server.handle(request)

    prompts = [f"What is {i} plus 1?" for i in range(12)] + ["SLOW"] * 4  # the probe's: fast
    spec = EndpointSpec(url="http://a.test:8000", deadline_priority=True)
    run = await run_priority(plan, 3, prompts, spec, QUIET, clock=clock,
                             transport=httpx.MockTransport(handler))  # fmt: skip
    return run, bodies, prompts


async def test_the_driver_runs_both_arms_on_one_schedule_against_a_fake_server() -> None:
    plan = PriorityPlan(loads=(2.0,), blocks=2, scored=5)
    run, bodies, _ = await _fake_run(plan)
    probe = run.probe
    assert (probe.unloaded_latency_s, probe.wall_s, probe.capacity_rps) == (0.5, 1.0, 8.0)
    assert run.deadlines_s == {"tight": 1.0, "loose": 3.0}
    assert run.rates_rps == {2.0: 16.0}
    per_run = math.ceil(16.0 * 3.0) + 5  # one loose deadline of fill, then the scored
    records = run.records
    assert len(records) == 4 * per_run
    assert [records[i * per_run].arm for i in range(4)] == ["priority", "fcfs", "fcfs", "priority"]
    same = [r.sla_class for r in records[per_run : 2 * per_run]]
    assert [r.sla_class for r in records[:per_run]] == same  # one schedule, both arms
    assert sum(r.scored for r in records) == 4 * 5
    for r in records:
        assert abs(r.start_lag_s) < 1e-6
        if r.prompt >= 12:  # never answered in time: cut while waiting for the headers
            assert (r.met, r.cut, r.complete, r.error, r.ttft_s) == (
                False, True, False, "DeadlineExceeded", None,
            )  # fmt: skip
            assert r.latency_s == pytest.approx(r.deadline_s)
        else:
            assert (r.met, r.cut, r.complete, r.error, r.tokens) == (True, False, True, None, 2)
            assert r.latency_s == pytest.approx(0.5) and r.ttft_s == pytest.approx(0.5)
    assert any(r.prompt >= 12 for r in records) and any(r.prompt < 12 for r in records)
    # The probe's 12 calls and the fcfs arm carry no priority; the priority arm's all do.
    assert len(bodies) == 12 + len(records)
    assert not any("priority" in b for b in bodies[:12])
    assert sum("priority" in b for b in bodies) == sum(r.arm == "priority" for r in records)
    assert all(isinstance(b["priority"], int) and b["priority"] > 0 for b in bodies
               if "priority" in b)  # fmt: skip


async def test_a_fake_run_renders_its_result_and_docs_section(tmp_path: Path) -> None:
    plan = PriorityPlan(loads=(1.0, 2.0), blocks=2, scored=4)
    run, _, prompts = await _fake_run(plan)
    done = measured(plan, run, tasks="addition", prompts=len(prompts), count=4)
    assert done.parameters["count"] == 4 and done.parameters["server_args"] == [
        "--scheduling-policy", "priority", "--max-num-seqs", "4", "--no-enable-prefix-caching",
    ]  # fmt: skip
    assert done.summary["rates_rps"] == {"1": 8.0, "2": 16.0}
    assert [(r["load"], r["arm"]) for r in done.summary["arms"]] == [
        (1.0, "priority"), (1.0, "fcfs"), (2.0, "priority"), (2.0, "fcfs"),
    ]  # fmt: skip
    env = Environment(machine="test", cores=2, pool=["plain http://a.test:8000"], model="m",
                      load_avg_start=0.0)  # fmt: skip
    result = BenchResult(
        benchmark="priority", quick=True, seed=3, started_at="2026-12-01T00:00:00+00:00",
        finished_at="2026-12-01T00:01:00+00:00", duration_s=60.0, environment=env,
        parameters=done.parameters, rows=done.rows, summary=done.summary,
    )  # fmt: skip
    result = BenchResult.model_validate_json(result.model_dump_json())  # as read back from disk
    docs = tmp_path / "BENCHMARKS.md"
    document_result(result, docs, QUIET)
    text = docs.read_text(encoding="utf-8")
    assert "<!-- bench:priority-quick -->" in text and "<!-- /bench:priority-quick -->" in text
    assert "`python -m benchmarks priority --quick --count 4`" in text
    assert "| load | arm | class |" in text and "--max-num-seqs 4" in text
    assert "| load | arm | rate_rps |" in text and "| load | block | first |" in text
