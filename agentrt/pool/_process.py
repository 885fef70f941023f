"""Process identity for the local pool: is a recorded pid still our server, and
stopping it.

A pid outlives its process: once a server exits, the kernel may hand its pid to
any later process, and ``state.json`` (see :mod:`agentrt.pool._local`) would
then name a stranger. So a pid is our server only while its process has the
start time recorded at spawn (``/proc/<pid>/stat`` field 22, clock ticks since
boot; a record written before that field existed: its ``started_ns`` within
2 s) and runs vLLM's server on the recorded port. A pid reused by another
process is never signalled. A process group whose leader has exited is (its
members are the server's children: Linux does not hand a pid out while a group
holds it).

:func:`stop` sends the group SIGTERM, waits, then SIGKILL, checking the start
time before each signal and reaping the server when it is our child.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Protocol

from agentrt.core._clock import Clock
from agentrt.core._log import log_dropped

__all__ = ["RecordedProcess", "is_our_server", "pid_running", "start_ticks", "stop"]

_START_TOLERANCE_NS = 2_000_000_000
"""How far a record's ``started_ns`` may be from the process start read back
(``/proc/stat``'s ``btime`` is whole seconds)."""


class RecordedProcess(Protocol):
    """What identifies a recorded server process (an
    :class:`~agentrt.pool._local.ServerRecord`)."""

    @property
    def name(self) -> str: ...
    @property
    def pid(self) -> int: ...
    @property
    def port(self) -> int: ...
    @property
    def started_ns(self) -> int: ...
    @property
    def start_ticks(self) -> int | None: ...


def _proc_stat(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` from field 3 (state) on, or None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # the command name may hold spaces and ')'


def start_ticks(pid: int) -> int | None:
    """When ``pid``'s process started, in clock ticks since boot (field 22)."""
    fields = _proc_stat(pid)
    try:
        return None if fields is None else int(fields[19])
    except (IndexError, ValueError):
        return None


def _boot_time_ns() -> int | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return int(line.split()[1]) * 1_000_000_000
    return None


def _same_process(record: RecordedProcess) -> bool | None:
    """Whether ``record.pid`` is still the process agentrt started: None when no
    process has that pid, False when another has it (the pid was reused)."""
    ticks = start_ticks(record.pid)
    if ticks is None:
        return None
    if record.start_ticks is not None:
        return ticks == record.start_ticks
    boot_ns = _boot_time_ns()
    if record.started_ns and boot_ns is not None:
        started_ns = boot_ns + ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
        return abs(started_ns - record.started_ns) <= _START_TOLERANCE_NS
    return True  # a record with no start time: the command line decides


def pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _proc_stat(pid)
    return fields is None or fields[0] != "Z"  # a zombie (exited, not reaped) is gone


def is_our_server(record: RecordedProcess) -> bool:
    """The pid is still the process started for ``record`` and runs a vLLM server
    on the recorded port (guards against pid reuse)."""
    if not pid_running(record.pid) or not _same_process(record):
        return False
    try:
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"vllm.entrypoints.openai.api_server" in cmdline and str(record.port).encode() in cmdline


def _signal_group(record: RecordedProcess, signum: signal.Signals) -> None:
    """Send ``signum`` to the server's process group unless its pid now belongs to
    another process. With the leader gone, what is left of the group is its children."""
    if _same_process(record) is False:
        return
    try:
        os.killpg(record.pid, signum)
    except ProcessLookupError:
        pass  # the whole group has exited
    except PermissionError as exc:
        log_dropped(f"local server {record.name} (pid {record.pid}): {signum.name}", exc)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):  # not our child: its parent reaps it
        os.waitpid(pid, os.WNOHANG)


async def stop(record: RecordedProcess, clock: Clock, grace_s: float = 10.0) -> None:
    """SIGTERM the server's process group, wait up to ``grace_s``, then SIGKILL it."""
    _signal_group(record, signal.SIGTERM)
    give_up_at = clock.now() + grace_s
    while pid_running(record.pid) and _same_process(record) and clock.now() < give_up_at:
        _reap(record.pid)
        await clock.sleep(0.1)
    _signal_group(record, signal.SIGKILL)
    give_up_at = clock.now() + 2.0
    while pid_running(record.pid) and _same_process(record) and clock.now() < give_up_at:
        _reap(record.pid)
        await clock.sleep(0.05)
    _reap(record.pid)
    if pid_running(record.pid) and _same_process(record):
        log_dropped(f"local server {record.name} (pid {record.pid})", "still running after SIGKILL")
