"""Two ``agentrt serve`` replicas that stand for two hosts, sharing one PostgreSQL and
one vLLM pool and nothing else, driven from here by the real ``langgraph_sdk`` client.

Each replica is a real ``agentrt serve graphs/math.py:graph`` process in a network
namespace of its own (:mod:`tests.support.netns`), listening on its namespace's
address. The pool and PostgreSQL listen on this machine's loopback, out of a
namespace's reach: each replica reaches them through forwarders on its own gateway
(:mod:`tests.support.forwarding`), named in its ``AGENTRT_ENDPOINTS`` and
``--checkpointer`` URL as another host's would be. Where namespaces cannot be made
(not root, no ``ip``), or with ``AGENTRT_TEST_NETNS=0``, the two processes share
loopback instead; the module's output says which it ran on.

A thread made and run on host A is read, run again and walked back (its
checkpoints, through their parents) from host B; stateless runs alternate between
the two. Run records live per replica, so the replica that answers ``runs.get``
is the one that ran the run; in namespaces, each replica's pool forwarders count
the bytes its runs sent to the pool.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from prometheus_client.parser import text_string_to_metric_families

from agentrt.pool import ServerRecord
from agentrt.tts import LatencyModel
from agentrt.tts._calibration_store import render_calibration, write_atomic
from tests.support.forwarding import TcpForwarder
from tests.support.netns import LOOPBACK, Host, stand_in_host
from tests.support.postgres import PostgresServer, free_port, postgres_server_fixture  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
AGENTRT = Path(sys.executable).with_name("agentrt")
START_TIMEOUT_S = 180.0
"""How long a replica may take to answer ``GET /ok``: importing agentrt, loading the
graph and opening its Runtime on the pool, on a shared 2-core machine."""
STOP_TIMEOUT_S = 20.0
POLL_S = 0.25
DEADLINE = {"deadline_s": 60}
PROBLEM = {"problem": "Start with 2. Add 3. Then add 1. What is the result?"}
OTHER_PROBLEM = {"problem": "Start with 4. Add 1. Then add 2. What is the result?"}
NAMESPACES = os.environ.get("AGENTRT_TEST_NETNS") != "0"
"""``AGENTRT_TEST_NETNS=0`` runs the replicas on loopback even where namespaces work."""


@dataclass(frozen=True)
class Replica:
    """One running ``agentrt serve`` process on its stand-in host."""

    host: Host
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    forwarder: TcpForwarder
    pool_ports: tuple[int, ...]
    """The forwarders to the pool on this host's gateway (none on loopback)."""

    def client(self) -> LangGraphClient:
        return get_client(url=self.url, api_key=None)

    def sent_to_pool(self) -> int:
        return sum(self.forwarder.sent_bytes(port) for port in self.pool_ports)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _announce(config: pytest.Config, line: str) -> None:
    """Print ``line`` past pytest's output capture (which host set-up the run had)."""
    capture: Any = config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        print(line)


def _reach(host: Host, forwarder: TcpForwarder, port: int) -> tuple[str, int]:
    """Where ``host`` reaches the loopback service on ``port``: a forwarder on its
    gateway, or the service itself when the host is this machine's loopback."""
    if host.netns is None:
        return LOOPBACK, port
    return host.gateway, forwarder.forward(host.gateway, (LOOPBACK, port))


def _database_url(url: str, address: tuple[str, int]) -> str:
    """``url`` with its host and port replaced by ``address``."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{credentials}@{address[0]}:{address[1]}"))


def _calibration(path: Path, latency: dict[str, LatencyModel]) -> Path:
    """The session's latency models as a calibration file (``AGENTRT_CALIBRATION``):
    a replica plans at the speed this machine's pool runs at, measuring nothing."""
    document = {"latency": {group: model.to_dict() for group, model in latency.items()}}
    write_atomic(path, render_calibration(document, "# The test session's pool_latency.\n"))
    return path


def _environment(
    endpoints: list[str], servers: list[ServerRecord], calibration: Path, home: Path
) -> dict[str, str]:
    """A replica's environment: the pool as ``AGENTRT_ENDPOINTS`` (with its key and
    tool calling), the calibration, a home of its own; no other ``AGENTRT_*``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRT_")}
    env.update(
        AGENTRT_ENDPOINTS=",".join(endpoints),
        AGENTRT_TOOL_CALLING=servers[0].endpoint().tool_calling,
        AGENTRT_CALIBRATION=str(calibration),
        AGENTRT_AUTO_CALIBRATE="0",
        AGENTRT_HOME=str(home),
    )
    key = servers[0].api_key
    if key is not None:
        env["AGENTRT_API_KEY"] = key.get_secret_value()
    return env


def _wait_ready(replica: Replica) -> None:
    give_up = time.monotonic() + START_TIMEOUT_S
    while True:
        code = replica.process.poll()
        if code is not None:
            pytest.fail(f"replica {replica.host.label} exited ({code}):\n{_tail(replica.log)}")
        try:
            if httpx.get(f"{replica.url}/ok", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > give_up:
            pytest.fail(
                f"replica {replica.host.label} did not answer {replica.url}/ok within "
                f"{START_TIMEOUT_S:g}s:\n{_tail(replica.log)}"
            )
        time.sleep(POLL_S)


@contextmanager
def _stopping(process: subprocess.Popen[bytes]) -> Iterator[None]:
    """Stop ``process`` (its process group: SIGTERM, then SIGKILL) when the block ends."""
    try:
        yield
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(STOP_TIMEOUT_S)


@pytest.fixture(scope="module")
def replicas(
    pytestconfig: pytest.Config,
    tmp_path_factory: pytest.TempPathFactory,
    local_servers: list[ServerRecord],
    pool_latency: dict[str, LatencyModel],
    postgres_server: PostgresServer,
) -> Iterator[tuple[Replica, Replica]]:
    plain = [s for s in local_servers if s.group == "plain"]
    base = tmp_path_factory.mktemp("replicas")
    calibration = _calibration(base / "calibration.toml", pool_latency)
    database = postgres_server.create_database()
    with ExitStack() as stack:
        forwarder = stack.enter_context(TcpForwarder())
        started: list[Replica] = []
        for label in ("a", "b"):
            host = stack.enter_context(stand_in_host(label, namespaces=NAMESPACES))
            _announce(pytestconfig, f"\nhost {label}: {host.isolation}")
            pool = [_reach(host, forwarder, s.port) for s in plain]
            endpoints = [f"{s.group}=http://{h}:{p}" for s, (h, p) in zip(plain, pool, strict=True)]
            checkpointer = _database_url(database, _reach(host, forwarder, postgres_server.port))
            port = free_port()
            log = base / f"{label}.log"
            argv = [str(AGENTRT), "serve", "graphs/math.py:graph", "--host", host.address,
                    "--port", str(port), "--checkpointer", checkpointer]  # fmt: skip
            with log.open("wb") as out:
                process = subprocess.Popen(
                    host.command(argv), cwd=REPO, stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True,
                    env=_environment(endpoints, plain, calibration, base / f"{label}-home"),
                )  # fmt: skip
            stack.enter_context(_stopping(process))
            pool_ports = tuple(p for _, p in pool) if host.netns is not None else ()
            url = f"http://{host.address}:{port}"
            started.append(Replica(host, url, process, log, forwarder, pool_ports))
        began = time.monotonic()
        for replica in started:  # both start at once; each waited for in turn
            _wait_ready(replica)
        _announce(pytestconfig, f"both replicas ready in {time.monotonic() - began:.1f}s")
        yield started[0], started[1]


async def _not_found(call: Awaitable[Any]) -> None:
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await call
    assert refused.value.response.status_code == 404


async def _history(client: LangGraphClient, thread_id: str) -> list[dict[str, Any]]:
    """The thread's states, newest first: the latest, then each one's parent."""
    states: list[Any] = [await client.threads.get_state(thread_id)]
    while (parent := states[-1]["parent_checkpoint"]) is not None:
        states.append(await client.threads.get_state(thread_id, checkpoint=parent))
    return states


async def _solve(
    client: LangGraphClient, thread_id: str | None, problem: dict[str, str]
) -> tuple[dict[str, str], dict[str, Any]]:
    """graphs/math.py on ``problem`` under :data:`DEADLINE`: where the run is
    (``thread_id``, ``run_id``) and its values."""
    created: list[Any] = []
    values: Any = await client.runs.wait(
        thread_id, "math", input=problem, context=DEADLINE, on_run_created=created.append
    )
    return created[0], values


async def _record(client: LangGraphClient, where: dict[str, str]) -> dict[str, Any]:
    """The run record at ``where``, with agentrt's outcome under ``agentrt``."""
    record: Any = await client.runs.get(where["thread_id"], where["run_id"])
    return dict(record)


async def test_a_thread_made_on_one_host_runs_on_the_other(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    on_a, on_b = a.client(), b.client()
    thread_id = (await on_a.threads.create())["thread_id"]
    run_a, first = await _solve(on_a, thread_id, PROBLEM)
    assert first["answer"] is not None, first

    seen: Any = await on_b.threads.get_state(thread_id)  # B reads A's run from PostgreSQL
    assert seen["values"]["problem"] == PROBLEM["problem"]
    assert seen["values"]["answer"] == first["answer"]
    run_b, second = await _solve(on_b, thread_id, OTHER_PROBLEM)
    assert second["problem"] == OTHER_PROBLEM["problem"] and second["answer"] is not None, second
    latest: Any = await on_a.threads.get_state(thread_id)
    assert latest["values"]["answer"] == second["answer"]

    for replica, where, other in ((a, run_a, b), (b, run_b, a)):  # each knows its own run
        record = await _record(replica.client(), where)
        assert record["agentrt"]["deadline_source"] == "context", record
        assert record["agentrt"]["report"]["calls"], record
        await _not_found(_record(other.client(), where))

    history = await _history(on_a, thread_id)  # both runs' checkpoints, read from A
    runs = [state["metadata"]["run_id"] for state in reversed(history)]
    distinct = [r for i, r in enumerate(runs) if i == 0 or runs[i - 1] != r]
    assert distinct == [run_a["run_id"], run_b["run_id"]], runs


async def test_stateless_runs_alternate_between_the_hosts(
    replicas: tuple[Replica, Replica],
) -> None:
    sent_before = [replica.sent_to_pool() for replica in replicas]

    async def on(replica: Replica) -> tuple[Replica, dict[str, str], dict[str, Any]]:
        return replica, *await _solve(replica.client(), None, PROBLEM)

    # One run on each host at once, as a round-robin balancer sends two requests.
    answered = await asyncio.gather(*(on(replica) for replica in replicas))
    a, b = replicas
    for replica, where, values in answered:
        assert values["answer"] is not None, (replica.host.label, values)
        record = await _record(replica.client(), where)
        assert record["agentrt"]["deadline_s"] == DEADLINE["deadline_s"], record
        await _not_found(_record((b if replica is a else a).client(), where))
    for replica, before in zip(replicas, sent_before, strict=True):
        if replica.pool_ports:  # in a namespace: its calls went through its own gateway
            assert replica.sent_to_pool() > before, replica.host.isolation


@pytest.fixture(scope="module")
def two_workers(
    tmp_path_factory: pytest.TempPathFactory,
    local_servers: list[ServerRecord],
    pool_latency: dict[str, LatencyModel],
) -> Iterator[str]:
    """``agentrt serve --workers 2`` on loopback (its URL), both workers started."""
    plain = [s for s in local_servers if s.group == "plain"]
    base = tmp_path_factory.mktemp("workers")
    calibration = _calibration(base / "calibration.toml", pool_latency)
    endpoints = [f"{s.group}=http://{LOOPBACK}:{s.port}" for s in plain]
    port, log = free_port(), base / "workers.log"
    argv = [str(AGENTRT), "serve", "graphs/math.py:graph", "--port", str(port), "--workers", "2"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, env=_environment(endpoints, plain, calibration, base / "home"),
        )  # fmt: skip
    with _stopping(process):
        give_up = time.monotonic() + START_TIMEOUT_S
        while log.read_text(errors="replace").count("Application startup complete.") < 2:
            if process.poll() is not None or time.monotonic() > give_up:
                pytest.fail(f"the two workers did not start:\n{_tail(log)}")
            time.sleep(POLL_S)
        yield f"http://{LOOPBACK}:{port}"


async def test_two_workers_on_one_port_answer_each_others_metrics(two_workers: str) -> None:
    """A scrape reaches one worker; it answers every worker's series, labelled by
    worker, so no run is missing whichever worker ran it."""
    client = get_client(url=two_workers, api_key=None)
    runs = 4
    await asyncio.gather(*(_solve(client, None, PROBLEM) for _ in range(runs)))
    await asyncio.sleep(2 * 2.0 + 1)  # each worker publishes every 2 s
    async with httpx.AsyncClient(base_url=two_workers) as http:
        scraped = await http.get("/metrics")
        info = (await http.get("/info")).json()
    assert scraped.status_code == 200, scraped.text
    families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
    counted = [s for s in families["agentrt_runs"].samples if s.name.endswith("_total")]
    assert sum(s.value for s in counted) == runs, counted
    workers = {s.labels["worker"] for s in families["gen_ai_client_operation_duration_seconds"]
               .samples}  # fmt: skip
    assert workers and all(w.isdigit() for w in workers), workers
    assert isinstance(info["agentrt"]["worker"]["pid"], int), info
