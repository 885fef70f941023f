"""What the ``agentrt serve`` tests share: graphs that make no LLM call, and a real
uvicorn server on a free loopback port, in a thread with its own event loop (as a
separate server process would be), driven by the real ``langgraph_sdk`` clients.

The graphs: ``counter`` adds one to ``count``; ``steps`` runs ``first``, ``wait``
(which blocks while its :class:`Gate` is closed, and records being cancelled)
and ``last``; ``drain`` runs ``first``, ``until_drained`` (which returns once the
run asks the graph to drain, at its soft deadline) and ``last``; ``chat`` streams
a custom event and a message from an in-process fake chat model. Their profile
says no node makes an LLM call, so no deadline is too short for them.
"""

from __future__ import annotations

import asyncio
import itertools
import operator
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

import httpx
import pytest
import uvicorn
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.runtime import get_runtime
from starlette.applications import Starlette

from agentrt.budget import BudgetProfile
from agentrt.langgraph import Runtime
from agentrt.pool import EndpointPool, EndpointSpec
from agentrt.serve import ServedGraph, create_app

START_TIMEOUT_S = 30.0
"""How long a test server may take to start on a loaded machine."""

NO_LLM = BudgetProfile.model_validate(
    {
        "spec": {"deadline_s": 30.0},
        "default_node": {
            "calls_per_visit": 0.0, "p50_s": 0.0, "p90_s": 0.0, "p95_s": 0.0, "p99_s": 0.0,
            "min_call_s": 0.0,
        },
    }
)  # fmt: skip
"""A profile for graphs without LLM calls: their runs need no minimum time."""
NO_LLM_WITH_RESERVE = NO_LLM.with_spec(reserve_s=0.4)
"""The same with a wrap-up reserve: a run drains between its soft and hard deadline."""


@dataclass
class Gate:
    """Holds the ``wait`` node of the ``steps`` graph while closed; says whether a
    waiting node was cancelled (its work stopped)."""

    open: threading.Event = field(default_factory=threading.Event)
    entered: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)

    async def passage(self) -> None:
        self.entered.set()
        try:
            # The test opens it from its own thread: a flag polled, not an asyncio.Event.
            while not self.open.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


class CounterState(TypedDict, total=False):
    count: int


class StepsState(TypedDict, total=False):
    steps: Annotated[list[str], operator.add]


class ChatState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]


def chain(state: type[Any], name: str, *nodes: tuple[str, Any]) -> Any:
    """A graph of ``nodes`` run one after another, compiled as ``name``."""
    builder = StateGraph(state)
    for node, function in nodes:
        builder.add_node(node, function)
    names = [START, *(node for node, _ in nodes), END]
    for before, after in itertools.pairwise(names):
        builder.add_edge(before, after)
    return builder.compile(name=name)


def counter_graph() -> Any:
    async def increment(state: CounterState) -> CounterState:
        return {"count": state.get("count", 0) + 1}

    return chain(CounterState, "counter", ("increment", increment))


def steps_graph(gate: Gate) -> Any:
    async def first(state: StepsState) -> StepsState:
        return {"steps": ["first"]}

    async def wait(state: StepsState) -> StepsState:
        await gate.passage()
        return {"steps": ["wait"]}

    async def last(state: StepsState) -> StepsState:
        return {"steps": ["last"]}

    return chain(StepsState, "steps", ("first", first), ("wait", wait), ("last", last))


def drain_graph() -> Any:
    async def first(state: StepsState) -> StepsState:
        return {"steps": ["first"]}

    async def until_drained(state: StepsState) -> StepsState:
        # LangGraph's drain request is a flag, with no event to wait on.
        while not get_runtime().drain_requested:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        return {"steps": ["until_drained"]}

    async def last(state: StepsState) -> StepsState:
        return {"steps": ["last"]}

    return chain(
        StepsState, "drain", ("first", first), ("until_drained", until_drained), ("last", last)
    )


def chat_graph() -> Any:
    replies = itertools.cycle([AIMessage(content="hello there world")])

    async def reply(state: ChatState) -> ChatState:
        get_stream_writer()({"progress": "replying"})
        model = GenericFakeChatModel(messages=replies)
        answer = await model.ainvoke(state["messages"])
        return {"messages": [answer]}

    return chain(ChatState, "chat", ("reply", reply))


def offline_pool() -> EndpointPool:
    """A pool that answers nothing (503): for graphs that make no LLM call."""
    return EndpointPool(
        [EndpointSpec(url="http://127.0.0.1:9")],
        transport=httpx.MockTransport(lambda request: httpx.Response(503)),
        health_interval_s=0,
    )


def offline_runtime() -> Runtime:
    """A Runtime whose pool answers nothing: the graphs served here make no LLM call."""
    return Runtime(pool=offline_pool())


def served_graphs(gate: Gate) -> dict[str, ServedGraph]:
    return {
        "counter": ServedGraph("counter", counter_graph(), NO_LLM),
        "steps": ServedGraph("steps", steps_graph(gate), NO_LLM),
        "chat": ServedGraph("chat", chat_graph(), NO_LLM),
        "drain": ServedGraph("drain", drain_graph(), NO_LLM_WITH_RESERVE),
    }


@dataclass
class Server:
    """A running test server: its base URL and its app (its counters, its registry)."""

    url: str
    app: Starlette


@contextmanager
def serving(app: Starlette) -> Iterator[Server]:
    """Serve ``app`` with uvicorn on a free loopback port until the block ends."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="agentrt-serve-test", daemon=True)
    thread.start()
    give_up = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > give_up:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Server(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(timeout=START_TIMEOUT_S)


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.open.set()  # whatever a test left waiting goes on


@pytest.fixture
def server(gate: Gate) -> Iterator[Server]:
    app = create_app(served_graphs(gate), runtime=offline_runtime)
    with serving(app) as running:
        yield running


async def wait_for(event: threading.Event, timeout_s: float = 10.0) -> bool:
    """Wait for a flag set on the server's thread, without blocking this loop."""
    return await asyncio.to_thread(event.wait, timeout_s)
