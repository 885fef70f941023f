"""``agentrt serve`` driven by the real ``langgraph_sdk`` clients: assistants, threads,
runs that wait, stream (each mode) or run in the background, join and cancel."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.errors import ConflictError

from agentrt.serve import OUTCOME_EVENT
from tests.unit.test_serve_fixtures import Gate, Server, gate, server, wait_for

__all__ = ["gate", "server"]  # the fixtures, used by name

HUMAN = {"messages": [{"role": "user", "content": "hi"}]}


def _client(server: Server) -> Any:
    return get_client(url=server.url, api_key=None)


async def test_health_info_and_assistants(server: Server) -> None:
    client = _client(server)
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/ok")).json() == {"ok": True}
        info = (await http.get("/info")).json()
    assert info["agentrt"]["deadline_header"] == "agentrt-timeout"
    assert info["agentrt"]["outcome_event"] == OUTCOME_EVENT
    found = await client.assistants.search()
    assert [a["assistant_id"] for a in found] == ["counter", "steps", "chat", "drain"]
    assert [a["graph_id"] for a in await client.assistants.search(graph_id="steps")] == ["steps"]
    one = await client.assistants.get("counter")
    assert one["graph_id"] == "counter" and one["metadata"]["deadline_s"] == 30.0
    drawn = await client.assistants.get_graph("steps")
    assert {e["source"] for e in drawn["edges"]} >= {"__start__", "first", "wait", "last"}


async def test_a_stateless_run_waits_for_the_final_values(server: Server) -> None:
    created: list[Any] = []
    values = await _client(server).runs.wait(
        None, "counter", input={"count": 41}, on_run_created=created.append
    )
    assert values == {"count": 42}
    (meta,) = created
    run = await _client(server).runs.get(meta["thread_id"], meta["run_id"])
    assert run["status"] == "success"
    assert run["agentrt"]["degraded"] is False and run["agentrt"]["deadline_source"] == "profile"


def test_the_sync_client_runs_too(server: Server) -> None:
    client = get_sync_client(url=server.url, api_key=None)
    assert client.runs.wait(None, "counter", input={"count": 1}) == {"count": 2}
    thread = client.threads.create()
    assert client.runs.wait(thread["thread_id"], "counter", input={"count": 5}) == {"count": 6}
    assert client.threads.get_state(thread["thread_id"])["values"] == {"count": 6}


async def test_a_thread_keeps_its_state_between_runs(server: Server) -> None:
    client = _client(server)
    thread = await client.threads.create(metadata={"user": "ada"})
    tid = thread["thread_id"]
    assert (await client.threads.get(tid))["status"] == "idle"
    await client.runs.wait(tid, "counter", input={"count": 1})
    await client.runs.wait(tid, "counter", input={})  # count comes from the checkpoint
    state = await client.threads.get_state(tid)
    assert state["values"] == {"count": 3}
    assert state["next"] == [] and state["checkpoint"]["thread_id"] == tid
    assert state["metadata"]["graph_id"] == "counter"
    got = await client.threads.get(tid)
    assert got["values"] == {"count": 3}
    assert got["metadata"] == {"user": "ada", "graph_id": "counter"}
    assert [t["thread_id"] for t in await client.threads.search(metadata={"user": "ada"})] == [tid]
    runs = await client.runs.list(tid)
    assert [r["status"] for r in runs] == ["success", "success"]


async def test_a_threads_history_lists_its_checkpoints_newest_first(server: Server) -> None:
    client = _client(server)
    tid = (await client.threads.create())["thread_id"]
    assert await client.threads.get_history(tid) == []  # no run yet
    await client.runs.wait(tid, "counter", input={"count": 1})
    await client.runs.wait(tid, "counter", input={})
    history = await client.threads.get_history(tid, limit=100)
    assert history[0]["values"] == {"count": 3}  # the latest state first
    assert (
        history[0]["checkpoint"]["checkpoint_id"]
        == (await client.threads.get_state(tid))["checkpoint"]["checkpoint_id"]
    )
    assert [h["values"].get("count") for h in history[:1]] == [3]
    (one,) = await client.threads.get_history(tid, limit=1)
    older = await client.threads.get_history(tid, limit=100, before=one["checkpoint"])
    assert len(older) == len(history) - 1 and older[0] == history[1]
    async with httpx.AsyncClient(base_url=server.url) as http:
        bad = await http.post(f"/threads/{tid}/history", json={"limit": 0})
    assert bad.status_code == 422 and "limit = 0" in bad.json()["detail"]


async def test_a_thread_is_bound_to_one_graph(server: Server) -> None:
    client = _client(server)
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "counter", input={"count": 1})
    # runs.wait raises httpx's own error (the sdk adds the body as a note), not ConflictError
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.runs.wait(thread["thread_id"], "steps", input={"steps": []})
    assert refused.value.response.status_code == 409
    assert "holds the state of graph 'counter'" in refused.value.response.text


async def test_a_run_can_create_its_thread(server: Server) -> None:
    client = _client(server)
    values = await client.runs.wait("made-on-the-fly", "counter", input={"count": 1},
                                    if_not_exists="create")  # fmt: skip
    assert values == {"count": 2}
    assert (await client.threads.get("made-on-the-fly"))["values"] == {"count": 2}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("values", [{"messages": 1}, {"messages": 2}]),
        ("updates", [{"reply": 1}]),
        ("custom", [{"progress": "replying"}]),
    ],
)
async def test_a_thread_streams_each_mode(
    server: Server, mode: str, expected: list[dict[str, Any]]
) -> None:
    client = _client(server)
    thread = await client.threads.create()
    parts = [p async for p in client.runs.stream(thread["thread_id"], "chat", input=HUMAN,
                                                 stream_mode=mode)]  # fmt: skip
    events = [p.event for p in parts]
    assert events[0] == "metadata" and events[-1] == OUTCOME_EVENT
    assert set(events[1:-1]) == {mode}
    chunks = [p.data for p in parts[1:-1]]
    if mode == "values":
        assert [{"messages": len(c["messages"])} for c in chunks] == expected
        assert chunks[-1]["messages"][-1]["content"] == "hello there world"
    elif mode == "updates":
        assert [{k: len(v["messages"]) for k, v in c.items()} for c in chunks] == expected
    else:
        assert chunks == expected
    outcome = parts[-1].data
    assert outcome["status"] == "success" and outcome["degraded"] is False
    assert outcome["run_id"] == parts[0].data["run_id"]
    assert outcome["report"]["nodes"][0]["node"] == "reply"


async def test_a_thread_streams_messages_as_the_message_metadata_pairs(server: Server) -> None:
    client = _client(server)
    thread = await client.threads.create()
    parts = [p async for p in client.runs.stream(thread["thread_id"], "chat", input=HUMAN,
                                                 stream_mode="messages-tuple")]  # fmt: skip
    pairs = [p.data for p in parts if p.event == "messages"]
    assert pairs and all(len(pair) == 2 for pair in pairs)
    assert "".join(message["content"] for message, _ in pairs) == "hello there world"
    assert {metadata["langgraph_node"] for _, metadata in pairs} == {"reply"}
    # "messages" is the same pairs (what RemoteGraph asks for is "messages-tuple")
    again = [p async for p in client.runs.stream(None, "chat", input=HUMAN,
                                                 stream_mode="messages")]  # fmt: skip
    assert len([p for p in again if p.event == "messages"]) == len(pairs)


async def test_several_modes_stream_together(server: Server) -> None:
    parts = [
        p.event
        async for p in _client(server).runs.stream(
            None, "chat", input=HUMAN, stream_mode=["updates", "custom", "messages-tuple"]
        )
    ]
    assert parts[0] == "metadata" and parts[-1] == OUTCOME_EVENT
    assert set(parts[1:-1]) == {"updates", "custom", "messages"}


async def test_a_background_run_is_joined(server: Server) -> None:
    client = _client(server)
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "counter", input={"count": 9})
    assert run["status"] in ("running", "success") and run["thread_id"] == thread["thread_id"]
    assert await client.runs.join(thread["thread_id"], run["run_id"]) == {"count": 10}
    assert (await client.runs.get(thread["thread_id"], run["run_id"]))["status"] == "success"


async def test_a_stateless_background_run_is_joined_through_its_thread_id(server: Server) -> None:
    client = _client(server)
    run = await client.runs.create(None, "counter", input={"count": 0})
    assert await client.runs.join(run["thread_id"], run["run_id"]) == {"count": 1}


async def test_a_cancelled_background_run_stops_its_work(server: Server, gate: Gate) -> None:
    client = _client(server)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "steps", input={"steps": []})
    assert await wait_for(gate.entered)
    with pytest.raises(ConflictError, match="busy"):  # one run at a time on a thread
        await client.runs.create(tid, "steps", input={"steps": []})
    await client.runs.cancel(tid, run["run_id"], wait=True)
    assert await wait_for(gate.cancelled)
    cancelled = await client.runs.get(tid, run["run_id"])
    assert cancelled["status"] == "interrupted"
    assert cancelled["agentrt"]["reason"] == "cancelled by request"
    assert await client.runs.join(tid, run["run_id"]) == {"steps": ["first"]}
    with pytest.raises(ConflictError, match="already ended"):
        await client.runs.cancel(tid, run["run_id"])
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_a_thread_is_deleted(server: Server) -> None:
    client = _client(server)
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "counter", input={"count": 1})
    await client.threads.delete(thread["thread_id"])
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get(f"/threads/{thread['thread_id']}")).status_code == 404


async def test_runs_of_many_threads_run_side_by_side(server: Server) -> None:
    client = _client(server)
    threads = [await client.threads.create() for _ in range(8)]
    results = await asyncio.gather(
        *(client.runs.wait(t["thread_id"], "counter", input={"count": i})
          for i, t in enumerate(threads))
    )  # fmt: skip
    assert results == [{"count": i + 1} for i in range(8)]
    assert server.app.state.admission.in_flight == 0


@pytest.mark.parametrize("mode", ["tasks", "checkpoints", "debug"])
async def test_langgraphs_other_modes_stream_as_it_makes_them(server: Server, mode: str) -> None:
    client = _client(server)
    thread = await client.threads.create()
    parts = [p async for p in client.runs.stream(thread["thread_id"], "counter",
                                                 input={"count": 1}, stream_mode=mode)]  # fmt: skip
    chunks = [p.data for p in parts if p.event == mode]
    assert chunks and [p.event for p in parts][-1] == OUTCOME_EVENT
    if mode == "tasks":
        assert [c["name"] for c in chunks] == ["increment", "increment"]  # start, result
        assert chunks[1]["result"] == {"count": 2}
    elif mode == "checkpoints":
        assert chunks[-1]["values"] == {"count": 2} and chunks[-1]["next"] == []
    else:
        assert {c["type"] for c in chunks} >= {"checkpoint", "task", "task_result"}


async def test_an_earlier_checkpoint_of_a_thread_is_read(server: Server) -> None:
    client = _client(server)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "counter", input={"count": 1})
    latest = await client.threads.get_state(tid)
    parent = latest["parent_checkpoint"]
    assert parent is not None
    before = await client.threads.get_state(tid, checkpoint=parent)
    assert before["values"] == {"count": 1} and before["next"] == ["increment"]
    assert before["checkpoint"]["checkpoint_id"] == parent["checkpoint_id"]
