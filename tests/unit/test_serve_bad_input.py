"""Bad requests get a 4xx JSON ``{"detail": ...}`` naming the field and the value,
never a 500 traceback: malformed JSON, an unknown assistant or thread, a bad
deadline, an oversized body, a feature this server does not have."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError, UnprocessableEntityError

from agentrt.core._errors import ConfigurationError
from agentrt.serve import ServedGraph, create_app
from tests.unit.test_serve_fixtures import (
    NO_LLM,
    Gate,
    Server,
    counter_graph,
    offline_runtime,
    served_graphs,
    serving,
)

BODY_LIMIT = 2048


@pytest.fixture(scope="module")
def small_server() -> Any:
    """A server that takes bodies of at most 2 KiB."""
    app = create_app(served_graphs(Gate()), runtime=offline_runtime, max_body_bytes=BODY_LIMIT)
    with serving(app) as running:
        yield running


@pytest.fixture
async def http(small_server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=small_server.url, timeout=30) as client:
        yield client


def _clear(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is ``status`` with a JSON detail and no traceback."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    return body


async def test_malformed_json_is_a_400_saying_where(http: httpx.AsyncClient) -> None:
    body = _clear(await http.post("/runs/wait", content=b'{"assistant_id": "counter",'), 400)
    assert "not valid JSON" in body["detail"] and "at byte" in body["detail"]
    body = _clear(await http.post("/runs/wait", content=b""), 400)
    assert "empty" in body["detail"]


async def test_a_body_that_is_not_an_object_is_a_422(http: httpx.AsyncClient) -> None:
    body = _clear(await http.post("/runs/wait", json=["counter"]), 422)
    assert "must be a JSON object, got list" in body["detail"]


@pytest.mark.parametrize(
    ("payload", "field", "says"),
    [
        ({}, "assistant_id", "Field required"),
        ({"assistant_id": 7}, "assistant_id", "valid string"),
        ({"assistant_id": "counter", "config": "fast"}, "config", "valid dictionary"),
        ({"assistant_id": "counter", "stream_mode": "events"}, "stream_mode", "unknown stream"),
        ({"assistant_id": "counter", "stream_mode": ["values", 3]}, "stream_mode", "string"),
        ({"assistant_id": "counter", "interrupt_before": ["increment"]}, "interrupt_before",
         "not supported by agentrt serve"),
        ({"assistant_id": "counter", "webhook": "http://x"}, "webhook", "not supported"),
        ({"assistant_id": "counter", "multitask_strategy": "enqueue"}, "multitask_strategy",
         "not supported"),
        ({"assistant_id": "counter", "if_not_exists": "maybe"}, "if_not_exists", "'create'"),
        ({"assistant_id": "counter", "command": {"goto": 3}}, "command.goto", "string"),
    ],
)  # fmt: skip
async def test_a_bad_field_is_a_422_naming_it_and_its_value(
    http: httpx.AsyncClient, payload: dict[str, Any], field: str, says: str
) -> None:
    body = _clear(await http.post("/runs/wait", json=payload), 422)
    assert body["field"] == field
    assert body["detail"].startswith(field)
    assert says in body["detail"]


async def test_an_unknown_assistant_is_a_404_naming_what_is_served(
    http: httpx.AsyncClient,
) -> None:
    body = _clear(await http.post("/runs/wait", json={"assistant_id": "nope"}), 404)
    assert "assistant 'nope' not found" in body["detail"]
    assert "'counter'" in body["detail"] and body["value"] == "nope"
    _clear(await http.get("/assistants/nope"), 404)


@pytest.mark.parametrize(
    ("headers", "payload", "field", "value"),
    [
        ({"agentrt-timeout": "fast"}, {}, "header agentrt-timeout", "fast"),
        ({"agentrt-timeout": "0m"}, {}, "header agentrt-timeout", "0m"),
        ({"agentrt-timeout": "5H"}, {}, "header agentrt-timeout", "5H"),
        ({}, {"context": {"deadline_s": -2}}, "context.deadline_s", -2),
        ({}, {"context": {"deadline_s": 7200}}, "context.deadline_s", 7200),
        ({}, {"context": {"deadline_s": "8s"}}, "context.deadline_s", "8s"),
        ({}, {"config": {"configurable": {"deadline_s": 0}}}, "config.configurable.deadline_s",
         0),
    ],
)  # fmt: skip
async def test_a_bad_deadline_is_a_422_naming_it(
    http: httpx.AsyncClient, headers: dict[str, str], payload: dict[str, Any], field: str,
    value: Any,
) -> None:  # fmt: skip
    response = await http.post(
        "/runs/wait", json={"assistant_id": "counter", **payload}, headers=headers
    )
    body = _clear(response, 422)
    assert body["field"] == field and body["value"] == value
    assert field in body["detail"]


async def test_a_nan_deadline_is_a_422(http: httpx.AsyncClient) -> None:
    raw = b'{"assistant_id": "counter", "context": {"deadline_s": NaN}}'
    body = _clear(await http.post("/runs/wait", content=raw), 422)
    assert body["detail"] == "context.deadline_s = nan: must be a finite number of seconds"


async def test_the_sdk_sees_a_bad_deadline_as_unprocessable(small_server: Server) -> None:
    client = get_client(url=small_server.url, api_key=None)
    with pytest.raises(UnprocessableEntityError, match=r"context\.deadline_s"):
        async for _ in client.runs.stream(None, "counter", input={}, context={"deadline_s": -1}):
            pass


async def test_an_oversized_body_is_a_413_naming_the_limit(http: httpx.AsyncClient) -> None:
    payload = {"assistant_id": "counter", "input": {"count": 1, "pad": "x" * BODY_LIMIT}}
    body = _clear(await http.post("/runs/wait", json=payload), 413)
    assert str(BODY_LIMIT) in body["detail"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        yield b'{"assistant_id": "counter", "input": {"pad": "'
        yield b"x" * BODY_LIMIT
        yield b'"}}'

    body = _clear(await http.post("/runs/wait", content=chunks()), 413)
    assert f"over {BODY_LIMIT} bytes" in body["detail"]


async def test_unknown_threads_and_runs_are_404s(small_server: Server) -> None:
    client = get_client(url=small_server.url, api_key=None)
    with pytest.raises(NotFoundError, match="thread 'ghost' not found"):
        await client.threads.get_state("ghost")
    with pytest.raises(NotFoundError, match="if_not_exists='create'"):
        await client.runs.create("ghost", "counter", input={})
    thread = await client.threads.create()
    with pytest.raises(NotFoundError, match="run 'r1' not found"):
        await client.runs.get(thread["thread_id"], "r1")


async def test_a_thread_made_twice_is_a_409_unless_asked_not_to(small_server: Server) -> None:
    client = get_client(url=small_server.url, api_key=None)
    await client.threads.create(thread_id="twice")
    again = await client.threads.create(thread_id="twice", if_exists="do_nothing")
    assert again["thread_id"] == "twice"
    async with httpx.AsyncClient(base_url=small_server.url) as http:
        body = _clear(await http.post("/threads", json={"thread_id": "twice"}), 409)
    assert "already exists" in body["detail"]


async def test_unknown_routes_and_methods_answer_json(http: httpx.AsyncClient) -> None:
    assert "no route GET /nowhere" in _clear(await http.get("/nowhere"), 404)["detail"]
    assert "DELETE is not allowed" in _clear(await http.delete("/runs/wait"), 405)["detail"]


async def test_cancel_takes_only_interrupt(small_server: Server) -> None:
    client = get_client(url=small_server.url, api_key=None)
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "counter", input={"count": 1})
    with pytest.raises(UnprocessableEntityError, match="only 'interrupt'"):
        await client.runs.cancel(thread["thread_id"], run["run_id"], action="rollback")


async def test_a_graph_is_found_by_its_own_name() -> None:
    app = create_app({"tally": ServedGraph("tally", counter_graph(), NO_LLM)},
                     runtime=offline_runtime)  # fmt: skip
    with serving(app) as server:
        client = get_client(url=server.url, api_key=None)
        assert await client.runs.wait(None, "counter", input={"count": 1}) == {"count": 2}
        assert (await client.assistants.get("counter"))["assistant_id"] == "tally"


def test_create_app_refuses_what_is_not_a_graph() -> None:
    with pytest.raises(ConfigurationError, match="at least one graph"):
        create_app({}, runtime=offline_runtime)
    with pytest.raises(ConfigurationError, match="'x' must be a compiled LangGraph graph"):
        create_app({"x": object()}, runtime=offline_runtime)


@pytest.mark.parametrize("option", ["max_deadline_s", "max_body_bytes"])
@pytest.mark.parametrize("bad", [0, -1, math.nan, "big"])
def test_create_app_refuses_bad_limits(option: str, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match=f"{option} must be a positive number"):
        create_app({"counter": counter_graph()}, runtime=offline_runtime, **{option: bad})
