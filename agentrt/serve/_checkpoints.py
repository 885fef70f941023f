"""Where threads keep their state: a LangGraph checkpointer, in memory by default,
PostgreSQL (``langgraph-checkpoint-postgres``) when the server is given a URL, so
that several workers (and several hosts) share threads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from agentrt.core._errors import ConfigurationError
from agentrt.core._redact import redact

if TYPE_CHECKING:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

__all__ = ["open_checkpointer"]

POSTGRES_SCHEMES = ("postgres://", "postgresql://")

SETUP_LOCK = int.from_bytes(b"agentrt\x01", "big")
"""The advisory lock (one per database) held while a worker creates or migrates the
tables: ``AsyncPostgresSaver.setup()`` alone is not safe to run from several workers
at once (they insert the same migration rows and race on ``CREATE TABLE``)."""
SETUP_POLL_S = 0.1


@asynccontextmanager
async def open_checkpointer(url: str | None) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """The checkpointer for ``url``: ``None`` (or ``"memory"``) keeps threads in this
    process; a ``postgresql://`` URL keeps them in that database (its tables are
    created on first use).

    Raises :class:`ConfigurationError` naming the URL, its password blanked, for any
    other scheme, and when the database cannot be opened (bad URL, host or port
    that does not answer, wrong password, missing database), with the driver's
    reason; errors raised by the caller's block pass through unchanged."""
    if url is None or url == "memory":
        yield InMemorySaver()
        return
    if not url.startswith(POSTGRES_SCHEMES):
        raise ConfigurationError(
            f"checkpointer must be 'memory' or a postgresql:// URL, got {redact(url)!r}"
        )
    import psycopg
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    async with AsyncExitStack() as stack:
        try:
            saver = await stack.enter_async_context(AsyncPostgresSaver.from_conn_string(url))
            await _setup(saver)
        except psycopg.Error as exc:
            raise ConfigurationError(
                f"checkpointer {redact(url)!r}: cannot open the database: {exc}"
            ) from exc
        yield saver


async def _setup(saver: AsyncPostgresSaver) -> None:
    """``saver.setup()`` under :data:`SETUP_LOCK`. The lock is polled
    (``pg_try_advisory_lock``) rather than waited on in one statement: a waiting
    statement holds a snapshot, and the migrations' ``CREATE INDEX CONCURRENTLY``
    in the worker holding the lock would wait for it (a deadlock). A worker that
    fails or dies while holding it releases it with its connection."""
    import psycopg

    conn = saver.conn
    if not isinstance(conn, psycopg.AsyncConnection):  # from_conn_string: one connection
        await saver.setup()
        return
    while True:
        cursor = await conn.execute("SELECT pg_try_advisory_lock(%s) AS taken", (SETUP_LOCK,))
        row = await cursor.fetchone()
        if row is not None and row["taken"]:
            break
        await asyncio.sleep(SETUP_POLL_S)
    await saver.setup()
    await conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))
