"""The serve_load benchmark's pure parts (schedule, server command and environment,
endpoints file, outcomes, CPU shares, rows, limit, tables) and its load generator
against an in-process fake server on a fake clock."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from agentrt.core._clock import FakeClock
from agentrt.pool import EndpointSpec
from agentrt.pool._config import endpoints_from_toml
from benchmarks import BENCHMARKS
from benchmarks.catalog import CATALOG
from benchmarks.results import BenchResult, Environment
from benchmarks.serve_load import (
    Arm,
    CpuReading,
    CpuShares,
    Outcome,
    ServeLoadPlan,
    cpu_shares,
    level_row,
    limit_of,
    offer,
    outcome_of,
    server_command,
    server_env,
    start_offset_s,
    write_endpoints,
)

IDLE = CpuShares(0.5, 0.3, 0.5, 0.1, 0.0, 0.5)


def _answer(values: dict[str, Any]) -> object:
    return values.get("answer")


def test_starts_are_spread_evenly_over_each_deadline() -> None:
    starts = sorted(start_offset_s(k, r, 4, 2.0) for k in range(4) for r in range(2))
    assert starts == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]


def test_the_plans_arms_and_caps() -> None:
    full, quick = ServeLoadPlan(), ServeLoadPlan.quick()
    assert quick.rounds == 1 and {a.levels for a in quick.arms} == {(10, 50)}
    assert {a.workers for a in quick.arms} == {1, 2}
    assert all(a.admission and not a.priority for a in quick.arms)
    assert {n for a in full.arms for n in a.levels} == {10, 50, 100, 200, 500}
    assert {(a.admission, a.priority) for a in full.arms} == {
        (True, False),
        (False, False),
        (True, True),
    }
    assert len({a.name for a in full.arms}) == len(full.arms)
    assert full.cap(Arm(1, True, False, (10,))) == 64
    assert full.cap(Arm(1, False, False, (10,))) > 500 * full.rounds


def test_the_server_command_and_environment() -> None:
    command = server_command(ServeLoadPlan(), Arm(2, False, False, (10,)), 4321)
    assert command[0] == str(Path(sys.executable).parent / "agentrt")
    assert command[1:] == ["serve", "graphs/math.py:graph", "--port", "4321", "--workers", "2",
                           "--max-in-flight", "100000"]  # fmt: skip
    base = {"PATH": "/bin", "AGENTRT_ENDPOINTS": "http://x:1", "AGENTRT_API_KEY": "k"}
    env = server_env(base, Path("/t/e.toml"), Path("/c.toml"), priority=True)
    assert env == {"PATH": "/bin", "AGENTRT_ENDPOINTS_FILE": "/t/e.toml",
                   "AGENTRT_CALIBRATION": "/c.toml", "AGENTRT_DEADLINE_PRIORITY": "1"}  # fmt: skip
    assert (
        server_env(base, Path("e"), Path("c"), priority=False)["AGENTRT_DEADLINE_PRIORITY"] == "0"
    )


def test_the_endpoints_file_reads_back_as_the_pool(tmp_path: Path) -> None:
    specs = [
        EndpointSpec(url="http://127.0.0.1:8001", model="m", api_key=SecretStr("sk-one"),
                     tool_calling="native"),
        EndpointSpec(url="http://127.0.0.1:8002", group="spec", model="m", greedy_only=True,
                     speculative={"method": "ngram", "num_speculative_tokens": 4}),
    ]  # fmt: skip
    path = write_endpoints(specs, tmp_path, deadline_priority=True)
    back = endpoints_from_toml(path, env={})
    assert [s.model_copy(update={"deadline_priority": False}) for s in back] == specs
    assert all(s.deadline_priority for s in back)
    assert back[0].api_key is not None and back[0].api_key.get_secret_value() == "sk-one"
    assert "sk-one" not in path.read_text(encoding="utf-8")
    assert stat.S_IMODE((tmp_path / "key-0").stat().st_mode) & 0o077 == 0
    off = endpoints_from_toml(write_endpoints(specs, tmp_path, deadline_priority=False), env={})
    assert not any(s.deadline_priority for s in off)


def test_outcomes_of_responses() -> None:
    ok = httpx.Response(200, json={"answer": "7"}, headers={"agentrt-degraded": "false"})
    assert outcome_of(ok, 1.0, 4.0, _answer) == Outcome(200, 1.0, 4.0, False, True)
    cut = httpx.Response(200, json={"answer": None}, headers={"agentrt-degraded": "true"})
    assert outcome_of(cut, 4.0, 4.0, _answer) == Outcome(200, 4.0, 4.0, True, False)
    assert outcome_of(httpx.Response(503), 0.01, 4.0, _answer) == Outcome(503, 0.01, 4.0)
    assert outcome_of(httpx.Response(504), 0.01, 4.0, _answer).error is None
    failed = outcome_of(httpx.Response(500, text="boom"), 0.1, 4.0, _answer)
    assert failed.status == 500 and failed.error == "500: boom"
    assert outcome_of(httpx.Response(200, text="{"), 1.0, 4.0, _answer).error is not None


def test_cpu_shares_between_readings() -> None:
    before = CpuReading({10: 1.0, 11: 2.0}, {20: 10.0}, client_s=5.0, machine_busy_s=100.0,
                        machine_total_s=200.0)  # fmt: skip
    after = CpuReading({10: 1.5, 11: 6.0, 12: 1.0}, {20: 30.0}, client_s=6.0,
                       machine_busy_s=138.0, machine_total_s=240.0)  # fmt: skip
    shares = cpu_shares(before, after, 20.0, cores=2)
    assert shares.server_cores == pytest.approx(0.275)
    assert shares.worker_max_cores == pytest.approx(0.2)
    assert shares.pool_cores == pytest.approx(1.0)
    assert shares.client_cores == pytest.approx(0.05)
    assert shares.machine == pytest.approx(0.95)
    assert shares.other_cores == pytest.approx(1.9 - 0.275 - 1.0 - 0.05)
    assert cpu_shares(before, after, 0.0, cores=2) == CpuShares(0, 0, 0, 0, 0, 0)


def test_the_limit_names_what_held_the_level() -> None:
    assert limit_of(0.999, 0, CpuShares(1.0, 1.0, 0.5, 0.5, 0.0, 1.0)) == "goal met"
    assert limit_of(0.999, 1, IDLE) == "runtime"
    assert limit_of(None, 0, IDLE) == "runtime"
    assert limit_of(0.9, 0, CpuShares(1.0, 0.5, 0.8, 0.1, 0.0, 0.95)) == "cores"
    assert limit_of(0.9, 0, CpuShares(1.0, 0.95, 0.1, 0.1, 0.0, 0.6)) == "worker loop"
    assert limit_of(0.9, 0, IDLE) == "runtime"


def test_a_level_row() -> None:
    outcomes = [
        Outcome(200, 3.0, 4.0, degraded=False, answered=True),
        Outcome(200, 4.02, 4.0, degraded=True, answered=True),
        Outcome(200, 4.2, 4.0, degraded=True, answered=False),
        Outcome(200, 1.0, 4.0, degraded=True, answered=False),
        Outcome(503, 0.002, 4.0),
        Outcome(504, 0.004, 4.0),
        Outcome(0, 34.0, 4.0, error="ReadTimeout: "),
    ]
    row = level_row(Arm(2, True, True, (10,)), 10, outcomes, cap=64, margin_s=0.05, wall_s=2.0,
                    cpu=IDLE, rss_before=100 * 1024 * 1024, rss_peak=110 * 1024 * 1024,
                    in_flight_max=5, client_lag_p99_s=0.012)  # fmt: skip
    assert row["arm"] == "2w cap edf" and row["cap/worker"] == 64 and row["priority"] == "edf"
    assert (row["offered"], row["accepted"], row["503"], row["504"], row["errors"]) == (
        7, 4, 1, 1, 1,
    )  # fmt: skip
    assert row["inside"] == 0.5 and row["inside +50 ms"] == 0.75
    assert row["max ms"] == pytest.approx(200.0)
    assert row["refusal p50 ms"] == 3.0
    assert row["accepted runs/s"] == 2.0 and row["in-time runs/s"] == 1.5
    assert row["SLA-met runs/s"] == 1.0
    assert row["degraded"] == 0.75 and row["answered"] == 0.5
    assert row["peak growth MiB"] == 10.0 and row["KiB per run in flight"] == 2048.0
    assert row["client lag p99 ms"] == 12.0 and row["limit"] == "runtime"
    empty = level_row(Arm(1, False, False, (10,)), 10, [Outcome(503, 0.01, 4.0)], cap=100_000,
                      margin_s=0.05, wall_s=1.0, cpu=IDLE, rss_before=0, rss_peak=0,
                      in_flight_max=0, client_lag_p99_s=0.0)  # fmt: skip
    assert empty["cap/worker"] == "open" and empty["inside"] is None
    assert empty["inside +50 ms"] is None and empty["overshoot p50 ms"] is None
    json.dumps(empty)


async def test_offer_spreads_the_clients_and_records_every_request() -> None:
    clock = FakeClock(autojump=True)
    seen: list[tuple[float, dict[str, Any], str | None]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append((clock.now(), body, request.headers.get("agentrt-timeout")))
        n = body["input"]["n"]
        if n == 3:
            return httpx.Response(503, headers={"Retry-After": "1"})
        if n == 5:
            raise httpx.ConnectError("refused", request=request)
        await clock.sleep(0.5)
        return httpx.Response(200, json={"answer": n}, headers={"agentrt-degraded": "false"})

    transport = httpx.MockTransport(handler)
    async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
        outcomes = await offer(client, 3, [{"n": i} for i in range(6)], assistant="math",
                               deadline_s=2.0, rounds=2, answer_of=_answer,
                               clock=clock)  # fmt: skip
    assert len(outcomes) == 6
    origin = 1000.0
    assert sorted(round(t - origin, 6) for t, _, _ in seen) == pytest.approx(
        [0.0, 2 / 3, 4 / 3, 2.0, 2 + 2 / 3, 2 + 4 / 3]
    )
    assert {b["assistant_id"] for _, b, _ in seen} == {"math"}
    assert {h for _, _, h in seen} == {"2000000u"}
    assert sorted(o.status for o in outcomes) == [0, 200, 200, 200, 200, 503]
    assert all(o.latency_s == pytest.approx(0.5) for o in outcomes if o.status == 200)
    assert str(next(o.error for o in outcomes if o.status == 0)).startswith("ConnectError")


def test_the_benchmark_is_registered_and_renders(tmp_path: Path) -> None:
    assert "serve_load" in BENCHMARKS and CATALOG["serve_load"].pool == (2, 1)
    row = level_row(Arm(1, True, False, (10,)), 10, [Outcome(200, 3.0, 4.0)], cap=64,
                    margin_s=0.05, wall_s=4.0, cpu=IDLE, rss_before=0, rss_peak=0,
                    in_flight_max=1, client_lag_p99_s=0.0)  # fmt: skip
    env = Environment(machine="x86_64", cores=2, pool=["plain http://x"], model="m",
                      load_avg_start=1.0)  # fmt: skip
    result = BenchResult(benchmark="serve_load", quick=True, seed=0, started_at="t",
                         finished_at="t", duration_s=1.0, environment=env,
                         parameters={"graph": "graphs/math.py:graph", "deadline_s": 4.0,
                                     "rounds": 1, "margin_s": 0.05, "max_in_flight": 64},
                         rows=[row])  # fmt: skip
    tables = CATALOG["serve_load"].tables(result)
    assert len(tables) == 3
    assert all("| 1w cap fcfs | 10 |" in table for _, table in tables)
    assert "inside +50 ms" in tables[0][1] and "limit" in tables[1][1]
