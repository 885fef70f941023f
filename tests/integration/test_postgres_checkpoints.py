"""Threads kept in a real PostgreSQL server (``open_checkpointer(url)``).

A private server (tests/support/postgres.py) runs for the session; each test gets an
empty database on it. The graph is plain Python (no model): four nodes in a row,
each appending its name to the state and counting its calls, so a resumed run
shows which nodes ran again. "Another worker" is a second ``open_checkpointer`` on
a new connection, and, where it matters, another process (this module run with
``python -m``), so nothing can come from memory.
"""

from __future__ import annotations

import asyncio
import json
import operator
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

from agentrt.core._errors import ConfigurationError
from agentrt.core._redact import redact
from agentrt.serve._checkpoints import open_checkpointer
from tests.support.postgres import (  # noqa: F401 (fixtures)
    PostgresServer,
    free_port,
    postgres_server_fixture,
    postgres_url_fixture,
)

ROOT = Path(__file__).resolve().parents[2]
NODES = ("plan", "fetch", "solve", "report")
TABLES = {"checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations"}
CHILD_TIMEOUT_S = 120.0
"""A child imports langgraph and psycopg (a second or two) on a shared 2-core machine."""


class State(TypedDict):
    question: str
    log: Annotated[list[str], operator.add]


def build(
    calls: Counter[str], *, hang_in: str | None = None, marker: Path | None = None
) -> StateGraph[State]:
    """plan -> fetch -> solve -> report; ``hang_in`` names a node that writes
    ``marker`` and then sleeps (until its process is killed)."""

    def node(name: str) -> Any:
        async def step(state: State) -> dict[str, Any]:
            calls[name] += 1
            if name == hang_in:
                assert marker is not None
                await asyncio.to_thread(marker.write_text, str(os.getpid()))
                await asyncio.sleep(3600)
            return {"log": [name]}

        return step

    graph = StateGraph(State)
    previous = START
    for name in NODES:
        graph.add_node(name, node(name))
        graph.add_edge(previous, name)
        previous = name
    graph.add_edge(previous, END)
    return graph


def thread(name: str) -> RunnableConfig:
    return {"configurable": {"thread_id": name}}


async def tables(url: str) -> set[str]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cursor = await conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        return {row[0] for row in await cursor.fetchall()}


async def start_child(mode: str, url: str, thread_id: str, marker: Path | None = None) -> Any:
    env = {
        **os.environ,
        "AGENTRT_TEST_PG_URL": url,
        "AGENTRT_TEST_THREAD": thread_id,
        "AGENTRT_TEST_MARKER": str(marker or ""),
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.test_postgres_checkpoints", mode,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def read_in_child(url: str, thread_id: str) -> dict[str, Any]:
    """The thread's state as another process reads it from the database."""
    child = await start_child("read", url, thread_id)
    out, err = await asyncio.wait_for(child.communicate(), CHILD_TIMEOUT_S)
    assert child.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


async def test_a_thread_run_by_one_worker_is_read_by_another_process(postgres_url: str) -> None:
    assert await tables(postgres_url) == set(), "a fresh database"
    calls: Counter[str] = Counter()
    async with open_checkpointer(postgres_url) as saver:
        graph = build(calls).compile(checkpointer=saver)
        done = await graph.ainvoke({"question": "47 + 38?", "log": []}, thread("t-1"))
    assert done == {"question": "47 + 38?", "log": list(NODES)}
    assert await tables(postgres_url) >= TABLES, "open_checkpointer created its tables"

    # Another worker in this process: a new connection, and setup() again is harmless.
    async with open_checkpointer(postgres_url) as other:
        state = await build(Counter()).compile(checkpointer=other).aget_state(thread("t-1"))
    assert state.values == done and state.next == ()

    # Another process: nothing it reads can come from this one's memory.
    seen = await read_in_child(postgres_url, "t-1")
    assert seen["values"] == done and seen["next"] == []
    assert seen["checkpoints"] >= len(NODES), "one checkpoint per step at least"
    assert (await read_in_child(postgres_url, "t-unknown"))["values"] == {}
    assert calls == dict.fromkeys(NODES, 1)


async def test_an_interrupted_run_resumes_on_another_saver_where_it_stopped(
    postgres_url: str,
) -> None:
    first: Counter[str] = Counter()
    async with open_checkpointer(postgres_url) as saver:
        graph = build(first).compile(checkpointer=saver, interrupt_after=["fetch"])
        await graph.ainvoke({"question": "q", "log": []}, thread("t-2"))
        stopped = await graph.aget_state(thread("t-2"))
    assert stopped.next == ("solve",) and stopped.values["log"] == ["plan", "fetch"]

    second: Counter[str] = Counter()
    async with open_checkpointer(postgres_url) as saver:
        resumed = build(second).compile(checkpointer=saver)
        done = await resumed.ainvoke(None, thread("t-2"))
    assert done["log"] == list(NODES)
    assert first == {"plan": 1, "fetch": 1}
    assert second == {"solve": 1, "report": 1}, "finished nodes do not run again"


async def test_a_worker_killed_mid_node_is_resumed_by_another(
    postgres_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "in-solve"
    child = await start_child("hang", postgres_url, "t-3", marker)
    try:
        began = time.monotonic()
        while not marker.exists():
            if child.returncode is not None or time.monotonic() - began > CHILD_TIMEOUT_S:
                _, err = await child.communicate()
                pytest.fail(f"the worker never reached 'solve': {err.decode()[-2000:]}")
            await asyncio.sleep(0.05)
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL

    calls: Counter[str] = Counter()
    async with open_checkpointer(postgres_url) as saver:
        graph = build(calls).compile(checkpointer=saver)
        stopped = await graph.aget_state(thread("t-3"))
        assert stopped.next == ("solve",) and stopped.values["log"] == ["plan", "fetch"]
        done = await graph.ainvoke(None, thread("t-3"))
    assert done["log"] == list(NODES)
    assert calls == {"solve": 1, "report": 1}, "plan and fetch ran once, in the killed worker"


async def test_workers_starting_at_once_on_an_empty_database_all_open_it(
    postgres_url: str,
) -> None:
    """setup() alone races (duplicate migration rows, ``CREATE TABLE`` on the catalog):
    open_checkpointer serialises it with an advisory lock."""

    async def worker() -> None:
        async with open_checkpointer(postgres_url) as saver:
            await build(Counter()).compile(checkpointer=saver).aget_state(thread("t-4"))

    await asyncio.gather(*(worker() for _ in range(6)))
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        cursor = await conn.execute("SELECT v FROM checkpoint_migrations ORDER BY v")
        versions = [row[0] for row in await cursor.fetchall()]
    assert versions == list(range(len(AsyncPostgresSaver.MIGRATIONS))), "each migration once"


@pytest.mark.parametrize(
    "url", ["mysql://x", "mysql://app:hunter2@db:3306/threads", "sqlite:///threads.db"]
)
async def test_other_schemes_are_refused_naming_the_url_without_its_password(url: str) -> None:
    with pytest.raises(ConfigurationError, match="postgresql:// URL") as info:
        async with open_checkpointer(url):
            pytest.fail("opened")
    message = str(info.value)
    assert repr(redact(url)) in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("password", "password authentication failed"),
        ("port", "Connection refused"),
        ("database", 'database "absent" does not exist'),
        ("malformed", 'invalid integer value "notaport"'),
    ],
)
async def test_a_database_that_cannot_be_opened_is_a_configuration_error(
    postgres_server: PostgresServer, case: str, reason: str
) -> None:
    url = {
        "password": postgres_server.url("postgres", password="not-the-password"),
        "port": postgres_server.url("postgres", port=free_port()),
        "database": postgres_server.url("absent"),
        "malformed": f"postgresql://u:pw-secret@127.0.0.1:notaport/{case}",
    }[case]
    with pytest.raises(ConfigurationError) as info:
        async with open_checkpointer(url):
            pytest.fail("opened")
    message = str(info.value)
    assert f"checkpointer {redact(url)!r}: cannot open the database" in message
    assert reason in message
    for secret in ("not-the-password", postgres_server.password, "pw-secret"):
        assert secret not in message
    assert isinstance(info.value.__cause__, psycopg.OperationalError)


async def test_errors_of_the_callers_block_pass_through(postgres_url: str) -> None:
    with pytest.raises(psycopg.OperationalError, match="the caller's own"):
        async with open_checkpointer(postgres_url):
            raise psycopg.OperationalError("the caller's own")


async def _child(mode: str) -> None:
    """Another worker process: ``read`` prints the thread's state as JSON; ``hang``
    runs the graph until 'solve', which hangs until the process is killed."""
    url, thread_id = os.environ["AGENTRT_TEST_PG_URL"], os.environ["AGENTRT_TEST_THREAD"]
    async with open_checkpointer(url) as saver:
        if mode == "read":
            graph = build(Counter()).compile(checkpointer=saver)
            state = await graph.aget_state(thread(thread_id))
            history = [c async for c in saver.alist(thread(thread_id))]
            print(json.dumps({"values": state.values, "next": list(state.next),
                              "checkpoints": len(history)}))  # fmt: skip
        else:
            marker = Path(os.environ["AGENTRT_TEST_MARKER"])
            graph = build(Counter(), hang_in="solve", marker=marker).compile(checkpointer=saver)
            # "sync": each step's checkpoint is written before the next step starts.
            await graph.ainvoke({"question": "q", "log": []}, thread(thread_id), durability="sync")


if __name__ == "__main__":
    asyncio.run(_child(sys.argv[1]))
