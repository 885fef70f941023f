"""Two ``agentrt up`` at once on one state directory, with real vLLM CPU servers:
every server started is recorded, ``agentrt down`` stops all of them, and the
servers answer ``/v1`` only with the pool's key.

One plain server with a 1 GiB KV cache (the second ``up`` waits on the pool's
lock and reuses the first's), in a temporary ``AGENTRT_HOME``; the prepared
model is the shared one. A server belongs to this test's state directory when
its environment says ``AGENTRT_HOME=<that directory>`` (the launcher passes its
own environment on), which tells it from servers other tests run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agentrt.core._settings import Settings
from agentrt.pool import EndpointPool, LocalPool
from agentrt.pool._protocol import ChatRequest

AGENTRT = Path(sys.executable).with_name("agentrt")
START_TIMEOUT_S = 600
ENTRY = b"vllm.entrypoints.openai.api_server"


def _processes_of(home: Path) -> dict[int, tuple[int, bytes]]:
    """Every live process started for ``home`` (servers and their engine
    processes): pid -> (parent pid, command line)."""
    marker = f"AGENTRT_HOME={home}".encode()
    found: dict[int, tuple[int, bytes]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if fields[0] != "Z":
                    found[int(entry.name)] = (int(fields[1]), (entry / "cmdline").read_bytes())
    return found


def _servers_of(home: Path) -> set[int]:
    """The vLLM servers (not their forked engine processes) started for ``home``."""
    found = _processes_of(home)
    return {
        pid
        for pid, (parent, cmdline) in found.items()
        if ENTRY in cmdline.split(b"\0") and parent not in found
    }


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "agentrt-home"
    yield home
    for pid in _processes_of(home):  # whatever the test left behind
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.timeout(2 * START_TIMEOUT_S)
def test_two_ups_at_once_record_every_server_and_down_stops_them_all(home: Path) -> None:
    started_at = time.monotonic()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRT_")}
    env |= {"AGENTRT_HOME": str(home), "AGENTRT_MODEL_DIR": str(Settings().model_dir),
            "AGENTRT_AUTO_CALIBRATE": "0"}  # fmt: skip
    up = [str(AGENTRT), "up", "--servers", "1", "--kv-cache-gib", "1",
          "--timeout", str(START_TIMEOUT_S), "--no-calibrate"]  # fmt: skip
    racers = [
        subprocess.Popen(up, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [racer.communicate(timeout=2 * START_TIMEOUT_S)[0] for racer in racers]
    assert [r.returncode for r in racers] == [0, 0], outputs

    settings = Settings(home=home, models=Settings().model_dir)
    pool = LocalPool(settings)
    recorded = {s.pid for s in pool.servers()}
    running = _servers_of(home)
    assert running == recorded == {s.pid for s in pool.alive()}  # nothing unrecorded
    assert len(running) == 1  # the second `up` reused the first's server
    (pid,) = running
    assert all(f"pid {pid}" in out for out in outputs)

    # The server wants the pool's key on /v1; agentrt sends it.
    key = pool.key_path.read_text().strip()
    (record,) = pool.alive()
    with httpx.Client(timeout=30) as http:
        assert http.get(f"{record.url}/v1/models").status_code == 401
        wrong = http.get(f"{record.url}/v1/models", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert http.get(f"{record.url}/health").status_code == 200

    async def ask() -> int:
        request = ChatRequest(messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
        async with EndpointPool(pool.endpoints(), health_interval_s=0) as endpoints:
            await endpoints.refresh_load()  # /metrics, open without the key
            async with endpoints.stream(request) as stream:
                await stream.collect()
        return sum(b.tokens for b in stream.branches.values())

    assert asyncio.run(ask()) > 0
    status = subprocess.run([str(AGENTRT), "status", "--json"], env=env, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert status.returncode == 0 and '"healthy": true' in status.stdout
    log_text = Path(record.log_path).read_text(errors="replace")
    for text in (*outputs, status.stdout, status.stderr, log_text,
                 pool.state_path.read_text()):  # fmt: skip
        assert key not in text

    down = subprocess.run([str(AGENTRT), "down"], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert down.returncode == 0 and f"pid {pid}" in down.stdout
    give_up_at = time.monotonic() + 30
    while _processes_of(home) and time.monotonic() < give_up_at:
        time.sleep(0.5)
    assert _processes_of(home) == {}  # the server and its engine process are gone
    assert pool.servers() == [] and not pool.key_path.exists()
    print(f"two concurrent `agentrt up` + checks + down: {time.monotonic() - started_at:.0f}s")
