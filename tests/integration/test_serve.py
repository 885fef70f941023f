"""``agentrt serve`` on the real local pool, driven by the real ``langgraph_sdk``
client: graphs/math.py answers a stateless run and streams a threaded one, a
deadline sent in the ``agentrt-timeout`` header flags a run it cuts, and a thread
kept in a real PostgreSQL, drained at its deadline by one worker, is resumed with a
new deadline by another worker (a second app on the same database) where it
stopped (a graph whose long step ends when the run drains). The servers here are
uvicorn in a thread of the test process (as tests/unit/test_serve_fixtures.py
does), each with its own Runtime on the pool."""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import httpx
import pytest
from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import get_runtime
from langgraph_sdk import get_client
from prometheus_client.parser import text_string_to_metric_families

from agentrt.budget import BudgetProfile
from agentrt.langgraph import LoadedGraph, Runtime, TTSChatModel, load_graph
from agentrt.pool import EndpointSpec
from agentrt.serve import OUTCOME_EVENT, ServedGraph, create_app, remote_graph
from agentrt.tracing import TracingSettings, configure_tracing, current_tracing, shutdown_tracing
from agentrt.tts import LatencyModel
from tests.support.postgres import postgres_server_fixture, postgres_url_fixture  # noqa: F401
from tests.unit.test_serve_fixtures import NO_LLM, Server, chain, offline_runtime, serving

PROBLEM = {"problem": "Start with 2. Add 3. Then add 1. What is the result?"}
LONG_PROBLEM = {
    "problem": "Start with 1. Add 1. Then add 1. Then add 1. Then add 1. Then add 1. "
    "Then add 1. Then add 1. What is the result?"
}
MARGIN_S = 1.0  # the server's own margin plus a shared 2-core machine's lateness


@pytest.fixture(scope="module")
def math_graph() -> LoadedGraph:
    return load_graph("graphs/math.py:graph")


def _server(
    graph: LoadedGraph, specs: list[EndpointSpec], latency: dict[str, LatencyModel],
    checkpointer_url: str | None = None,
) -> Any:  # fmt: skip
    app = create_app(
        {"math": graph},
        runtime=lambda: Runtime(endpoints=specs, latency=latency),
        checkpointer_url=checkpointer_url,
    )
    return serving(app)


@pytest.fixture
def server(
    math_graph: LoadedGraph, plain_specs: list[EndpointSpec],
    pool_latency: dict[str, LatencyModel],
) -> Iterator[Server]:  # fmt: skip
    with _server(math_graph, plain_specs, pool_latency) as running:
        yield running


async def test_a_stateless_run_answers_on_the_pool(server: Server) -> None:
    client = get_client(url=server.url, api_key=None)
    created: list[Any] = []
    values = await client.runs.wait(
        None, "math", input=PROBLEM, context={"deadline_s": 60}, on_run_created=created.append
    )
    assert values["results"] and len(values["results"]) == 2
    assert values["answer"] is not None, values
    run = await client.runs.get(created[0]["thread_id"], created[0]["run_id"])
    assert run["agentrt"]["deadline_source"] == "context"
    assert run["agentrt"]["report"]["calls"], run["agentrt"]


async def test_a_threaded_stream_ends_with_the_outcome(server: Server) -> None:
    client = get_client(url=server.url, api_key=None)
    thread = await client.threads.create()
    events: list[tuple[str, Any]] = []
    async for part in client.runs.stream(
        thread["thread_id"], "math", input=PROBLEM, stream_mode=["updates", "values"],
        headers={"agentrt-timeout": "60S"},
    ):  # fmt: skip
        events.append((part.event, part.data))
    names = [e for e, _ in events]
    assert names[0] == "metadata" and names[-1] == OUTCOME_EVENT
    updated = [next(iter(d)) for e, d in events if e == "updates" and isinstance(d, dict)]
    assert updated[:2] == ["decompose", "solve"] and "check" in updated
    outcome = events[-1][1]
    assert outcome["deadline_source"] == "header" and outcome["deadline_s"] <= 60
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"]["answer"] == events[-2][1]["answer"]


async def test_a_header_deadline_cuts_the_run_and_says_so(server: Server) -> None:
    client = get_client(url=server.url, api_key=None)
    events: list[tuple[str, Any]] = []
    async for part in client.runs.stream(
        None, "math", input=LONG_PROBLEM, stream_mode="values",
        headers={"agentrt-timeout": "2500m"},
    ):  # fmt: skip
        events.append((part.event, part.data))
    outcome = events[-1][1]
    assert events[-1][0] == OUTCOME_EVENT
    assert outcome["deadline_s"] == pytest.approx(2.5, abs=0.1)
    assert outcome["degraded"] and outcome["reason"], outcome  # eight calls do not fit
    assert outcome["elapsed_s"] <= 2.5 + MARGIN_S


class TwoCalls(TypedDict, total=False):
    question: str
    first: str
    steps: Annotated[list[str], operator.add]
    second: str


def two_calls_graph() -> Any:
    """``ask`` (an LLM call), ``until_drained`` (a long step that ends when the run
    drains, at its soft deadline), ``answer`` (another LLM call)."""
    model = TTSChatModel(call_site="ask", max_tokens=16)

    async def ask(state: TwoCalls) -> TwoCalls:
        reply = await model.ainvoke([HumanMessage(state["question"])])
        return {"first": str(reply.content), "steps": ["ask"]}

    async def until_drained(state: TwoCalls) -> TwoCalls:
        while not get_runtime().drain_requested:  # noqa: ASYNC110 -- a flag, no event
            await asyncio.sleep(0.01)
        return {"steps": ["until_drained"]}

    async def answer(state: TwoCalls) -> TwoCalls:
        reply = await model.ainvoke([HumanMessage(state["question"])])
        return {"second": str(reply.content), "steps": ["answer"]}

    return chain(
        TwoCalls, "two_calls", ("ask", ask), ("until_drained", until_drained), ("answer", answer)
    )


def two_calls_profile() -> BudgetProfile:
    """No LLM call but in ``ask`` and ``answer``; a 1 s wrap-up reserve."""
    call = {"calls_per_visit": 1.0, "p50_s": 1.0, "p90_s": 2.0, "p95_s": 2.5, "p99_s": 3.0,
            "min_call_s": 0.3}  # fmt: skip
    profile = NO_LLM.model_dump()
    profile["spec"]["reserve_s"] = 1.0
    profile["nodes"] = {"ask": call, "answer": call}
    return BudgetProfile.model_validate(profile)


async def test_a_drained_thread_on_postgres_resumes_on_another_worker(
    plain_specs: list[EndpointSpec], pool_latency: dict[str, LatencyModel], postgres_url: str,
) -> None:  # fmt: skip
    served = {"two_calls": ServedGraph("two_calls", two_calls_graph(), two_calls_profile())}

    def app() -> Any:
        return serving(create_app(
            served, runtime=lambda: Runtime(endpoints=plain_specs, latency=pool_latency),
            checkpointer_url=postgres_url,
        ))  # fmt: skip

    question = {"question": "What is 3 plus 4?"}
    # Worker 1: the first call answers, the long step drains at the deadline's reserve.
    with app() as first:
        client = get_client(url=first.url, api_key=None)
        tid = (await client.threads.create())["thread_id"]
        drained = await client.runs.wait(tid, "two_calls", input=question,
                                         context={"deadline_s": 6})  # fmt: skip
        assert drained["steps"] == ["ask", "until_drained"], drained
    # Worker 2, a new app on the same database, resumes it with a new deadline.
    with app() as second:
        client = get_client(url=second.url, api_key=None)
        state = await client.threads.get_state(tid)
        assert state["next"] == ["answer"], state  # where it stopped, read from Postgres
        resumed = await client.runs.wait(tid, "two_calls", input=None,
                                         context={"deadline_s": 30})  # fmt: skip
    assert resumed["steps"] == ["ask", "until_drained", "answer"]  # ask did not run again
    assert resumed["first"] == drained["first"] and resumed["second"], resumed


async def test_metrics_are_scraped_after_runs(server: Server) -> None:
    # The exposition of a configured tracing (as `agentrt serve` configures at start-up).
    previous = current_tracing()
    configure_tracing(TracingSettings(exporters=()))
    try:
        client = get_client(url=server.url, api_key=None)
        await client.runs.wait(None, "math", input=PROBLEM, context={"deadline_s": 60})
        await client.runs.wait(None, "math", input=LONG_PROBLEM, context={"deadline_s": 1.5})
        async with httpx.AsyncClient(base_url=server.url) as http:
            scraped = await http.get("/metrics")
    finally:
        shutdown_tracing()
        if previous is not None:
            configure_tracing(previous.settings)
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
    durations = families["gen_ai_client_operation_duration_seconds"].samples
    assert {s.labels["gen_ai_request_model"] for s in durations} == {"smollm2-135m-instruct"}
    calls = sum(s.value for s in durations if s.name.endswith("_count"))
    assert calls >= 2 + 1  # the short chain's two calls, and the long one's
    tokens = {s.labels["gen_ai_token_type"] for s in families["gen_ai_client_token_usage"].samples}
    assert tokens >= {"input", "output"}
    runs = {
        s.labels["agentrt_run_outcome"]: s.value
        for s in families["agentrt_runs"].samples
        if s.name.endswith("_total")
    }
    assert sum(runs.values()) == 2 and runs.get("degraded", 0) >= 1, runs
    sla = {
        s.labels["agentrt_sla_outcome"]
        for s in families["agentrt_sla_runs"].samples
        if s.name.endswith("_total")
    }
    assert sla <= {"met", "missed"} and sla
    assert "agentrt_run_overshoot_seconds" in families


async def test_a_messages_stream_carries_the_models_tokens(server: Server) -> None:
    client = get_client(url=server.url, api_key=None)
    thread = await client.threads.create()
    events: list[tuple[str, Any]] = []
    async for part in client.runs.stream(
        thread["thread_id"], "math", input=PROBLEM, stream_mode=["messages", "custom"],
        context={"deadline_s": 60},
    ):  # fmt: skip
        events.append((part.event, part.data))
    assert events[-1][0] == OUTCOME_EVENT
    pieces = [d[0] for e, d in events if e.startswith("messages")]
    assert pieces, [e for e, _ in events]
    message, metadata = next(d for e, d in events if e.startswith("messages"))
    assert message["type"] in {"AIMessageChunk", "ai"} and metadata["langgraph_node"] == "solve"
    text = "".join(str(p.get("content", "")) for p in pieces)
    assert text.strip(), pieces  # the model's own words, token by token


async def test_a_background_run_is_cancelled_and_says_so(server: Server) -> None:
    client = get_client(url=server.url, api_key=None)
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"], "math", input=LONG_PROBLEM, context={"deadline_s": 120}
    )
    await asyncio.sleep(0.5)  # under way on the pool
    loop = asyncio.get_running_loop()
    cancelled_at = loop.time()
    await client.runs.cancel(thread["thread_id"], run["run_id"])
    await client.runs.join(thread["thread_id"], run["run_id"])
    joined_s = loop.time() - cancelled_at
    done = await client.runs.get(thread["thread_id"], run["run_id"])
    assert done["status"] in {"interrupted", "error"}, done
    assert joined_s < 10, joined_s  # it ended at the cancel, not at its 120 s deadline


async def test_an_overloaded_worker_refuses_at_once(
    math_graph: LoadedGraph, plain_specs: list[EndpointSpec],
    pool_latency: dict[str, LatencyModel],
) -> None:  # fmt: skip
    app = create_app(
        {"math": math_graph}, max_in_flight=1,
        runtime=lambda: Runtime(endpoints=plain_specs, latency=pool_latency),
    )  # fmt: skip
    with serving(app) as running:
        client = get_client(url=running.url, api_key=None)
        busy = asyncio.create_task(
            client.runs.wait(None, "math", input=LONG_PROBLEM, context={"deadline_s": 30})
        )
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=running.url) as http:
            body = {"assistant_id": "math", "input": PROBLEM, "context": {"deadline_s": 30}}
            full = await http.post("/runs/wait", json=body)
            short = await http.post("/runs/wait", json={**body, "context": {"deadline_s": 0.05}})
        await busy
    assert full.status_code == 503 and full.headers["retry-after"] == "1", full.text
    assert "its cap" in full.json()["detail"]
    assert short.status_code == 504 and "cannot be met" in short.json()["detail"], short.text


class Caller(TypedDict, total=False):
    problem: str
    answer: str | None


async def test_a_remote_graph_node_takes_the_callers_deadline_to_the_pool(
    server: Server,
) -> None:
    """A local graph whose one node is the served math graph, run under an agentrt
    deadline: the served run gets the caller's time left in its header, and answers
    on the pool within it."""
    builder = StateGraph(Caller)
    builder.add_node("remote", remote_graph("math", url=server.url, name="remote"))
    builder.add_edge(START, "remote")
    builder.add_edge("remote", END)
    async with offline_runtime() as runtime:  # the caller makes no LLM call itself
        result = await runtime.run(builder.compile(name="caller"), PROBLEM, deadline=60)
    assert not result.degraded, result.reason
    assert result.state.get("answer") is not None, result.state
    (served,) = server.app.state.registry.runs()
    assert served.deadline.source == "header" and served.deadline.seconds < 60
    assert served.status == "success"
