"""The local pool's bookkeeping with stand-in servers: the state lock, leases,
pid reuse, the loopback bind and the pool's API key.

A stand-in is a small Python HTTP server started the way the launcher starts
vLLM (same arguments, so its command line names vLLM's entry point and its
port): it answers ``/health`` and, like vLLM with ``VLLM_API_KEY`` set, refuses
``/v1`` requests without the key. Every stand-in is stopped by the test that
started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import agentrt.pool._local as local
from agentrt.core._clock import current_clock, wall_time_ns
from agentrt.core._errors import ConfigurationError, LocalPoolError
from agentrt.core._files import atomic_write_text
from agentrt.core._settings import Settings
from agentrt.pool._local import LocalPool, ServerRecord
from agentrt.pool._local_model import LOCAL_MODEL_NAME, PreparedModel
from agentrt.pool._process import stop

ENTRY = "vllm.entrypoints.openai.api_server"
FAKE_VLLM = textwrap.dedent(
    """
    import http.server, json, os, sys

    port = int(sys.argv[sys.argv.index("--port") + 1])
    key = os.environ.get("VLLM_API_KEY")


    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            wanted = f"Bearer {key}"
            if self.path.startswith("/v1") and key and self.headers.get("Authorization") != wanted:
                return self.send(401, {"error": "Unauthorized"})
            bodies = {
                "/health": {},
                "/version": {"version": "0.0.fake"},
                "/v1/models": {"object": "list", "data": [{"id": "MODEL", "object": "model"}]},
            }
            if self.path == "/metrics":
                return self.send(200, None)
            self.send(200, bodies[self.path]) if self.path in bodies else self.send(404, {})

        def send(self, status, body):
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)


    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
    """
).replace("MODEL", LOCAL_MODEL_NAME)


@pytest.fixture
def fake_vllm(tmp_path: Path) -> Path:
    script = tmp_path / "fake_vllm.py"
    script.write_text(FAKE_VLLM)
    return script


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", models=tmp_path / "models")


@pytest.fixture
def spawned(
    monkeypatch: pytest.MonkeyPatch, fake_vllm: Path, tmp_path: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Stand-ins replace vLLM in the launcher (they are stopped at the end); the
    model is not prepared."""
    started: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def popen(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        if args[1:3] != ["-m", ENTRY]:  # `subprocess` is one module: only the launcher's
            return real_popen(args, **kwargs)
        process = real_popen([sys.executable, str(fake_vllm), ENTRY, *args[3:]], **kwargs)
        started.append(process)
        return process

    model = PreparedModel(tmp_path / "model", LOCAL_MODEL_NAME, tmp_path / "x.gguf", "0", False)
    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr(local, "prepare_model", lambda _dir: model)
    yield started
    for process in started:
        _kill(process.pid)
        process.wait()


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _exited_pid() -> int:
    """The pid of a process that has exited (as one holding a lease that crashed)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_text()


def _stand_in(fake_vllm: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(fake_vllm), ENTRY, "--port", str(port)], start_new_session=True
    )


# -- the lock: two starts at once --------------------------------------------------

RACER = textwrap.dedent(
    """
    import asyncio, json, subprocess, sys, time
    from pathlib import Path

    import agentrt.pool._local as local
    from agentrt.core._settings import Settings
    from agentrt.pool._local_model import PreparedModel

    home, fake, log = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    real_popen = subprocess.Popen


    def popen(args, **kwargs):
        process = real_popen([sys.executable, fake, args[2], *args[3:]], **kwargs)
        with log.open("a") as f:
            f.write(f"{process.pid}\\n")
        return process


    def prepare(model_dir):
        time.sleep(0.5)  # both racers read the state before either writes it
        return PreparedModel(home / "model", "m", home / "g", "0", False)


    local.subprocess.Popen = popen
    local.prepare_model = prepare
    pool = local.LocalPool(Settings(home=home, models=home / "models"))
    records = asyncio.run(pool.up(plain=1, timeout_s=60))
    print(json.dumps([r.pid for r in records]))
    """
)


def test_two_ups_at_once_record_every_server_they_start(tmp_path: Path, fake_vllm: Path) -> None:
    home, log = tmp_path / "home", tmp_path / "spawned.txt"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(home), str(fake_vllm), str(log)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [racer.communicate(timeout=120)[0] for racer in racers]
    spawned = [int(line) for line in log.read_text().split()]
    pool = LocalPool(Settings(home=home, models=home / "models"))
    try:
        assert all(racer.returncode == 0 for racer in racers)
        recorded = [s.pid for s in pool.servers()]
        assert sorted(recorded) == sorted(spawned)  # nothing started goes unrecorded
        assert len(spawned) == 1  # the second `up` waited and reused the first's server
        assert [json.loads(out) for out in outputs] == [spawned, spawned]
        stopped = asyncio.run(pool.down())
        assert [s.pid for s in stopped] == spawned
        assert not any(_running(pid) for pid in spawned)
    finally:
        for pid in spawned:
            _kill(pid)


async def test_a_second_up_waits_for_the_first_and_gets_a_healthy_server(
    settings: Settings, spawned: list[subprocess.Popen[bytes]]
) -> None:
    first, second = await asyncio.gather(
        LocalPool(settings).up(timeout_s=30), LocalPool(settings).up(timeout_s=30)
    )
    assert len(spawned) == 1 and first == second
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{first[0].url}/health")).status_code == 200
    await LocalPool(settings).down()


def test_state_is_written_atomically_and_a_lock_file_guards_it(
    settings: Settings, spawned: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[Path] = []
    real = atomic_write_text

    def spy(path: Path, text: str, *, mode: int | None = None) -> None:
        writes.append(path)
        real(path, text, mode=mode)

    monkeypatch.setattr(local, "atomic_write_text", spy)
    pool = LocalPool(settings)
    asyncio.run(pool.up(timeout_s=30))
    assert pool.state_path in writes and pool.lock_path.is_file()
    asyncio.run(pool.down())
    assert not pool.state_path.exists() and not pool.key_path.exists()


def test_a_start_that_cannot_get_the_lock_in_time_says_who_holds_it(
    settings: Settings, spawned: list[subprocess.Popen[bytes]]
) -> None:
    pool = LocalPool(settings)
    pool.lock_path.parent.mkdir(parents=True)
    with pool.lock_path.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process starting the pool
        with pytest.raises(LocalPoolError, match=r"held the local pool's lock .*/pool/lock"):
            asyncio.run(pool.up(timeout_s=0.3))
    assert spawned == [] and not pool.state_path.exists()


# -- leases: ensure never stops what another block uses ---------------------------


async def test_ensure_never_stops_servers_another_block_is_using(
    settings: Settings, spawned: list[subprocess.Popen[bytes]]
) -> None:
    first, second = LocalPool(settings), LocalPool(settings)
    async with first.ensure(timeout_s=30) as specs:
        (server,) = first.alive()
        assert server.temporary and specs == [server.endpoint()]
        async with second.ensure(timeout_s=30) as also:
            assert also == specs and len(spawned) == 1
        assert _running(server.pid)  # the second block ended; the first still uses it
        async with second.ensure(timeout_s=30):
            pass
    # The first block started it, and it ended last while the second had left: the
    # last lease out stops the temporary servers.
    assert not _running(server.pid)
    assert first.servers() == [] and not first.state_path.exists()


async def test_the_last_lease_stops_servers_the_first_block_started(
    settings: Settings, spawned: list[subprocess.Popen[bytes]]
) -> None:
    starter, user = LocalPool(settings), LocalPool(settings)
    first, second = starter.ensure(timeout_s=30), user.ensure(timeout_s=30)
    specs = await first.__aenter__()
    assert await second.__aenter__() == specs
    (server,) = starter.alive()
    await first.__aexit__(None, None, None)  # the starter leaves while the user stays
    assert _running(server.pid)
    await second.__aexit__(None, None, None)
    assert not _running(server.pid) and not starter.state_path.exists()


async def test_ensure_leaves_a_pool_that_up_started_running(
    settings: Settings, spawned: list[subprocess.Popen[bytes]]
) -> None:
    pool = LocalPool(settings)
    (server,) = await pool.up(timeout_s=30)
    async with pool.ensure(timeout_s=30) as specs:
        assert specs == [server.endpoint()]
    assert pool.alive() == [server]
    await pool.down()
    assert not _running(server.pid)


async def test_up_makes_a_temporary_pool_permanent(
    settings: Settings, spawned: list[subprocess.Popen[bytes]]
) -> None:
    pool = LocalPool(settings)
    async with pool.ensure(timeout_s=30):
        (kept,) = await LocalPool(settings).up(timeout_s=30)
        assert not kept.temporary and len(spawned) == 1
    assert [s.pid for s in pool.alive()] == [kept.pid]
    await pool.down()


async def test_a_dead_lease_holds_nothing(
    settings: Settings, spawned: list[subprocess.Popen[bytes]]
) -> None:
    pool = LocalPool(settings)
    async with pool.ensure(timeout_s=30):
        (server,) = pool.alive()
        document = json.loads(pool.state_path.read_text())
        crashed = {"id": "crashed", "pid": _exited_pid(), "start_ticks": 1}
        document["leases"].append(crashed)
        pool.state_path.write_text(json.dumps(document))
    assert not _running(server.pid)


# -- pid reuse ------------------------------------------------------------------------


def _ticks(pid: int) -> int:
    """The process's start time, clock ticks since boot (``/proc/<pid>/stat`` field 22)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


@pytest.mark.parametrize("how", ["start_ticks", "started_ns"])
async def test_a_reused_pid_is_never_treated_as_ours_nor_killed(
    settings: Settings, fake_vllm: Path, how: str
) -> None:
    port = local._free_port()
    stranger = _stand_in(fake_vllm, port)  # same command line, not the process recorded
    try:
        now_ns = wall_time_ns()
        row: dict[str, Any] = {
            "name": "plain-0", "group": "plain", "pid": stranger.pid, "port": port,
            "log_path": "x", "model_path": "m", "served_model": LOCAL_MODEL_NAME,
        }  # fmt: skip
        if how == "start_ticks":
            row |= {"started_ns": now_ns, "start_ticks": _ticks(stranger.pid) - 100}
        else:  # a record written before start_ticks: its wall-clock start, an hour ago
            row |= {"started_ns": now_ns - 3600 * 10**9}
        pool = LocalPool(settings)
        pool.state_path.parent.mkdir(parents=True)
        pool.state_path.write_text(json.dumps([row]))
        assert pool.alive() == []
        assert await pool.down() == []
        await stop(ServerRecord(**row), current_clock(), grace_s=0.2)
        assert stranger.poll() is None and _running(stranger.pid)
        # With its real start time, the same process is ours.
        pool.state_path.write_text(json.dumps([{**row, "start_ticks": _ticks(stranger.pid)}]))
        assert [s.pid for s in pool.alive()] == [stranger.pid]
    finally:
        stranger.kill()
        stranger.wait()


def test_a_legacy_record_is_recognised_by_its_wall_clock_start(
    settings: Settings, fake_vllm: Path
) -> None:
    port = local._free_port()
    server = _stand_in(fake_vllm, port)
    try:
        record = ServerRecord(
            name="plain-0", group="plain", pid=server.pid, port=port, log_path="x",
            model_path="m", served_model=LOCAL_MODEL_NAME, started_ns=wall_time_ns(),
        )  # fmt: skip
        pool = LocalPool(settings)
        # The format before leases: a bare list of servers.
        pool.state_path.parent.mkdir(parents=True)
        pool.state_path.write_text(json.dumps([record.to_row()]))
        assert pool.alive() == [record]
        assert asyncio.run(pool.down()) == [record]
        server.wait(timeout=10)
    finally:
        server.kill()
        server.wait()


def test_a_server_that_cannot_be_signalled_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = ServerRecord(
            name="plain-0", group="plain", pid=sleeper.pid, port=1, log_path="x",
            model_path="m", served_model="m", start_ticks=_ticks(sleeper.pid),
        )  # fmt: skip

        def refused(pid: int, signum: int) -> None:
            raise PermissionError("Operation not permitted")

        monkeypatch.setattr(os, "killpg", refused)
        with caplog.at_level(logging.WARNING, logger="agentrt"):
            asyncio.run(stop(record, current_clock(), grace_s=0.1))
        assert "SIGTERM" in caplog.text and "still running after SIGKILL" in caplog.text
    finally:
        sleeper.kill()
        sleeper.wait()


# -- extra_args ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        ["--host", "0.0.0.0"],
        ["--host=0.0.0.0"],
        ["--ho", "0.0.0.0"],  # argparse takes an unambiguous prefix
        ["--port", "8000"],
        ["--api-key", "guessable"],
        ["--api_key=guessable"],
        ["--uds", "/tmp/vllm.sock"],
        ["--config", "serve.yaml"],
    ],
)
def test_extra_args_may_not_move_the_bind_the_port_or_the_key(
    settings: Settings, spawned: list[subprocess.Popen[bytes]], extra: list[str]
) -> None:
    # The message names the field and the value (a key's value redacted).
    with pytest.raises(ConfigurationError, match=rf"extra_args: '{extra[0].split('=')[0]}"):
        asyncio.run(LocalPool(settings).up(extra_args=extra))
    assert spawned == []


def test_other_extra_args_pass() -> None:
    local.check_extra_args(["--max-num-seqs", "4", "--config-format", "hf", "--dtype=float32"])


# -- the pool's key --------------------------------------------------------------------


async def test_the_pool_has_a_private_key_that_its_servers_require(
    settings: Settings, spawned: list[subprocess.Popen[bytes]]
) -> None:
    pool = LocalPool(settings)
    (record,) = await pool.up(timeout_s=30)
    key = pool.key_path.read_text().strip()
    assert len(key) >= 32
    assert stat.S_IMODE(pool.key_path.stat().st_mode) == 0o600
    spec = record.endpoint()
    assert spec.api_key is not None and spec.api_key.get_secret_value() == key
    assert pool.endpoints()[0].api_key == spec.api_key  # read back from the key file
    # Not on the command line (world-readable in /proc), not in the state file, not in repr.
    assert key not in _cmdline(record.pid)
    assert key not in pool.state_path.read_text() and key not in repr(record)
    assert key not in " ".join(record.launch_args)
    async with httpx.AsyncClient() as http:
        refused = await http.get(f"{record.url}/v1/models")
        accepted = await http.get(
            f"{record.url}/v1/models", headers={"Authorization": f"Bearer {key}"}
        )
    assert (refused.status_code, accepted.status_code) == (401, 200)
    await pool.down()
    assert not pool.key_path.exists()
    (again,) = await pool.up(timeout_s=30)
    assert again.api_key is not None and again.api_key.get_secret_value() != key
    await pool.down()


def test_a_key_in_the_callers_environment_never_reaches_the_servers(
    settings: Settings, spawned: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "the-callers-own-key")
    pool = LocalPool(settings)
    (record,) = asyncio.run(pool.up(timeout_s=30))
    environ = Path(f"/proc/{record.pid}/environ").read_bytes().split(b"\0")
    assert f"VLLM_API_KEY={pool.key_path.read_text().strip()}".encode() in environ
    asyncio.run(pool.down())


def test_status_uses_the_key_and_never_prints_it(
    settings: Settings, spawned: list[subprocess.Popen[bytes]]
) -> None:
    from agentrt.cli.app import app

    pool = LocalPool(settings)
    asyncio.run(pool.up(timeout_s=30))
    key = pool.key_path.read_text().strip()
    env = {"AGENTRT_HOME": str(settings.home), "AGENTRT_ENDPOINTS": "",
           "AGENTRT_MODEL_DIR": str(settings.model_dir)}  # fmt: skip
    try:
        for args in (["status"], ["status", "--json"]):
            result = CliRunner().invoke(app, args, env=env)
            assert result.exit_code == 0, result.output
            assert key not in result.output
        assert '"healthy": true' in result.output  # /v1/models answered: the key was sent
    finally:
        asyncio.run(pool.down())
