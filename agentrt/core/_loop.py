"""Run a coroutine to completion from sync code without waiting on worker threads.

:func:`asyncio.run` ends by joining the loop's default thread pool, so a sync
LangGraph node still running in its worker thread (it cannot be cancelled)
would hold the caller past the deadline, without limit. :func:`run_coroutine`
is ``asyncio.run`` whose default executor is shut down without waiting: the
caller gets control back when the coroutine returns; an uncancellable thread
finishes on its own (the interpreter joins it at exit, as it joins any
non-daemon thread), and the run's result names it (``RunResult.uncancelled``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["exit_now", "run_coroutine"]

T = TypeVar("T")


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a new event loop and return its result (or raise its error)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coro.close()
        raise RuntimeError("run_coroutine() cannot be called from a running event loop")
    loop = asyncio.new_event_loop()
    workers = ThreadPoolExecutor(thread_name_prefix="agentrt-worker")
    loop.set_default_executor(workers)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        try:
            _cancel_remaining(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            workers.shutdown(wait=False, cancel_futures=True)
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks still pending, as :func:`asyncio.run` does; a task awaiting a
    worker thread ends at once (its thread is left to finish)."""
    pending = asyncio.all_tasks(loop)
    if not pending:
        return
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


def exit_now(code: int, *, flush: Callable[[], object] | None = None) -> None:
    """End the process at once, without joining worker threads still running (a
    command whose run left an uncancellable sync node behind). ``flush`` (the
    traces) runs first, and streams and log handlers are drained, since
    ``os._exit`` skips ``atexit``."""
    if flush is not None:
        flush()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
