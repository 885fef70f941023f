"""``RemoteGraph`` on a served graph: on its own, as a node of a local graph run under
``Runtime.run(..., deadline=...)`` (the time left travels in ``agentrt-timeout``),
and a client that disconnects mid-stream cancels its run."""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypedDict

import httpx
import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.pregel.remote import RemoteGraph
from langgraph_sdk import get_client

from agentrt.core import FakeClock, deadline_scope
from agentrt.core._deadline import Deadline
from agentrt.serve import deadline_headers, remote_graph, with_deadline_header
from agentrt.serve._deadlines import deadline_from_header
from agentrt.serve._threads import RunRecord
from tests.unit.test_serve_fixtures import (
    Gate,
    Server,
    StepsState,
    gate,
    offline_runtime,
    server,
    wait_for,
)

__all__ = ["gate", "server"]  # the fixtures, used by name

MARGIN_S = 2.0


class CounterState(TypedDict, total=False):
    count: int


def _runs(server: Server) -> list[RunRecord]:
    """The runs the server has seen (its registry, read from this thread)."""
    runs: list[RunRecord] = server.app.state.registry.runs()
    return runs


async def _ended(run: RunRecord, timeout_s: float = 10.0) -> None:
    """Wait until the server has recorded ``run``'s end."""
    for _ in range(int(timeout_s / 0.05)):
        if run.done:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run.run_id} is still {run.status}")


# -- the header -----------------------------------------------------------------------


def test_the_header_says_the_time_left_less_the_margin() -> None:
    def sent(headers: dict[str, str]) -> float:
        return round(deadline_from_header(headers["agentrt-timeout"]), 6)

    clock = FakeClock(100.0)
    deadline = Deadline.after(2.0, clock=clock)
    assert sent(deadline_headers(deadline)) == pytest.approx(1.95)
    assert sent(deadline_headers(deadline, margin_s=0.5)) == pytest.approx(1.5)
    clock.advance(5.0)
    assert sent(deadline_headers(deadline)) == pytest.approx(0.001)  # never zero
    assert deadline_headers(None) == {}  # no deadline in force: nothing to send
    with deadline_scope(Deadline.never(clock=clock)):
        assert deadline_headers() == {}
    with deadline_scope(Deadline.after(3.0, clock=clock)):
        assert sent(deadline_headers()) == pytest.approx(2.95)


async def test_a_client_with_the_hook_sends_the_deadline_in_force() -> None:
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("agentrt-timeout"))
        return httpx.Response(200, json={"ok": True})

    client = get_client(url="http://served", api_key=None)
    client.http.client = httpx.AsyncClient(
        base_url="http://served", transport=httpx.MockTransport(answer)
    )
    with_deadline_header(client)
    clock = FakeClock(0.0)
    await client.http.get("/ok")
    with deadline_scope(Deadline.after(1.0, clock=clock)):
        await client.http.get("/ok")
        await client.http.get("/ok", headers={"agentrt-timeout": "10S"})  # tightened
        await client.http.get("/ok", headers={"agentrt-timeout": "200m"})  # kept: tighter
    assert seen[0] is None and seen[3] == "200m"
    assert [deadline_from_header(h) for h in seen[1:3]] == [pytest.approx(0.95)] * 2
    await client.aclose()


# -- RemoteGraph --------------------------------------------------------------------


async def test_remote_graph_invokes_streams_and_reads_state(server: Server) -> None:
    remote = RemoteGraph("counter", url=server.url, api_key=None)
    assert await remote.ainvoke({"count": 1}) == {"count": 2}
    updates = [chunk async for chunk in remote.astream({"count": 5}, stream_mode="updates")]
    assert updates == [{"increment": {"count": 6}}]
    client = get_client(url=server.url, api_key=None)
    thread = await client.threads.create()
    config = {"configurable": {"thread_id": thread["thread_id"]}}
    assert await remote.ainvoke({"count": 10}, config) == {"count": 11}
    snapshot = await remote.aget_state(config)
    assert snapshot.values == {"count": 11} and snapshot.next == ()
    assert snapshot.metadata is not None and snapshot.metadata["graph_id"] == "counter"


def test_remote_graph_invokes_from_sync_code(server: Server) -> None:
    remote = RemoteGraph("counter", url=server.url, api_key=None)
    assert remote.invoke({"count": 3}) == {"count": 4}
    drawn = remote.get_graph()
    assert set(drawn.nodes) == {"__start__", "increment", "__end__"}


async def test_remote_graph_streams_messages(server: Server) -> None:
    remote = RemoteGraph("chat", url=server.url, api_key=None)
    pieces = [
        message["content"]
        async for message, metadata in remote.astream(
            {"messages": [{"role": "user", "content": "hi"}]}, stream_mode="messages"
        )
    ]
    assert "".join(pieces) == "hello there world"


def _local_graph(node: Any) -> Any:
    builder = StateGraph(CounterState)
    builder.add_node("remote", node)
    builder.add_edge(START, "remote")
    builder.add_edge("remote", END)
    return builder.compile(name="caller")


async def test_a_remote_node_runs_under_the_callers_deadline(server: Server) -> None:
    caller = _local_graph(remote_graph("counter", url=server.url, name="remote"))
    async with offline_runtime() as runtime:
        result = await runtime.run(caller, {"count": 1}, deadline=10)
    assert not result.degraded, result.reason
    assert result.state == {"count": 2}
    (served,) = _runs(server)
    assert served.deadline.source == "header"
    assert served.deadline.seconds < 10  # what the caller had left, less the margin
    assert served.status == "success"


async def test_a_plain_remote_graph_sends_no_deadline(server: Server) -> None:
    caller = _local_graph(RemoteGraph("counter", url=server.url, api_key=None, name="remote"))
    async with offline_runtime() as runtime:
        result = await runtime.run(caller, {"count": 1}, deadline=10)
    assert result.state == {"count": 2}
    (served,) = _runs(server)
    assert served.deadline.source == "profile"


async def test_a_slow_remote_node_is_cut_by_the_callers_deadline(
    server: Server, gate: Gate
) -> None:
    builder = StateGraph(StepsState)
    builder.add_node("remote", remote_graph("steps", url=server.url, name="remote"))
    builder.add_edge(START, "remote")
    builder.add_edge("remote", END)
    started = time.monotonic()
    async with offline_runtime() as runtime:
        result = await runtime.run(builder.compile(), {"steps": []}, deadline=1.0)
    assert time.monotonic() - started < 1.0 + MARGIN_S
    assert await wait_for(gate.cancelled)  # the remote run's work stopped too
    (served,) = _runs(server)
    assert served.deadline.source == "header" and served.deadline.seconds < 1.0
    await _ended(served)
    if result.degraded:  # the answer came too late: the caller cut its node, which hung up
        assert served.status in ("timeout", "interrupted")
    else:  # the remote run was cut by the deadline it was sent and answered in time
        # RemoteGraph returns the remote run's last consistent state; the remote
        # outcome (degraded, timeout) is in its agentrt/outcome event, which it skips
        assert served.status == "timeout"
        assert result.state == {"steps": ["first"]}


# -- disconnects ----------------------------------------------------------------------


@pytest.mark.parametrize("thread", [False, True])
async def test_a_client_that_disconnects_mid_stream_cancels_its_run(
    server: Server, gate: Gate, thread: bool
) -> None:
    client = get_client(url=server.url, api_key=None)
    tid = (await client.threads.create())["thread_id"] if thread else None
    stream = client.runs.stream(tid, "steps", input={"steps": []}, stream_mode="updates")
    first = [await anext(stream), await anext(stream)]
    assert [p.event for p in first] == ["metadata", "updates"]
    assert await wait_for(gate.entered)
    await stream.aclose()  # the client goes away
    await client.aclose()
    assert await wait_for(gate.cancelled)  # the run's work stopped
    (served,) = _runs(server)
    await _ended(served)
    assert served.status == "interrupted"
    assert served.cancel_reason == "the client disconnected"
    assert server.app.state.admission.in_flight == 0


async def test_a_client_that_disconnects_from_a_wait_cancels_its_run(
    server: Server, gate: Gate
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        waiting = asyncio.create_task(
            http.post("/runs/wait", json={"assistant_id": "steps", "input": {"steps": []}})
        )
        assert await wait_for(gate.entered)
        waiting.cancel()  # closes the connection
        with pytest.raises(asyncio.CancelledError):
            await waiting
    assert await wait_for(gate.cancelled)
    (served,) = _runs(server)
    await _ended(served)
    assert served.status == "interrupted"


async def test_on_disconnect_continue_keeps_the_run_going(server: Server, gate: Gate) -> None:
    client = get_client(url=server.url, api_key=None)
    thread = await client.threads.create()
    stream = client.runs.stream(thread["thread_id"], "steps", input={"steps": []},
                                on_disconnect="continue")  # fmt: skip
    metadata = await anext(stream)
    assert await wait_for(gate.entered)
    await stream.aclose()
    gate.open.set()
    joined = await client.runs.join(thread["thread_id"], metadata.data["run_id"])
    assert joined == {"steps": ["first", "wait", "last"]}
    assert not gate.cancelled.is_set()
