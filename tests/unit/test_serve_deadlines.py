"""A served run's deadline: from the ``agentrt-timeout`` header, ``context`` or
``config`` (the tightest wins, else the profile's); a run past it comes back by
then, flagged; a thread cut by its deadline resumes where it stopped."""

from __future__ import annotations

import math
import time
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from agentrt.serve import MAX_DEADLINE_S, RequestRefused, run_deadline
from agentrt.serve._deadlines import deadline_from_header
from tests.unit.test_serve_fixtures import Gate, Server, gate, server, wait_for

__all__ = ["gate", "server"]  # the fixtures, used by name

MARGIN_S = 2.0
"""The generous bound on how far past its deadline a response may come."""


def _deadline(**given: Any) -> Any:
    return run_deadline(
        header=given.get("header"),
        context=given.get("context"),
        configurable=given.get("configurable"),
        profile_deadline_s=given.get("profile", 30.0),
    )


# -- the pure decision -----------------------------------------------------------------


def test_without_a_deadline_the_profiles_applies() -> None:
    chosen = _deadline(profile=8.0)
    assert (chosen.seconds, chosen.source) == (8.0, "profile")


@pytest.mark.parametrize(
    ("given", "seconds", "source"),
    [
        ({"header": "1500m"}, 1.5, "header"),
        ({"context": {"deadline_s": 2}}, 2.0, "context"),
        ({"configurable": {"deadline_s": 0.25}}, 0.25, "config"),
        ({"header": "1500m", "context": {"deadline_s": 20}}, 1.5, "header"),
        ({"header": "20S", "context": {"deadline_s": 1.0}}, 1.0, "context"),
        ({"header": "3S", "context": {"deadline_s": 2}, "configurable": {"deadline_s": 1}},
         1.0, "config"),
        ({"header": "100S", "profile": 5.0}, 100.0, "header"),
    ],
)  # fmt: skip
def test_the_tightest_given_deadline_wins(
    given: dict[str, Any], seconds: float, source: str
) -> None:
    chosen = _deadline(**given)
    assert (chosen.seconds, chosen.source) == (seconds, source)


@pytest.mark.parametrize(
    ("given", "field", "says"),
    [
        ({"header": "soon"}, "header agentrt-timeout", "must look like '1500m'"),
        ({"header": "0S"}, "header agentrt-timeout", "greater than zero"),
        ({"header": "2H"}, "header agentrt-timeout", "at most 3600"),
        ({"context": {"deadline_s": -1}}, "context.deadline_s", "greater than zero"),
        ({"context": {"deadline_s": 0}}, "context.deadline_s", "greater than zero"),
        ({"context": {"deadline_s": math.nan}}, "context.deadline_s", "finite"),
        ({"context": {"deadline_s": math.inf}}, "context.deadline_s", "finite"),
        ({"context": {"deadline_s": "8s"}}, "context.deadline_s", "a number of seconds"),
        ({"context": {"deadline_s": None}}, "context.deadline_s", "a number of seconds"),
        ({"context": {"deadline_s": True}}, "context.deadline_s", "a number of seconds"),
        ({"configurable": {"deadline_s": 86400}}, "config.configurable.deadline_s", "at most"),
    ],
)
def test_a_bad_deadline_is_refused_naming_where_and_what(
    given: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(RequestRefused) as refused:
        _deadline(**given)
    assert refused.value.status_code == 422
    assert refused.value.field == field
    assert says in refused.value.detail
    assert field in refused.value.detail


def test_the_header_is_the_grpc_timeout_format() -> None:
    assert deadline_from_header("250m") == pytest.approx(0.25)
    assert deadline_from_header("2S") == 2.0
    assert deadline_from_header("1M") == 60.0
    assert _deadline(header=f"{int(MAX_DEADLINE_S)}S").seconds == MAX_DEADLINE_S


# -- served runs ---------------------------------------------------------------------


async def test_a_run_past_its_deadline_returns_by_it_flagged(server: Server, gate: Gate) -> None:
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response = await http.post(
            "/runs/wait",
            json={"assistant_id": "steps", "input": {"steps": []}},
            headers={"agentrt-timeout": "500m"},
        )
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json() == {"steps": ["first"]}  # the last consistent state
    assert response.headers["agentrt-degraded"] == "true"
    assert response.headers["agentrt-run-status"] == "timeout"
    assert "hard deadline" in response.headers["agentrt-reason"]
    assert response.headers["agentrt-deadline-source"] == "header"
    assert float(response.headers["agentrt-deadline-s"]) == 0.5
    assert elapsed < 0.5 + MARGIN_S
    assert await wait_for(gate.cancelled)  # the cut node's work stopped


async def test_the_tighter_of_header_and_context_wins(server: Server, gate: Gate) -> None:
    client = get_client(url=server.url, api_key=None)
    created: list[Any] = []
    await client.runs.wait(
        None, "steps", input={"steps": []}, context={"deadline_s": 0.4},
        headers={"agentrt-timeout": "20S"}, on_run_created=created.append,
    )  # fmt: skip
    await client.runs.wait(
        None, "steps", input={"steps": []}, context={"deadline_s": 20},
        headers={"agentrt-timeout": "400m"}, on_run_created=created.append,
    )  # fmt: skip
    outcomes = [(await client.runs.get(m["thread_id"], m["run_id"]))["agentrt"] for m in created]
    assert [(o["deadline_s"], o["deadline_source"]) for o in outcomes] == [
        (0.4, "context"), (0.4, "header"),
    ]  # fmt: skip
    assert all(o["degraded"] and o["status"] == "timeout" and o["cut"] == ["wait"]
               for o in outcomes)  # fmt: skip


async def test_a_streamed_run_past_its_deadline_ends_with_the_outcome(
    server: Server, gate: Gate
) -> None:
    client = get_client(url=server.url, api_key=None)
    started = time.monotonic()
    parts = [
        p async for p in client.runs.stream(
            None, "steps", input={"steps": []}, stream_mode="updates",
            config={"configurable": {"deadline_s": 0.5}},
        )
    ]  # fmt: skip
    assert time.monotonic() - started < 0.5 + MARGIN_S
    assert [p.event for p in parts] == ["metadata", "updates", "agentrt/outcome"]
    assert parts[1].data == {"first": {"steps": ["first"]}}
    outcome = parts[-1].data
    assert outcome["degraded"] is True and outcome["status"] == "timeout"
    assert outcome["deadline_source"] == "config" and "hard deadline" in outcome["reason"]


async def test_a_cut_thread_resumes_where_it_stopped_with_a_new_deadline(
    server: Server, gate: Gate
) -> None:
    client = get_client(url=server.url, api_key=None)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    cut = await client.runs.wait(tid, "steps", input={"steps": []}, context={"deadline_s": 0.5})
    assert cut == {"steps": ["first"]}
    state = await client.threads.get_state(tid)
    assert state["next"] == ["wait"]  # where it stopped
    gate.open.set()
    resumed = await client.runs.wait(tid, "steps", input=None, context={"deadline_s": 10})
    assert resumed == {"steps": ["first", "wait", "last"]}  # first did not run again
    runs = await client.runs.list(tid)
    assert [r["status"] for r in runs] == ["success", "timeout"]
    assert runs[0]["agentrt"]["deadline_s"] == 10


async def test_a_stream_carries_the_deadline_it_was_given(server: Server) -> None:
    client = get_client(url=server.url, api_key=None)
    parts = [p async for p in client.runs.stream(None, "counter", input={"count": 1},
                                                 headers={"agentrt-timeout": "7S"})]  # fmt: skip
    assert parts[0].data["deadline_s"] == 7.0 and parts[0].data["deadline_source"] == "header"
    assert parts[-1].data["deadline_s"] == 7.0 and parts[-1].data["budget_s"] <= 7.0


async def test_a_drained_thread_resumes_at_the_next_node(server: Server) -> None:
    client = get_client(url=server.url, api_key=None)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    drained = await client.runs.wait(tid, "drain", input={"steps": []},
                                     context={"deadline_s": 1.2})  # fmt: skip
    assert drained == {"steps": ["first", "until_drained"]}
    (run,) = await client.runs.list(tid)
    assert run["status"] == "timeout" and run["agentrt"]["reason"].startswith("drained")
    assert (await client.threads.get_state(tid))["next"] == ["last"]
    resumed = await client.runs.wait(tid, "drain", input=None, context={"deadline_s": 5})
    assert resumed == {"steps": ["first", "until_drained", "last"]}
