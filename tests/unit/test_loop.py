"""Sync entry points give control back without waiting on uncancellable threads.

``asyncio.run`` joins the loop's default thread pool at the end, so a sync
LangGraph node stuck in its worker thread would hold ``run_sync`` (and the
CLI) past the deadline without limit. ``run_coroutine`` does not; ``exit_now``
ends a command's process without joining it.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time

import pytest

from agentrt.core._loop import run_coroutine

STUCK_S = 60.0
"""How long the stuck thread would hold a caller that waits for it."""


def test_run_coroutine_returns_while_a_worker_thread_still_runs() -> None:
    release = threading.Event()

    async def main() -> str:
        loop = asyncio.get_running_loop()
        worker = loop.run_in_executor(None, release.wait, STUCK_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(worker), timeout=0.05)
        return "returned"

    try:
        assert run_coroutine(main()) == "returned"
        assert not release.is_set()  # the thread is still waiting: nobody joined it
    finally:
        release.set()


def test_run_coroutine_raises_the_coroutines_error_and_refuses_a_running_loop() -> None:
    async def fails() -> None:
        raise ValueError("inside")

    with pytest.raises(ValueError, match="inside"):
        run_coroutine(fails())

    async def nested() -> None:
        run_coroutine(asyncio.sleep(0))

    with pytest.raises(RuntimeError, match="running event loop"):
        asyncio.run(nested())


def test_exit_now_ends_a_process_whose_worker_thread_is_stuck() -> None:
    script = f"""
import asyncio, threading
from agentrt.core._loop import exit_now, run_coroutine
async def main():
    asyncio.get_running_loop().run_in_executor(None, threading.Event().wait, {STUCK_S})
    await asyncio.sleep(0.05)
run_coroutine(main())
exit_now(3, flush=lambda: print("flushed", flush=True))
"""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=STUCK_S / 2
    )
    assert done.returncode == 3, done.stderr
    assert "flushed" in done.stdout
    assert time.monotonic() - started < STUCK_S / 2  # it did not wait for the thread
