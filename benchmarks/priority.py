"""``priority``: runs meeting their SLA with deadline priority vs FCFS, same offered load.

The benchmark starts its own vLLM server (one plain server, ``--max-num-seqs 4``,
``--scheduling-policy priority`` as every local server has) in a temporary pool
home, so requests wait in vLLM's queue, where priority acts; without prefix
caching, so a prompt costs the same whichever arm sends it first. Two arms use it:
``priority`` sends each request's deadline as vLLM's ``priority``
(``EndpointSpec.deadline_priority``, :meth:`agentrt.Deadline.priority`: earliest
deadline first), ``fcfs`` sends the same requests without one (priority 0, so
vLLM serves them by arrival).

**Workload** (seeded). A probe measures the unloaded latency (median of a few
requests one at a time) and the capacity (``probe_requests`` requests,
``max_num_seqs`` at a time: requests per second). Each load level offers
``load`` x that capacity as a Poisson process. Every request is one greedy chat
call (``max_tokens`` 32, a prompt of ``--tasks``, "addition" by default) through
``EndpointPool.stream(..., deadline=Deadline.after(d))``, cut at its deadline;
``d`` is *tight* (2x the unloaded latency) or *loose* (6x), half and half. A
block is one arrival schedule run once per arm, back to back, the order
alternating block by block (priority first, then fcfs first: ABBA), so drift
hits both. Its first arrivals (one loose deadline's worth) fill the queue to its
steady state and are not scored. A request meets its SLA when its stream
finished, not cut, within deadline + 50 ms.

**What vLLM 0.32 does with priority** (this venv's source, CPU build):

- The chat request's ``priority`` field (``entrypoints/openai/chat_completion/
  protocol.py:388``; an ``X-Vllm-Priority`` header overrides it,
  ``entrypoints/generate/base/serving.py:258``) becomes ``Request.priority``
  (``v1/request.py:86``). The CPU platform turns async scheduling off
  (``platforms/cpu.py:331``), so the plain ``Scheduler`` runs
  (``config/scheduler.py:228``).
- With the priority policy the waiting queues are heaps
  (``v1/core/sched/scheduler.py:223-227``, ``request_queue.py:131-151``,
  ``:200``) ordered by ``Request.__lt__``: ``(priority, arrival_time,
  request_id)`` (``v1/request.py:357-367``), ``arrival_time`` being
  ``time.time()`` when the API server takes the request
  (``v1/engine/input_processor.py:403-415``). With every priority 0 the heap
  is arrival order: the fcfs arm runs the same code path, FCFS.
- It is not preemptive. A waiting request is admitted only while fewer than
  ``max_num_seqs`` run (``scheduler.py:923``); a running request keeps its slot
  until it finishes or is aborted, whatever waits. Preemption happens only when
  KV blocks run out while the running batch is scheduled, and then takes the
  running request with the largest ``(priority, arrival_time)``
  (``scheduler.py:796-802``); not here (1 GiB of KV, 4 short sequences).
  Priority is thus non-preemptive EDF of the waiting queue.
- A closed stream aborts its request, which leaves the waiting heap or the
  batch (``scheduler.py:2649-2700``): a request cut at its deadline stops
  costing the server.
- This build does not refuse a non-zero priority on an FCFS server (the field's
  description says it would): the FCFS queue, a deque, never reads it
  (``request_queue.py:75-84``).

What to expect: an ideal 4-slot queue run through this design (service time
+-30%, every request aborted at its deadline, 40 blocks) puts non-preemptive
EDF ahead of FCFS at 1x capacity (SLA met, tight / loose: 96% / 98% against
65% / 100%; SLA-met runs/s +18%) and far behind it at 2x (8% / 30% against
1% / 99%; -62%): there the head of the EDF queue holds the requests closest to
their deadlines, mostly too close to finish (EDF's domino effect). Hence the
full run measures 1x as well as 2x; ``--quick`` measures 2x only.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from agentrt.core._clock import Clock, MonotonicClock
from agentrt.core._deadline import Deadline
from agentrt.core._errors import AgentrtError, ConfigurationError, DeadlineExceeded, RunError
from agentrt.core._settings import Settings
from agentrt.core._stats import quantile
from agentrt.pool._endpoint import EndpointSpec
from agentrt.pool._local import SCHEDULING_ARGS, LocalPool
from agentrt.pool._pool import EndpointPool
from agentrt.pool._protocol import ChatRequest
from agentrt.tasks import SUITE_NAMES, suite
from benchmarks.registry import BenchContext, Benchmark, Measured, Tables
from benchmarks.results import BenchResult
from benchmarks.tables import markdown_table

__all__ = [
    "ARMS",
    "BENCHMARK",
    "CLASSES",
    "Arrival",
    "PriorityPlan",
    "PriorityRun",
    "Probe",
    "RequestRecord",
    "arm_order",
    "arm_rows",
    "arrival_schedule",
    "block_rows",
    "class_deadlines",
    "class_rows",
    "measured",
    "offered_rate",
    "run_priority",
    "sla_met",
]

ARMS = ("priority", "fcfs")
CLASSES = ("tight", "loose")
PROMPTS = 200
"""Prompts drawn from a generated suite (a file gives all it holds)."""
LEAD_S = 0.05
"""From the start of a run to its time 0: the first arrival is not late."""


@dataclass(frozen=True)
class PriorityPlan:
    """Load levels (x the probed capacity), ``blocks`` per level of ``scored``
    requests per arm, the deadline classes and the server's batch."""

    loads: tuple[float, ...] = (1.0, 2.0)
    blocks: int = 4
    scored: int = 60
    tight_share: float = 0.5
    tight_factor: float = 2.0
    loose_factor: float = 6.0
    max_tokens: int = 32
    max_num_seqs: int = 4
    probe_requests: int = 8
    unloaded_requests: int = 3
    probe_deadline_s: float = 120.0
    margin_s: float = 0.05
    settle_s: float = 1.0
    """Pause after a run before the next one: the server ends its aborts."""
    kv_cache_gib: int = 1
    max_model_len: int = 1024
    start_timeout_s: float = 900.0

    @classmethod
    def quick(cls) -> PriorityPlan:
        return cls(loads=(2.0,), blocks=2)

    @property
    def server_args(self) -> list[str]:
        return ["--max-num-seqs", str(self.max_num_seqs), "--no-enable-prefix-caching"]


@dataclass(frozen=True)
class Arrival:
    """One request of a schedule: when it arrives (s after time 0), its deadline
    class, which prompt, and whether it is scored (not part of the fill)."""

    index: int
    at_s: float
    sla_class: str
    prompt: int
    scored: bool


@dataclass(frozen=True)
class RequestRecord:
    """One request of one arm's run, as measured."""

    load: float
    block: int
    arm: str
    index: int
    sla_class: str
    prompt: int
    scored: bool
    rate_rps: float
    at_s: float
    start_lag_s: float
    deadline_s: float
    latency_s: float
    ttft_s: float | None
    complete: bool
    cut: bool
    met: bool
    tokens: int
    error: str | None = None


@dataclass(frozen=True)
class Probe:
    """The unloaded latency and the capacity at the server's batch size."""

    unloaded_latency_s: float
    requests: int
    wall_s: float

    @property
    def capacity_rps(self) -> float:
        return self.requests / self.wall_s


# -- the pure parts --------------------------------------------------------------


def offered_rate(requests: int, wall_s: float, load: float) -> float:
    """Requests per second to offer: ``load`` x the capacity a probe measured
    (``requests`` done in ``wall_s``)."""
    if requests < 1 or not wall_s > 0 or math.isinf(wall_s):
        raise ConfigurationError(
            f"the capacity probe needs >= 1 request in a finite time > 0, got "
            f"{requests} in {wall_s!r} s"
        )
    if not load > 0 or math.isinf(load):
        raise ConfigurationError(f"load must be a finite number > 0, got {load!r}")
    return load * requests / wall_s


def class_deadlines(
    unloaded_latency_s: float, tight_factor: float, loose_factor: float
) -> dict[str, float]:
    """Each class's deadline in seconds: its factor x the unloaded latency."""
    if not unloaded_latency_s > 0 or math.isinf(unloaded_latency_s):
        raise ConfigurationError(
            f"the unloaded latency must be a finite number > 0, got {unloaded_latency_s!r}"
        )
    if not 0 < tight_factor <= loose_factor:
        raise ConfigurationError(
            f"need 0 < tight_factor <= loose_factor, got {tight_factor!r} and {loose_factor!r}"
        )
    return {
        "tight": round(tight_factor * unloaded_latency_s, 3),
        "loose": round(loose_factor * unloaded_latency_s, 3),
    }


def arrival_schedule(
    seed: int, label: str, rate_rps: float, *, fill: int, scored: int, tight_share: float,
    prompts: int,
) -> list[Arrival]:  # fmt: skip
    """``fill`` unscored then ``scored`` scored arrivals of a Poisson process at
    ``rate_rps``, each tight with probability ``tight_share``, with a prompt of
    ``prompts``; seeded by ``seed`` and ``label`` (one schedule per block)."""
    if not rate_rps > 0 or math.isinf(rate_rps):
        raise ConfigurationError(f"rate_rps must be a finite number > 0, got {rate_rps!r}")
    if not 0.0 <= tight_share <= 1.0:
        raise ConfigurationError(f"tight_share must be in [0, 1], got {tight_share!r}")
    if fill < 0 or scored < 1 or prompts < 1:
        raise ConfigurationError(
            f"need fill >= 0, scored >= 1 and prompts >= 1, got {fill}, {scored}, {prompts}"
        )
    rng = random.Random(f"priority-{seed}-{label}")
    at_s = 0.0
    out = []
    for index in range(fill + scored):
        at_s += rng.expovariate(rate_rps)
        sla_class = "tight" if rng.random() < tight_share else "loose"
        out.append(Arrival(index, round(at_s, 4), sla_class, rng.randrange(prompts),
                           index >= fill))  # fmt: skip
    return out


def arm_order(block: int) -> tuple[str, str]:
    """Which arm runs first in ``block``: priority, then fcfs, alternating (ABBA)."""
    return ARMS if block % 2 == 0 else (ARMS[1], ARMS[0])


def sla_met(
    *, complete: bool, cut: bool, error: str | None, latency_s: float, deadline_s: float,
    margin_s: float,
) -> bool:  # fmt: skip
    """The stream finished, not cut and without error, within deadline + margin."""
    return complete and not cut and error is None and latency_s <= deadline_s + margin_s


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _scored(rows: Sequence[Mapping[str, Any]], **match: Any) -> list[Mapping[str, Any]]:
    return [r for r in rows if r["scored"] and all(r[k] == v for k, v in match.items())]


def _loads(rows: Sequence[Mapping[str, Any]]) -> list[float]:
    return sorted({r["load"] for r in rows})


def _met_per_s(rows: Sequence[Mapping[str, Any]]) -> float | None:
    """SLA-met runs per second: the offered rate x the share of ``rows`` met."""
    return round(rows[0]["rate_rps"] * sum(r["met"] for r in rows) / len(rows), 3) if rows else None


def class_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per load, arm and class (scored requests): offered, SLA met %, latency
    quantiles (a cut request counts its time to the cut), cut %, the share that
    got a slot (a first token), the share that got one and still missed, the
    median wait for the first token, errors."""
    out = []
    for load in _loads(rows):
        for arm in ARMS:
            for sla_class in CLASSES:
                at = _scored(rows, load=load, arm=arm, sla_class=sla_class)
                if not at:
                    continue
                latencies = [r["latency_s"] for r in at]
                started = [r for r in at if r["ttft_s"] is not None]
                out.append({
                    "load": load, "arm": arm, "class": sla_class,
                    "deadline_s": at[0]["deadline_s"], "offered": len(at),
                    "met_pct": _pct(sum(r["met"] for r in at), len(at)),
                    "p50_s": round(quantile(latencies, 0.50), 3),
                    "p95_s": round(quantile(latencies, 0.95), 3),
                    "cut_pct": _pct(sum(r["cut"] for r in at), len(at)),
                    "started_pct": _pct(len(started), len(at)),
                    "started_missed_pct": _pct(sum(not r["met"] for r in started), len(at)),
                    "ttft_p50_s": round(statistics.median(r["ttft_s"] for r in started), 3)
                    if started else None,
                    "errors": sum(r["error"] is not None and not r["cut"] for r in at),
                })  # fmt: skip
    return out


def arm_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per load and arm (scored requests): SLA-met runs per second (the offered
    rate x the share met), the share met, the share of generated tokens that went to met
    requests, the dispatcher's lateness, and priority's met/s over fcfs's."""
    out = []
    for load in _loads(rows):
        per_arm: dict[str, dict[str, Any]] = {}
        for arm in ARMS:
            at = _scored(rows, load=load, arm=arm)
            if not at:
                continue
            met = sum(r["met"] for r in at)
            tokens = sum(r["tokens"] for r in at)
            per_arm[arm] = {
                "load": load, "arm": arm, "rate_rps": round(at[0]["rate_rps"], 2),
                "offered": len(at), "met": met, "met_pct": _pct(met, len(at)),
                "met_per_s": _met_per_s(at),
                "tokens": tokens,
                "tokens_to_met_pct": _pct(sum(r["tokens"] for r in at if r["met"]), tokens),
                "start_lag_p95_ms": round(1000 * quantile([r["start_lag_s"] for r in at], 0.95), 1),
            }  # fmt: skip
        fcfs = per_arm.get("fcfs", {}).get("met_per_s")
        for row in per_arm.values():
            mine = row["met_per_s"]
            row["vs_fcfs"] = round(mine / fcfs, 2) if fcfs and mine is not None else None
            out.append(row)
    return out


def block_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per load and block: which arm ran first and each arm's SLA-met runs per
    second, to see the spread between blocks."""
    out = []
    for load in _loads(rows):
        for block in sorted({r["block"] for r in rows if r["load"] == load}):
            row: dict[str, Any] = {"load": load, "block": block, "first": arm_order(block)[0]}
            for arm in ARMS:
                row[f"{arm}_met_per_s"] = _met_per_s(_scored(rows, load=load, block=block, arm=arm))
            out.append(row)
    return out


# -- the driver --------------------------------------------------------------------


@dataclass(frozen=True)
class _Sent:
    latency_s: float
    ttft_s: float | None
    complete: bool
    cut: bool
    tokens: int
    error: str | None


async def _send(
    pool: EndpointPool, prompt: str, deadline: Deadline, max_tokens: int, clock: Clock
) -> _Sent:
    """One greedy chat call under ``deadline``, timed from the deadline's start."""
    request = ChatRequest(messages=[{"role": "user", "content": prompt}],
                          max_tokens=max_tokens, temperature=0.0)  # fmt: skip
    started = deadline.started_at
    try:
        async with pool.stream(request, deadline=deadline) as stream:
            await stream.collect()
            ended = clock.now()
    except AgentrtError as exc:  # the open ran out of time, or the server failed
        return _Sent(clock.now() - started, None, complete=False,
                     cut=isinstance(exc, DeadlineExceeded), tokens=0,
                     error=type(exc).__name__)  # fmt: skip
    first = stream.branches[0].first_token_at if stream.branches else None
    return _Sent(
        latency_s=ended - started, ttft_s=None if first is None else first - started,
        complete=stream.complete, cut=stream.cut_by_deadline, tokens=stream.completion_tokens,
        error=None,
    )  # fmt: skip


async def _probe(pool: EndpointPool, plan: PriorityPlan, prompts: Sequence[str],
                 clock: Clock) -> Probe:  # fmt: skip
    """A warm-up call, the unloaded latency (calls one at a time) and the
    capacity (``probe_requests`` calls, ``max_num_seqs`` at a time)."""

    async def call(i: int) -> _Sent:
        deadline = Deadline.after(plan.probe_deadline_s, clock=clock, scope="probe")
        sent = await _send(pool, prompts[i % len(prompts)], deadline, plan.max_tokens, clock)
        if not sent.complete or sent.cut or sent.error is not None:
            raise RunError(f"priority: a capacity probe call failed ({sent.error or 'cut'})")
        return sent

    await call(0)
    unloaded = [(await call(1 + i)).latency_s for i in range(plan.unloaded_requests)]
    slots = asyncio.Semaphore(plan.max_num_seqs)

    async def batched(i: int) -> _Sent:
        async with slots:
            return await call(1 + plan.unloaded_requests + i)

    started = clock.now()
    await asyncio.gather(*(batched(i) for i in range(plan.probe_requests)))
    return Probe(round(statistics.median(unloaded), 4), plan.probe_requests,
                 round(clock.now() - started, 4))  # fmt: skip


async def _run_arm(
    pool: EndpointPool, arm: str, schedule: Sequence[Arrival], deadlines: Mapping[str, float],
    prompts: Sequence[str], plan: PriorityPlan, clock: Clock, *, load: float, block: int,
    rate_rps: float,
) -> list[RequestRecord]:  # fmt: skip
    """Send ``schedule``'s requests at their times through ``pool``; wait for all."""
    done: dict[int, tuple[float, _Sent]] = {}

    async def one(arrival: Arrival, deadline: Deadline, lag_s: float) -> None:
        prompt = prompts[arrival.prompt % len(prompts)]
        done[arrival.index] = (lag_s, await _send(pool, prompt, deadline, plan.max_tokens, clock))

    origin = clock.now() + LEAD_S
    async with asyncio.TaskGroup() as group:
        for arrival in schedule:
            await clock.sleep(origin + arrival.at_s - clock.now())
            deadline = Deadline.after(deadlines[arrival.sla_class], clock=clock, scope="request")
            group.create_task(one(arrival, deadline, deadline.started_at - origin - arrival.at_s))
    records = []
    for arrival in schedule:
        lag_s, sent = done[arrival.index]
        deadline_s = deadlines[arrival.sla_class]
        records.append(RequestRecord(
            load=load, block=block, arm=arm, index=arrival.index, sla_class=arrival.sla_class,
            prompt=arrival.prompt, scored=arrival.scored, rate_rps=round(rate_rps, 4),
            at_s=arrival.at_s, start_lag_s=round(lag_s, 4), deadline_s=deadline_s,
            latency_s=round(sent.latency_s, 4),
            ttft_s=None if sent.ttft_s is None else round(sent.ttft_s, 4),
            complete=sent.complete, cut=sent.cut,
            met=sla_met(complete=sent.complete, cut=sent.cut, error=sent.error,
                        latency_s=sent.latency_s, deadline_s=deadline_s, margin_s=plan.margin_s),
            tokens=sent.tokens, error=sent.error,
        ))  # fmt: skip
    return records


def _prompts(tasks: str | Path, seed: int) -> list[str]:
    count = PROMPTS if isinstance(tasks, str) and tasks in SUITE_NAMES else None
    found = [t.prompt for t in suite(tasks, seed, count)]
    if not found:
        raise ConfigurationError(f"priority: the task suite {str(tasks)!r} has no tasks")
    return found


@dataclass(frozen=True)
class PriorityRun:
    """What :func:`run_priority` measured: the probe, the class deadlines, the
    offered rate of each load level and every request of every run."""

    probe: Probe
    deadlines_s: dict[str, float]
    rates_rps: dict[float, float]
    records: list[RequestRecord]


async def run_priority(
    plan: PriorityPlan, seed: int, prompts: Sequence[str], spec: EndpointSpec, console: Console,
    *, clock: Clock | None = None, transport: httpx.AsyncBaseTransport | None = None,
) -> PriorityRun:  # fmt: skip
    """Probe the server at ``spec``, then run every load level's blocks, both arms
    each (``transport`` and ``clock``: a fake server and time, in tests)."""
    clock = clock or MonotonicClock()
    pools = {
        arm: EndpointPool([spec.model_copy(update={"deadline_priority": arm == "priority"})],
                          clock=clock, transport=transport, health_interval_s=0)
        for arm in ARMS
    }  # fmt: skip
    records: list[RequestRecord] = []
    async with pools["priority"], pools["fcfs"]:
        probe = await _probe(pools["fcfs"], plan, prompts, clock)
        deadlines = class_deadlines(probe.unloaded_latency_s, plan.tight_factor,
                                    plan.loose_factor)  # fmt: skip
        console.print(f"priority: unloaded {probe.unloaded_latency_s:.3f} s, capacity "
                      f"{probe.capacity_rps:.2f} req/s, deadlines {deadlines}")  # fmt: skip
        rates: dict[float, float] = {}
        for load in plan.loads:
            rate = rates[load] = offered_rate(probe.requests, probe.wall_s, load)
            fill = math.ceil(rate * deadlines["loose"])  # the queue's steady state
            for block in range(plan.blocks):
                schedule = arrival_schedule(
                    seed, f"{load:g}-{block}", rate, fill=fill, scored=plan.scored,
                    tight_share=plan.tight_share, prompts=len(prompts),
                )  # fmt: skip
                for arm in arm_order(block):
                    ran = await _run_arm(pools[arm], arm, schedule, deadlines, prompts, plan,
                                         clock, load=load, block=block, rate_rps=rate)  # fmt: skip
                    records += ran
                    met = sum(r.met for r in ran if r.scored)
                    console.print(f"priority: load {load:g} block {block} {arm}: "
                                  f"{met}/{plan.scored} met")  # fmt: skip
                    await clock.sleep(plan.settle_s)
    return PriorityRun(probe, deadlines, rates, records)


def measured(
    plan: PriorityPlan, run: PriorityRun, *, tasks: str | Path, prompts: int, count: int | None
) -> Measured:
    """The result of ``run``: the plan and the server's arguments, every request,
    the probe, the deadlines, the rates and the per-arm and per-class rows."""
    rows = [asdict(r) for r in run.records]
    parameters: dict[str, Any] = {
        **asdict(plan), "tasks": str(tasks), "prompts": prompts,
        "server_args": [*SCHEDULING_ARGS, *plan.server_args],
    }  # fmt: skip
    if count is not None:
        parameters["count"] = count
    summary = {
        "probe": {**asdict(run.probe), "capacity_rps": round(run.probe.capacity_rps, 4)},
        "deadlines_s": run.deadlines_s,
        "rates_rps": {f"{load:g}": round(rate, 4) for load, rate in run.rates_rps.items()},
        "arms": arm_rows(rows),
        "classes": class_rows(rows),
    }
    return Measured(parameters, rows, summary)


async def _measure(ctx: BenchContext) -> Measured:
    plan = PriorityPlan.quick() if ctx.quick else PriorityPlan()
    if ctx.count is not None:
        plan = replace(plan, scored=ctx.count)
    prompts = _prompts(ctx.tasks, ctx.seed)
    with tempfile.TemporaryDirectory(prefix="agentrt-priority-") as home:
        # A pool of its own: a small batch, so requests queue in vLLM, where priority acts.
        local = LocalPool(Settings(home=Path(home), models=Settings().model_dir))
        ctx.console.print(f"priority: starting a vLLM server with {' '.join(plan.server_args)}...")
        (server,) = await local.up(
            plain=1, kv_cache_gib=plan.kv_cache_gib, max_model_len=plan.max_model_len,
            timeout_s=plan.start_timeout_s, extra_args=plan.server_args,
        )  # fmt: skip
        try:
            spec = server.endpoint()
            if not spec.deadline_priority:
                raise ConfigurationError(
                    f"priority: the server was not started with {' '.join(SCHEDULING_ARGS)}"
                )
            run = await run_priority(plan, ctx.seed, prompts, spec, ctx.console)
        finally:
            await local.down()
    return measured(plan, run, tasks=ctx.tasks, prompts=len(prompts), count=ctx.count)


def _tables(result: BenchResult) -> Tables:
    p, s = result.parameters, result.summary
    probe, deadlines = s["probe"], s["deadlines_s"]
    loads = ", ".join(f"{load:g}x" for load in p["loads"])
    setting = (
        f"one vLLM server, {' '.join(p['server_args'])}; "
        f"priority: each request's deadline as its vLLM priority (EDF), fcfs: the same "
        f"requests at priority 0; {p['max_tokens']} max tokens, greedy; unloaded latency "
        f"{probe['unloaded_latency_s']:.2f} s, capacity {probe['capacity_rps']:.2f} req/s"
    )
    classes = (
        f"SLA met per arm and deadline class at {loads} the capacity ({setting}); tight "
        f"{deadlines['tight']} s ({p['tight_factor']:g}x), loose {deadlines['loose']} s "
        f"({p['loose_factor']:g}x), {p['tight_share']:.0%} tight; {p['scored']} scored "
        f"requests per arm in each of {p['blocks']} blocks (arms alternating first), after one "
        f"loose deadline of unscored fill; met = complete within deadline + "
        f"{p['margin_s'] * 1000:.0f} ms; a cut request's latency is its time to the cut"
    )
    return [
        (classes, markdown_table(class_rows(result.rows))),
        ("SLA-met runs per second per arm (the offered rate x the share met; tokens_to_met: "
         "the share of generated tokens spent on requests that met their SLA)",
         markdown_table(arm_rows(result.rows))),
        ("SLA-met runs per second, block by block", markdown_table(block_rows(result.rows))),
    ]  # fmt: skip


BENCHMARK = Benchmark(
    "priority",
    "SLA met under 1x/2x overload of a 4-slot vLLM server: deadline priority (EDF) vs FCFS",
    _measure, _tables, pool=(1, 0),
)  # fmt: skip
