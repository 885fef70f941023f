"""Tool calls inside the run's budget: ToolBudget in a real create_agent graph, the
ToolNode wrappers, and the share rule (tool_timeout_s), on a FakeClock.

A scripted chat model asks for one tool call and then answers; the tools sleep
far longer (5 s) than their share, so a test that passes saw the cut, not a
fast machine. Nothing here waits on the real clock but the sync wrapper's
thread (0.05 s) and one run through Runtime.run.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool, tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agentrt.langgraph as public
from agentrt.budget import BudgetManager, BudgetProfile, GraphTopology, load_profile
from agentrt.core._clock import FakeClock
from agentrt.core._deadline import Deadline
from agentrt.langgraph import (
    Budget,
    Runtime,
    ToolBudget,
    budget_tool_calls,
    budget_tool_calls_sync,
    get_budget,
    load_graph,
    tool_timeout_s,
)
from agentrt.langgraph._scope import RunScope, run_scope
from agentrt.langgraph._tools import TOOL_CANCELLED_EVENT, final_call_s
from agentrt.pool import EndpointPool, EndpointSpec
from agentrt.tasks import SUITE_NAMES, is_correct, suite
from agentrt.tasks._tools import expected_call
from agentrt.tts._executor import TTSExecutor

REPO = Path(__file__).resolve().parents[2]
PROFILE = load_profile(REPO / "budgets" / "agent.toml")
UNREACHABLE = EndpointSpec(url="http://127.0.0.1:9")
SLEEP_S = 5.0
DEADLINE_S = 4.0
SHARE_S = DEADLINE_S - PROFILE.spec.reserve_s - final_call_s(PROFILE)  # soft remaining less it


class ScriptedChatModel(BaseChatModel):
    """Reply ``i`` answers the ``i``-th model call of a run (counted by the AI
    messages it is shown); ``bind_tools`` returns the model itself."""

    replies: list[AIMessage]

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> ChatResult:
        turn = sum(1 for m in messages if isinstance(m, AIMessage))
        return ChatResult(generations=[ChatGeneration(message=self.replies[turn])])

    async def _agenerate(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> ChatResult:
        return self._generate(messages, stop)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:  # type: ignore[override]
        return self


def calling(tool_name: str, /, **args: Any) -> ScriptedChatModel:
    """A model that calls tool ``tool_name`` once, then answers "done"."""
    return ScriptedChatModel(
        replies=[
            AIMessage("", tool_calls=[{"name": tool_name, "args": args, "id": "call-1"}]),
            AIMessage("done"),
        ]
    )


def agent(tools: list[BaseTool], tool_name: str, /, **args: Any) -> Any:
    model = calling(tool_name, **args)
    return create_agent(model, tools=tools, middleware=[ToolBudget()], name="agent")


def tool_message(state: dict[str, Any]) -> ToolMessage:
    (message,) = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    return message


def final_text(state: dict[str, Any]) -> str:
    last = state["messages"][-1]
    assert isinstance(last, AIMessage)
    return last.text


def cancelled(share_s: float, name: str = "slow") -> str:
    share = f"{share_s:.2f} s"
    return f"tool {name!r} was cancelled: it ran past its share of the run's budget ({share})"


# -- tools ----------------------------------------------------------------------------


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
async def slow(x: int) -> int:
    """An async tool that takes far longer than its share."""
    await asyncio.sleep(SLEEP_S)
    return x


@tool
def failing(name: str) -> str:
    """A tool that raises, quoting a secret."""
    raise ValueError(f"no element named {name!r} (api_key=sk-abcdefghijklmnop)")


@tool
async def own_timeout(x: int) -> int:
    """A tool whose own I/O timed out."""
    raise TimeoutError("upstream took too long")


class Blocking:
    """A sync tool that blocks its thread until released (at most 5 s)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()

        @tool
        def blocking(x: int) -> int:
            """A sync tool that blocks its worker thread."""
            self.started.set()
            self.release.wait(SLEEP_S)
            self.finished.set()
            return x

        self.tool = blocking


# -- the run around them -------------------------------------------------------------


@pytest.fixture
async def pool() -> AsyncIterator[EndpointPool]:
    pool = EndpointPool([UNREACHABLE], health_interval_s=0)
    try:
        yield pool
    finally:
        await pool.aclose()


@pytest.fixture
def blocking() -> Iterator[Blocking]:
    tool_ = Blocking()
    try:
        yield tool_
    finally:
        tool_.release.set()  # an abandoned thread runs on: let it end with the test


@contextmanager
def in_run(
    pool: EndpointPool, clock: FakeClock, profile: BudgetProfile = PROFILE, graph: Any = None
) -> Iterator[BudgetManager]:
    """An agentrt run's scope (budget, deadline) around the block, on ``clock``."""
    manager = BudgetManager.for_run(profile, graph=graph, deadline_s=DEADLINE_S, clock=clock)
    loop = asyncio.get_running_loop()
    with run_scope(RunScope(manager, TTSExecutor(pool, clock=clock), loop)):
        yield manager


def tool_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith("execute_tool")]


# -- the share ------------------------------------------------------------------------


def _profile(**nodes: dict[str, float]) -> BudgetProfile:
    return BudgetProfile.model_validate(
        {"default_node": {"calls_per_visit": 0.0, "min_call_s": 0.0}, "nodes": nodes}
    )


def test_the_final_call_kept_back_is_the_largest_typical_llm_call() -> None:
    assert final_call_s(PROFILE) == PROFILE.nodes["model"].p50_s
    two = _profile(
        plan={"calls_per_visit": 1.0, "min_call_s": 0.2, "p50_s": 0.5},
        write={"calls_per_visit": 2.0, "min_call_s": 0.9, "p50_s": 1.2},
        tools={"calls_per_visit": 0.0, "min_call_s": 1.5, "p50_s": 2.0},  # no LLM: not counted
    )
    assert final_call_s(two) == 1.2
    assert final_call_s(_profile()) == 0.0
    default = BudgetProfile.default().default_node  # the default node is an LLM node
    assert final_call_s(BudgetProfile.default()) == default.p50_s


def test_tool_timeout_is_soft_remaining_less_the_final_call() -> None:
    clock = FakeClock(0.0)
    manager = BudgetManager.for_run(PROFILE, deadline_s=DEADLINE_S, clock=clock)
    budget = Budget(manager, "tools", None)
    assert tool_timeout_s(budget) == pytest.approx(SHARE_S)
    clock.advance(1.0)
    assert tool_timeout_s(budget) == pytest.approx(SHARE_S - 1.0)
    clock.advance(1.0)  # past the soft instant: nothing left, never negative
    assert tool_timeout_s(budget) == 0.0


def test_tool_timeout_outside_a_run_and_without_a_deadline() -> None:
    assert tool_timeout_s(None) is None
    assert get_budget() is None
    endless = BudgetManager(Deadline.never(clock=FakeClock(0.0)), PROFILE)
    assert tool_timeout_s(Budget(endless, "tools", None)) == math.inf


def test_the_tool_budget_names_are_public() -> None:
    for name in ("ToolBudget", "budget_tool_calls", "budget_tool_calls_sync", "tool_timeout_s"):
        assert name in public.__all__


# -- through create_agent, inside a run -------------------------------------------------


async def test_a_fast_tool_answers_within_its_share(
    pool: EndpointPool, spans: InMemorySpanExporter
) -> None:
    # Not autojump: a sync tool waits in a worker thread, which an autojumping
    # FakeClock takes for "blocked" and jumps past, to the tool's cut.
    clock = FakeClock(0.0)
    graph = agent([add], "add", a=37, b=12)
    with in_run(pool, clock, graph=graph):
        state = await graph.ainvoke({"messages": [HumanMessage("37 + 12?")]})
    message = tool_message(state)
    assert (message.content, message.status, message.name) == ("49", "success", "add")
    assert final_text(state) == "done"
    assert clock.now() == 0.0
    (span,) = tool_spans(spans)
    assert span.name == "execute_tool add" and not span.events
    assert span.attributes is not None and span.attributes["agentrt.tool.duration_s"] == 0.0


async def test_a_slow_async_tool_is_cancelled_at_its_share(
    pool: EndpointPool, spans: InMemorySpanExporter
) -> None:
    clock = FakeClock(0.0, autojump=True)
    graph = agent([slow], "slow", x=1)
    with in_run(pool, clock, graph=graph):
        state = await graph.ainvoke({"messages": [HumanMessage("slow?")]})
    message = tool_message(state)
    assert message.content == cancelled(SHARE_S)
    assert (message.status, message.name, message.tool_call_id) == ("error", "slow", "call-1")
    assert final_text(state) == "done", "the model answered after the cut: the run goes on"
    assert clock.now() == pytest.approx(SHARE_S), "cut exactly at its share, not at the sleep"
    (span,) = tool_spans(spans)
    (event,) = span.events
    assert event.name == TOOL_CANCELLED_EVENT
    assert event.attributes == {
        "agentrt.tool.timeout_s": pytest.approx(SHARE_S),
        "agentrt.tool.abandoned": False,
    }
    assert span.attributes is not None and span.attributes["error.type"] == "deadline_exceeded"


async def test_a_slow_sync_tool_is_abandoned_in_its_thread(
    pool: EndpointPool, spans: InMemorySpanExporter, blocking: Blocking
) -> None:
    clock = FakeClock(0.0)  # moved by hand, once the tool's thread is running
    graph = agent([blocking.tool], "blocking", x=1)
    with in_run(pool, clock, graph=graph):
        run = asyncio.create_task(graph.ainvoke({"messages": [HumanMessage("block?")]}))
        assert await asyncio.to_thread(blocking.started.wait, SLEEP_S), "the tool started"
        clock.advance(SHARE_S)
        state = await run
    assert tool_message(state).content == cancelled(SHARE_S, "blocking")
    assert final_text(state) == "done"
    assert not blocking.finished.is_set(), "abandoned: its thread runs on, its result dropped"
    (event,) = tool_spans(spans)[0].events
    assert event.attributes is not None and event.attributes["agentrt.tool.abandoned"] is True


async def test_a_raising_tool_becomes_an_error_message_redacted(
    pool: EndpointPool, spans: InMemorySpanExporter
) -> None:
    clock = FakeClock(0.0)  # a sync tool: see test_a_fast_tool_answers_within_its_share
    graph = agent([failing], "failing", name="unobtainium")
    with in_run(pool, clock, graph=graph):
        state = await graph.ainvoke({"messages": [HumanMessage("?")]})
    message = tool_message(state)
    assert message.status == "error" and message.name == "failing"
    assert isinstance(message.content, str)
    assert message.content.startswith("tool 'failing' failed: ValueError: no element named")
    assert "sk-abcdefghijklmnop" not in message.content
    (span,) = tool_spans(spans)
    assert span.attributes is not None and span.attributes["error.type"] == "ValueError"
    assert span.status.description is not None
    assert "sk-abcdefghijklmnop" not in span.status.description
    assert final_text(state) == "done"


async def test_a_tools_own_timeout_is_a_failure_not_a_cut(pool: EndpointPool) -> None:
    graph = agent([own_timeout], "own_timeout", x=1)
    with in_run(pool, FakeClock(0.0, autojump=True), graph=graph):
        state = await graph.ainvoke({"messages": [HumanMessage("?")]})
    assert tool_message(state).content == (
        "tool 'own_timeout' failed: TimeoutError: upstream took too long"
    )


async def test_bad_arguments_are_still_create_agents_own_message(pool: EndpointPool) -> None:
    graph = agent([add], "add", a="not a number", b=1)
    with in_run(pool, FakeClock(0.0), graph=graph):
        state = await graph.ainvoke({"messages": [HumanMessage("?")]})
    message = tool_message(state)
    assert message.status == "error" and isinstance(message.content, str)
    assert "failed:" not in message.content, "ToolNode reported it; not handled twice"


async def test_with_no_time_left_the_tool_is_not_started(
    pool: EndpointPool, blocking: Blocking
) -> None:
    clock = FakeClock(0.0)
    graph = agent([blocking.tool], "blocking", x=1)
    with in_run(pool, clock, graph=graph):
        clock.advance(DEADLINE_S - 0.3)  # inside the time kept for the final call
        state = await graph.ainvoke({"messages": [HumanMessage("?")]})
    assert tool_message(state).content == cancelled(0.0, "blocking")
    assert not blocking.started.is_set()


async def test_outside_a_run_tools_are_unbounded_and_errors_still_reported() -> None:
    assert get_budget() is None
    state = await agent([add], "add", a=2, b=3).ainvoke({"messages": [HumanMessage("?")]})
    assert tool_message(state).content == "5"
    state = agent([failing], "failing", name="x").invoke({"messages": [HumanMessage("?")]})
    assert tool_message(state).status == "error"


# -- the sync path (graph.invoke) -------------------------------------------------------


async def test_invoke_abandons_a_sync_tool_at_its_share(
    pool: EndpointPool, blocking: Blocking
) -> None:
    clock = FakeClock(0.0)
    graph = agent([blocking.tool], "blocking", x=1)
    with in_run(pool, clock, graph=graph):
        clock.advance(SHARE_S - 0.05)  # a 0.05 s share, waited on the real clock
        state = graph.invoke({"messages": [HumanMessage("?")]})
    assert tool_message(state).content == cancelled(0.05, "blocking")
    assert final_text(state) == "done"
    # Its own thread was started; once scheduled, it runs on, abandoned.
    assert blocking.started.wait(SLEEP_S) and not blocking.finished.is_set()


async def test_invoke_runs_a_fast_tool_and_reports_a_failing_one(pool: EndpointPool) -> None:
    with in_run(pool, FakeClock(0.0)):
        state = agent([add], "add", a=2, b=3).invoke({"messages": [HumanMessage("?")]})
        assert tool_message(state).content == "5"
        state = agent([failing], "failing", name="x").invoke({"messages": [HumanMessage("?")]})
        assert str(tool_message(state).content).startswith("tool 'failing' failed: ValueError")


# -- a plain LangGraph graph with ToolNode ----------------------------------------------


def tool_node_graph(model: ScriptedChatModel, tools: list[BaseTool], *, sync: bool = False) -> Any:
    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    def call_model_sync(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", call_model_sync if sync else call_model)
    builder.add_node(
        "tools",
        ToolNode(tools, wrap_tool_call=budget_tool_calls_sync, awrap_tool_call=budget_tool_calls),
    )
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", tools_condition, ["tools", END])
    builder.add_edge("tools", "model")
    return builder.compile(name="plain")


async def test_tool_node_takes_the_same_wrapper(pool: EndpointPool) -> None:
    clock = FakeClock(0.0, autojump=True)
    graph = tool_node_graph(calling("slow", x=1), [slow])
    with in_run(pool, clock, graph=graph):
        state = await graph.ainvoke({"messages": [HumanMessage("?")]})
    assert tool_message(state).content == cancelled(SHARE_S)
    assert final_text(state) == "done"
    assert clock.now() == pytest.approx(SHARE_S)
    with in_run(pool, FakeClock(0.0)):
        state = tool_node_graph(calling("add", a=1, b=2), [add], sync=True).invoke(
            {"messages": [HumanMessage("?")]}
        )
    assert tool_message(state).content == "3"


# -- end to end, through Runtime.run ------------------------------------------------------


async def test_a_run_keeps_going_after_a_tool_is_cut(pool: EndpointPool) -> None:
    graph = agent([slow], "slow", x=1)
    result = await Runtime(pool=pool).run(
        graph, {"messages": [HumanMessage("?")]}, deadline=1.0, profile=PROFILE
    )
    message = tool_message(result.state)
    assert message.status == "error" and str(message.content).startswith(
        "tool 'slow' was cancelled: it ran past its share of the run's budget"
    )
    assert final_text(result.state) == "done"
    assert result.deadline_met and result.cut == ()


# -- the shipped graph (graphs/agent.py) ------------------------------------------------


def test_the_agent_graph_is_create_agents_two_nodes_with_its_profile() -> None:
    loaded = load_graph(f"{REPO}/graphs/agent.py:graph")
    module = loaded.module
    assert (module.TASK_SUITE, module.PROFILE) == ("agent", "budgets/agent.toml")
    assert module.TASK_SUITE in SUITE_NAMES
    profile = load_profile(REPO / module.PROFILE)
    assert profile.graph == "graphs/agent.py:graph"
    assert set(GraphTopology.from_langgraph(loaded.graph).nodes) == set(profile.nodes)
    assert profile.stats_for("model").expected_visits == 2.0
    assert profile.stats_for("tools").calls_per_visit == 0.0
    assert [t.name for t in module.TOOLS] == ["calculate", "lookup", "convert"]


async def test_the_agent_graphs_tools_answer_every_kind_of_task(pool: EndpointPool) -> None:
    module = load_graph(f"{REPO}/graphs/agent.py:graph").module
    for task in suite("agent", seed=1, count=6):
        call = expected_call(task)
        model = calling(call["tool"], **call["arguments"])
        model.replies[1] = AIMessage("That is {}.".format(task.meta["expected"]))
        graph = create_agent(
            model, tools=module.TOOLS, system_prompt=module.SYSTEM_PROMPT,
            middleware=[ToolBudget()],
        )  # fmt: skip
        with in_run(pool, FakeClock(0.0), graph=graph):
            state = await graph.ainvoke(module.input_for(task))
        assert state["messages"][0].text == task.prompt
        assert tool_message(state).status == "success"
        answer = module.answer_of(state)
        assert answer is not None and is_correct(task, answer), (task.prompt, answer)


def test_answer_of_is_the_last_ai_messages_text() -> None:
    module = load_graph(f"{REPO}/graphs/agent.py:graph").module
    asked = AIMessage("", tool_calls=[{"name": "add", "args": {}, "id": "c"}])
    assert module.answer_of({"messages": [HumanMessage("q")]}) is None
    assert module.answer_of({"messages": [HumanMessage("q"), asked]}) is None  # cut mid-call
    assert module.answer_of({"messages": [asked, AIMessage(" 444 ")]}) == "444"
    assert module.input_for(suite("agent", 0, 1)[0])["messages"][0].type == "human"
