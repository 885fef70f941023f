"""``serve_load``: :mod:`benchmarks.load` through ``agentrt serve``, over HTTP.

Each arm starts ``agentrt serve graphs/math.py:graph --workers W --max-in-flight M``
as a subprocess on a free loopback port, pointed at the benchmark's pool through
an endpoints file (``AGENTRT_ENDPOINTS_FILE``: the pool's URLs, models, keys in
0600 files beside it, and ``deadline_priority`` for the arm) and at the
benchmark's calibration (``AGENTRT_CALIBRATION``), and waits until every worker
has started. Then, at each level N, N HTTP clients in this process (one
``httpx.AsyncClient``, plain ``POST /runs/wait``, no sdk) each make ``rounds``
runs with an ``agentrt-timeout`` of D; client k starts its r-th run at
``(r + k/N) * D``, as in ``load``, so about N runs are offered at any time.

An arm is a worker count, admission on (``--max-in-flight`` per worker) or open
(a cap no level reaches; the deadline-too-short refusal, a 504, cannot be
turned off, and D is far above the graph's minimum), and deadline priority off
or on (EDF: the servers must run ``--scheduling-policy priority``, as the local
pool's do). Per level: runs offered, accepted, refused (503, 504) and errors
(any other status, or no response); of the accepted runs, the share inside D
and D + 50 ms by the client's clock, the overshoot and the refusal latency;
SLA-met runs per second (accepted, answered, inside D + 50 ms); CPU of the
server's processes, of its busiest worker, of the local pool's vLLM servers
(the processes listening on its loopback ports), of this client and of the rest
of the machine (other work on a shared host), the machine's busy share, and
what limited the level; the server's resident memory peak growth and per run in
flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import psutil
import tomli_w

from agentrt.core._clock import Clock, FakeClock, MonotonicClock
from agentrt.core._deadline import DEADLINE_HEADER, Deadline
from agentrt.core._errors import RunError
from agentrt.core._stats import quantile
from agentrt.langgraph._loading import load_graph
from agentrt.pool._endpoint import EndpointSpec
from agentrt.tasks import suite
from benchmarks.audit import deadline_stats
from benchmarks.registry import BenchContext, Benchmark, Measured, Tables
from benchmarks.results import BenchResult
from benchmarks.tables import markdown_table

__all__ = [
    "BENCHMARK",
    "Arm",
    "CpuReading",
    "CpuShares",
    "Outcome",
    "ServeLoadPlan",
    "cpu_shares",
    "level_row",
    "limit_of",
    "offer",
    "outcome_of",
    "server_command",
    "server_env",
    "start_offset_s",
    "write_endpoints",
]

GRAPH = "graphs/math.py:graph"
REPO = Path(__file__).resolve().parents[1]
GOAL = 0.999
"""The share of accepted runs that must end inside their deadline + the margin."""
BUSY = 0.9
"""CPU share past which a level counts as bound by it (the machine's, or one worker's core)."""
READY_LINE = "Application startup complete."
"""What uvicorn logs once per worker whose lifespan (its Runtime) has started."""
MIB = 1024 * 1024


@dataclass(frozen=True)
class Arm:
    """One server configuration and the levels offered to it."""

    workers: int
    admission: bool
    priority: bool
    levels: tuple[int, ...]

    @property
    def name(self) -> str:
        return (f"{self.workers}w {'cap' if self.admission else 'open'} "
                f"{'edf' if self.priority else 'fcfs'}")  # fmt: skip


FULL_ARMS = (
    Arm(1, True, False, (10, 50, 100, 200, 500)),
    Arm(2, True, False, (10, 50, 100, 200, 500)),
    Arm(1, False, False, (100, 500)),
    Arm(2, False, False, (100, 500)),
    Arm(1, True, True, (100, 500)),
    Arm(2, True, True, (100, 500)),
)
"""Every level at 1 and 2 workers with admission on and priority off; admission
open and priority on only where they can differ (100 and 500 concurrent)."""
QUICK_ARMS = (Arm(1, True, False, (10, 50)), Arm(2, True, False, (10, 50)))


@dataclass(frozen=True)
class ServeLoadPlan:
    arms: tuple[Arm, ...] = FULL_ARMS
    deadline_s: float = 8.0
    rounds: int = 2
    """Runs each client makes back to back."""
    margin_s: float = 0.05
    max_in_flight: int = 64
    """``--max-in-flight`` per worker with admission on (the server's default)."""
    open_in_flight: int = 100_000
    """``--max-in-flight`` with admission open: more than any level offers."""
    sample_s: float = 0.25
    settle_s: float = 2.0
    """Pause after the warm-up and each level: cut runs' vLLM requests drain."""
    warmup_runs: int = 4
    """Runs per worker before an arm's first level (not counted)."""
    start_timeout_s: float = 180.0
    client_slack_s: float = 30.0
    """The client's own timeout past the deadline: a late answer is measured, not lost."""
    graph: str = GRAPH

    @classmethod
    def quick(cls) -> ServeLoadPlan:
        return cls(arms=QUICK_ARMS, rounds=1)

    def cap(self, arm: Arm) -> int:
        return self.max_in_flight if arm.admission else self.open_in_flight


# -- pure parts -------------------------------------------------------------------


def start_offset_s(client: int, round_: int, clients: int, deadline_s: float) -> float:
    """When client ``client`` of ``clients`` starts its run ``round_``, after the level
    starts: starts spread evenly, N runs offered per deadline however fast they end."""
    return deadline_s * (round_ + client / clients)


def server_command(plan: ServeLoadPlan, arm: Arm, port: int) -> list[str]:
    """``agentrt serve`` for ``arm``, by this interpreter's ``agentrt`` script."""
    script = Path(sys.executable).parent / "agentrt"
    return [str(script), "serve", plan.graph, "--port", str(port), "--workers",
            str(arm.workers), "--max-in-flight", str(plan.cap(arm))]  # fmt: skip


def server_env(
    base: Mapping[str, str], endpoints_file: Path, calibration: Path, *, priority: bool
) -> dict[str, str]:
    """The server's environment: ``base`` with the pool given by ``endpoints_file`` only."""
    dropped = ("AGENTRT_ENDPOINTS", "AGENTRT_API_KEY", "AGENTRT_TOOL_CALLING")
    env = {k: v for k, v in base.items() if k not in dropped}
    env["AGENTRT_ENDPOINTS_FILE"] = str(endpoints_file)
    env["AGENTRT_CALIBRATION"] = str(calibration)
    env["AGENTRT_DEADLINE_PRIORITY"] = "1" if priority else "0"
    return env


def write_endpoints(
    specs: Sequence[EndpointSpec], directory: Path, *, deadline_priority: bool
) -> Path:
    """``directory/endpoints.toml`` naming ``specs`` (keys in 0600 files beside it, as
    ``api_key_file``), each with ``deadline_priority``; its path."""
    tables: list[dict[str, Any]] = []
    for i, spec in enumerate(specs):
        table = spec.model_dump(exclude={"api_key"}, exclude_none=True)
        table["deadline_priority"] = deadline_priority
        if spec.api_key is not None:
            key = directory / f"key-{i}"
            key.touch(mode=0o600)
            key.write_text(spec.api_key.get_secret_value(), encoding="utf-8")
            table["api_key_file"] = key.name
        tables.append(table)
    path = directory / "endpoints.toml"
    path.write_text(tomli_w.dumps({"endpoints": tables}), encoding="utf-8")
    return path


@dataclass(frozen=True)
class Outcome:
    """One request as the client saw it. ``status`` 0: no response (a connection
    error or the client's own timeout, told by ``error``)."""

    status: int
    latency_s: float
    deadline_s: float
    degraded: bool = False
    answered: bool = False
    error: str | None = None


def outcome_of(
    response: httpx.Response, latency_s: float, deadline_s: float,
    answer_of: Callable[[dict[str, Any]], object],
) -> Outcome:  # fmt: skip
    """What one ``/runs/wait`` response says: the server's ``agentrt-degraded`` and,
    for a 200, whether the final state holds an answer."""
    if response.status_code != 200:
        error = None
        if response.status_code not in (503, 504):
            error = f"{response.status_code}: {response.text[:200]}"
        return Outcome(response.status_code, latency_s, deadline_s, error=error)
    try:
        values = response.json()
    except ValueError:
        return Outcome(200, latency_s, deadline_s, error="200 with a body that is not JSON")
    answered = isinstance(values, dict) and answer_of(values) is not None
    degraded = response.headers.get("agentrt-degraded", "true") != "false"
    return Outcome(200, latency_s, deadline_s, degraded=degraded, answered=answered)


@dataclass(frozen=True)
class CpuReading:
    """CPU seconds so far: per server process and per pool process (by pid), this
    process, and the machine's busy and total seconds over all its cores."""

    server_s: Mapping[int, float]
    pool_s: Mapping[int, float]
    client_s: float
    machine_busy_s: float
    machine_total_s: float


@dataclass(frozen=True)
class CpuShares:
    """CPU over a level in cores' worth: the server, its busiest process, the pool's
    local vLLM processes, the client, the rest of the machine (other work on a shared
    host); and the machine's busy share of all its cores."""

    server_cores: float
    worker_max_cores: float
    pool_cores: float
    client_cores: float
    other_cores: float
    machine: float


def _used(before: Mapping[int, float], after: Mapping[int, float]) -> list[float]:
    """CPU seconds of each process between two readings (one born between them from 0)."""
    return [max(0.0, s - before.get(pid, 0.0)) for pid, s in after.items()]


def cpu_shares(before: CpuReading, after: CpuReading, wall_s: float, cores: int) -> CpuShares:
    """The CPU used between two readings, ``wall_s`` apart on ``cores`` cores."""
    if wall_s <= 0:
        return CpuShares(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    server, pool = _used(before.server_s, after.server_s), _used(before.pool_s, after.pool_s)
    client = max(0.0, after.client_s - before.client_s)
    total = after.machine_total_s - before.machine_total_s
    busy = after.machine_busy_s - before.machine_busy_s
    machine = busy / total if total > 0 else 0.0
    other = max(0.0, machine * cores * wall_s - sum(server) - sum(pool) - client)
    return CpuShares(
        server_cores=sum(server) / wall_s,
        worker_max_cores=max(server, default=0.0) / wall_s,
        pool_cores=sum(pool) / wall_s,
        client_cores=client / wall_s,
        other_cores=other / wall_s,
        machine=machine,
    )


def limit_of(
    inside_margin: float | None, errors: int, shares: CpuShares, *, goal: float = GOAL,
    busy: float = BUSY,
) -> str:  # fmt: skip
    """What held a level below the goal: ``cores`` (the machine was busy, vLLM
    included), ``worker loop`` (one server process used a whole core while the
    machine had room), else ``runtime``; ``goal met`` when it was not held."""
    if errors == 0 and inside_margin is not None and inside_margin >= goal:
        return "goal met"
    if shares.machine >= busy:
        return "cores"
    if shares.worker_max_cores >= busy:
        return "worker loop"
    return "runtime"


def level_row(
    arm: Arm, concurrent: int, outcomes: Sequence[Outcome], *, cap: int, margin_s: float,
    wall_s: float, cpu: CpuShares, rss_before: int, rss_peak: int, in_flight_max: int,
    client_lag_p99_s: float,
) -> dict[str, Any]:  # fmt: skip
    """One level's row (pure)."""
    accepted = [o for o in outcomes if o.status == 200]
    refused = [o for o in outcomes if o.status in (503, 504)]
    errors = sum(o.error is not None for o in outcomes)
    stats = deadline_stats(((o.latency_s, o.deadline_s) for o in accepted), margin_s)
    in_time = [o for o in accepted if o.latency_s <= o.deadline_s + margin_s]
    inside_margin = round(stats.inside_margin, 4) if accepted else None
    growth = max(0, rss_peak - rss_before)
    n = max(1, len(accepted))

    def per_s(count: int) -> float:
        return round(count / wall_s, 2) if wall_s > 0 else 0.0

    def ms(values: Sequence[float], q: float) -> float | None:
        return round(1000 * quantile(values, q), 1) if values else None

    return {
        "arm": arm.name,
        "workers": arm.workers,
        "cap/worker": cap if arm.admission else "open",
        "priority": "edf" if arm.priority else "fcfs",
        "concurrent": concurrent,
        "offered": len(outcomes),
        "accepted": len(accepted),
        "503": sum(o.status == 503 for o in outcomes),
        "504": sum(o.status == 504 for o in outcomes),
        "errors": errors,
        "inside": round(stats.inside, 4) if accepted else None,
        f"inside +{margin_s * 1000:.0f} ms": inside_margin,
        "overshoot p50 ms": round(stats.overshoot_p50_ms, 1) if accepted else None,
        "p99 ms": round(stats.overshoot_p99_ms, 1) if accepted else None,
        "max ms": round(stats.overshoot_max_ms, 1) if accepted else None,
        "refusal p50 ms": ms([o.latency_s for o in refused], 0.5),
        "refusal p99 ms": ms([o.latency_s for o in refused], 0.99),
        "accepted runs/s": per_s(len(accepted)),
        "in-time runs/s": per_s(len(in_time)),
        "SLA-met runs/s": per_s(sum(o.answered for o in in_time)),
        "degraded": round(sum(o.degraded for o in accepted) / n, 3),
        "answered": round(sum(o.answered for o in accepted) / n, 3),
        "server CPU cores": round(cpu.server_cores, 2),
        "worker CPU max": round(cpu.worker_max_cores, 2),
        "pool CPU cores": round(cpu.pool_cores, 2),
        "client CPU cores": round(cpu.client_cores, 2),
        "other CPU cores": round(cpu.other_cores, 2),
        "client lag p99 ms": round(1000 * client_lag_p99_s, 1),
        "machine CPU": round(cpu.machine, 3),
        "limit": limit_of(inside_margin, errors, cpu),
        "RSS start MiB": round(rss_before / MIB, 1),
        "peak growth MiB": round(growth / MIB, 1),
        "in flight max": in_flight_max,
        "KiB per run in flight": round(growth / 1024 / max(1, in_flight_max), 1),
    }


# -- the load generator --------------------------------------------------------------


@dataclass
class Flight:
    """Requests outstanding now, and what the sampler read while they ran."""

    outstanding: int = 0
    lags_s: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    outstanding_seen: list[int] = field(default_factory=list)


async def offer(
    client: httpx.AsyncClient, clients: int, inputs: Sequence[Any], *, assistant: str,
    deadline_s: float, rounds: int, answer_of: Callable[[dict[str, Any]], object],
    clock: Clock, flight: Flight | None = None,
) -> list[Outcome]:  # fmt: skip
    """``clients`` clients each making ``rounds`` ``/runs/wait`` requests of
    ``assistant`` with the deadline in the ``agentrt-timeout`` header; every outcome."""
    flight = flight or Flight()
    header = Deadline.after(deadline_s, clock=FakeClock(0.0)).to_header()
    outcomes: list[Outcome] = []
    origin = clock.now()

    async def one_client(k: int) -> None:
        for r in range(rounds):
            await clock.sleep(origin + start_offset_s(k, r, clients, deadline_s) - clock.now())
            body = {"assistant_id": assistant, "input": inputs[(k * rounds + r) % len(inputs)]}
            flight.outstanding += 1
            started = clock.now()
            try:
                response = await client.post("/runs/wait", json=body,
                                             headers={DEADLINE_HEADER: header})  # fmt: skip
                outcome = outcome_of(response, clock.now() - started, deadline_s, answer_of)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {str(exc)[:200]}"
                outcome = Outcome(0, clock.now() - started, deadline_s, error=error)
            finally:
                flight.outstanding -= 1
            outcomes.append(outcome)

    await asyncio.gather(*(one_client(k) for k in range(clients)))
    return outcomes


# -- the server ------------------------------------------------------------------------


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _tree_rss(pid: int) -> int:
    total = 0
    for process in _tree(pid):
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total


def _tree_cpu(pids: Sequence[int]) -> dict[int, float]:
    used: dict[int, float] = {}
    for pid in pids:
        for process in _tree(pid):
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                used[process.pid] = times.user + times.system
    return used


def _cpu_reading(server_pid: int, pool_pids: Sequence[int]) -> CpuReading:
    m = psutil.cpu_times()
    total = m.user + m.nice + m.system + m.idle + m.iowait + m.irq + m.softirq + m.steal
    return CpuReading(_tree_cpu([server_pid]), _tree_cpu(pool_pids), time.process_time(),
                      total - m.idle - m.iowait, total)  # fmt: skip


def _pool_pids(specs: Sequence[EndpointSpec]) -> list[int]:
    """The processes listening on the pool's loopback ports (a local pool's vLLM
    servers; none for a remote pool), so their CPU is told apart from the rest."""
    ports = set()
    for spec in specs:
        url = httpx.URL(spec.url)
        if url.host in ("127.0.0.1", "localhost", "::1") and url.port is not None:
            ports.add(url.port)
    try:
        listening = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return []
    return sorted({
        c.pid for c in listening
        if c.pid and c.status == psutil.CONN_LISTEN and c.laddr and c.laddr[1] in ports
    })  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class _Server:
    url: str
    pid: int
    log: Path


@contextlib.asynccontextmanager
async def _served(
    plan: ServeLoadPlan, arm: Arm, env: Mapping[str, str], log: Path, clock: Clock
) -> AsyncIterator[_Server]:
    """``agentrt serve`` for ``arm``, up with every worker started; stopped after."""
    port = _free_port()
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *server_command(plan, arm, port), cwd=REPO, env=dict(env), stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = _Server(f"http://127.0.0.1:{port}", process.pid, log)
    try:
        await _ready(server, process, arm.workers, plan.start_timeout_s, clock)
        yield server
    finally:
        await _stop(process, clock)


def _log_tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


async def _ready(
    server: _Server, process: asyncio.subprocess.Process, workers: int, timeout_s: float,
    clock: Clock,
) -> None:  # fmt: skip
    ends = clock.now() + timeout_s
    async with httpx.AsyncClient(base_url=server.url, timeout=2.0, trust_env=False) as client:
        while clock.now() < ends:
            if process.returncode is not None:
                raise RunError(f"agentrt serve exited ({process.returncode}):\n"
                               f"{_log_tail(server.log)}")  # fmt: skip
            text = server.log.read_text(encoding="utf-8", errors="replace")
            if text.count(READY_LINE) >= workers:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/ok")).status_code == 200:
                        return
            await clock.sleep(0.25)
    raise RunError(f"agentrt serve was not ready in {timeout_s:g}s:\n{_log_tail(server.log)}")


async def _stop(process: asyncio.subprocess.Process, clock: Clock) -> None:
    for sig, wait_s in ((signal.SIGINT, 20.0), (signal.SIGKILL, 5.0)):
        if process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)  # the group start_new_session made for it
        ends = clock.now() + wait_s
        while process.returncode is None and clock.now() < ends:
            await clock.sleep(0.1)


async def _sample(pid: int, flight: Flight, clock: Clock, every_s: float) -> None:
    while True:
        before = clock.now()
        await clock.sleep(every_s)
        flight.lags_s.append(max(0.0, clock.now() - before - every_s))
        flight.rss.append(_tree_rss(pid))
        flight.outstanding_seen.append(flight.outstanding)


# -- the driver ----------------------------------------------------------------------


def _http(server: _Server, plan: ServeLoadPlan, clients: int) -> httpx.AsyncClient:
    connections = clients + 8
    return httpx.AsyncClient(
        base_url=server.url, trust_env=False,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=httpx.Timeout(plan.deadline_s + plan.client_slack_s),
    )  # fmt: skip


async def _arm(
    plan: ServeLoadPlan, arm: Arm, ctx: BenchContext, tmp: Path, clock: Clock
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    loaded = load_graph(plan.graph)
    endpoints = write_endpoints([e.spec.model_copy(update={"model": e.spec.model or e.served_model})
                                 for e in ctx.pool.endpoints], tmp,
                                deadline_priority=arm.priority)  # fmt: skip
    env = server_env(os.environ, endpoints, ctx.calibration_file(), priority=arm.priority)
    log = tmp / f"serve-{arm.workers}w.log"
    pool_pids = _pool_pids([e.spec for e in ctx.pool.endpoints])
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    started = clock.now()
    async with _served(plan, arm, env, log, clock) as server:
        start_s = clock.now() - started
        async with _http(server, plan, 8) as client:
            info = (await client.get(f"/assistants/{loaded.name}")).json()
        warm = suite(str(loaded.module.TASK_SUITE), ctx.seed + 1, plan.warmup_runs * arm.workers)
        async with _http(server, plan, len(warm)) as client:
            await offer(client, len(warm), [loaded.module.input_for(t) for t in warm],
                        assistant=loaded.name, deadline_s=plan.deadline_s, rounds=1,
                        answer_of=loaded.module.answer_of, clock=clock)  # fmt: skip
        await clock.sleep(plan.settle_s)
        for n in arm.levels:
            tasks = suite(str(loaded.module.TASK_SUITE), ctx.seed, n * plan.rounds)
            inputs = [loaded.module.input_for(t) for t in tasks]
            flight = Flight()
            rss_before = _tree_rss(server.pid)
            before = _cpu_reading(server.pid, pool_pids)
            t0 = clock.now()
            sampler = asyncio.create_task(_sample(server.pid, flight, clock, plan.sample_s))
            try:
                async with _http(server, plan, n) as client:
                    outcomes = await offer(
                        client, n, inputs, assistant=loaded.name, deadline_s=plan.deadline_s,
                        rounds=plan.rounds, answer_of=loaded.module.answer_of, clock=clock,
                        flight=flight,
                    )  # fmt: skip
            finally:
                sampler.cancel()
                await asyncio.gather(sampler, return_exceptions=True)
            wall = clock.now() - t0
            after = _cpu_reading(server.pid, pool_pids)
            shares = cpu_shares(before, after, wall, psutil.cpu_count() or 1)
            row = level_row(
                arm, n, outcomes, cap=plan.cap(arm), margin_s=plan.margin_s, wall_s=wall,
                cpu=shares, rss_before=rss_before, rss_peak=max(flight.rss, default=rss_before),
                in_flight_max=max(flight.outstanding_seen, default=0),
                client_lag_p99_s=quantile(flight.lags_s, 0.99, default=0.0),
            )  # fmt: skip
            ctx.console.print(f"serve_load: {arm.name} {n} concurrent: {row}")
            rows.append(row)
            errors += [f"{arm.name} {n}: {o.error}" for o in outcomes if o.error][:10]
            await clock.sleep(plan.settle_s)
    summary = {"arm": arm.name, "start_s": round(start_s, 1),
               "minimum_s": info.get("metadata", {}).get("minimum_s"),
               "errors": errors}  # fmt: skip
    return rows, summary


async def _measure(ctx: BenchContext) -> Measured:
    plan = ServeLoadPlan.quick() if ctx.quick else ServeLoadPlan()
    if ctx.count is not None:
        plan = replace(plan, rounds=ctx.count)
    clock = MonotonicClock()
    rows: list[dict[str, Any]] = []
    arms: list[dict[str, Any]] = []
    for arm in plan.arms:
        with tempfile.TemporaryDirectory(prefix="agentrt-serve-load-") as tmp:
            arm_rows, arm_summary = await _arm(plan, arm, ctx, Path(tmp), clock)
        rows += arm_rows
        arms.append(arm_summary)
    margin = f"inside +{plan.margin_s * 1000:.0f} ms"
    accepted = [r for r in rows if r[margin] is not None]
    parameters = {
        **{k: v for k, v in asdict(plan).items() if k != "arms"},
        "arms": [{**asdict(a), "name": a.name} for a in plan.arms], "count": plan.rounds,
        "goal": GOAL, "client": "httpx, POST /runs/wait",
        "endpoints": {e.spec.url: e.spec.group for e in ctx.pool.endpoints},
    }  # fmt: skip
    summary = {
        "arms": arms,
        "goal_met_everywhere": bool(accepted) and all(r[margin] >= GOAL for r in accepted),
        "errors": sum(r["errors"] for r in rows),
    }
    return Measured(parameters, rows, summary)


def _tables(result: BenchResult) -> Tables:
    p = result.parameters
    first = result.rows[0] if result.rows else {}
    margin = [k for k in first if k.startswith("inside +")]
    head = ["arm", "concurrent"]
    deadline_cols = [*head, "offered", "accepted", "503", "504", "errors", "inside", *margin,
                     "overshoot p50 ms", "p99 ms", "max ms", "refusal p50 ms", "refusal p99 ms",
                     "accepted runs/s", "in-time runs/s", "SLA-met runs/s", "degraded",
                     "answered"]  # fmt: skip
    cpu_cols = [*head, "server CPU cores", "worker CPU max", "pool CPU cores",
                "client CPU cores", "other CPU cores", "client lag p99 ms", "machine CPU",
                "limit"]  # fmt: skip
    memory_cols = [*head, "RSS start MiB", "peak growth MiB", "in flight max",
                   "KiB per run in flight"]  # fmt: skip
    setting = (f"`agentrt serve {p.get('graph')}`; arm: workers, cap (--max-in-flight "
               f"{p.get('max_in_flight')} per worker) or open, fcfs or edf (deadline "
               f"priority); runs per client: {p.get('rounds')}, each under a "
               f"{p.get('deadline_s')} s agentrt-timeout")  # fmt: skip
    return [
        (f"HTTP clients against {setting}: accepted runs inside the deadline by the "
         f"client's clock (goal {GOAL:.1%} inside +{p.get('margin_s', 0.05) * 1000:.0f} ms); "
         "SLA-met: accepted, answered and in time", markdown_table(result.rows, deadline_cols)),
        ("CPU over each level, in cores' worth (server: all its processes; worker max: its "
         "busiest; pool: the local vLLM servers; client: this load generator; other: the rest "
         "of the machine) and the machine's busy share of its cores; "
         f"limit: cores when the machine was {BUSY:.0%} busy, worker loop when one server "
         "process used a core", markdown_table(result.rows, cpu_cols)),
        ("Server memory: the peak growth of all its processes' RSS over the level's start, "
         "per request in flight at the client", markdown_table(result.rows, memory_cols)),
    ]  # fmt: skip


BENCHMARK = Benchmark(
    "serve_load",
    "load through agentrt serve: 10 to 500 HTTP clients, 1 and 2 workers, admission and "
    "deadline priority on and off",
    _measure,
    _tables,
    pool=(2, 1),
)
