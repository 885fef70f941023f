"""Tool calling and structured output on the real local pool (vLLM's CPU build,
SmolLM2-135M), both ways a server is reached, and tools inside a run's budget.

What is asserted is what the runtime promises whatever the model's skill: a
forced call names a bound tool with schema-valid arguments, a structured reply
validates, a slow tool is cut at its share and the run still answers by its
deadline. Which tool the 135M model picks on its own is measured, not asserted
(``python -m benchmarks tools``)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, TypedDict

import jsonschema
import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from pydantic import BaseModel

from agentrt.budget import BudgetProfile
from agentrt.langgraph import Runtime, TTSChatModel, budget_tool_calls, load_graph
from agentrt.pool import EndpointSpec
from agentrt.tts import LastNumber, LatencyModel, TTSConfig

MARGIN_S = 0.5
VOTE = TTSConfig(strategy="majority", n=4, max_tokens=64, temperature=0.8)
LATENCY: dict[str, LatencyModel] = {}


@pytest.fixture(autouse=True)
def _measured_latency(pool_latency: dict[str, LatencyModel]) -> None:
    LATENCY.update(pool_latency)


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


class Length(BaseModel):
    value: int
    unit: str


INT_PAIR = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"]}  # fmt: skip


def _model(specs: list[EndpointSpec], mode: str, **fields: Any) -> TTSChatModel:
    return TTSChatModel(endpoints=specs, tool_calling=mode, slice_s=30.0, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["constrained", "native"])
@pytest.mark.parametrize("choice", ["any", "multiply"])
async def test_a_forced_call_names_a_bound_tool_with_valid_arguments(
    plain_specs: list[EndpointSpec], mode: str, choice: str
) -> None:
    assert all(s.tool_calling == "native" for s in plain_specs)  # the local pool parses calls
    model = _model(plain_specs, mode, config=VOTE).bind_tools([add, multiply], tool_choice=choice)
    reply = await model.ainvoke("What is 6 times 7? Use a tool.")
    assert isinstance(reply, AIMessage)
    assert reply.tool_calls, reply
    for call in reply.tool_calls:
        assert call["name"] in ({"add", "multiply"} if choice == "any" else {"multiply"})
        jsonschema.validate(call["args"], INT_PAIR)
        assert call["id"]
    meta = reply.response_metadata["agentrt"]
    assert meta["tool_calling"] == mode
    assert sum(meta["votes"].values()) >= 1  # the branches voted on actions


async def test_native_streaming_yields_the_chosen_call(plain_specs: list[EndpointSpec]) -> None:
    model = _model(plain_specs, "native", config=VOTE).bind_tools([add], tool_choice="add")
    chunks = [c async for c in model.astream("Add 2 and 3.")]
    assert len(chunks) == 1
    assert chunks[0].tool_calls and chunks[0].tool_calls[0]["name"] == "add"
    jsonschema.validate(chunks[0].tool_calls[0]["args"], INT_PAIR)


@pytest.mark.parametrize("method", ["json_schema", "function_calling", "json_mode"])
async def test_structured_output_each_method(plain_specs: list[EndpointSpec], method: str) -> None:
    model = _model(plain_specs, "constrained", config=VOTE, max_tokens=64)
    prompt = "Give a length as JSON with an integer 'value' and a string 'unit': 3 meters."
    if method == "json_mode":
        out = await model.with_structured_output(None, method="json_mode").ainvoke(prompt)  # type: ignore[arg-type]
        assert isinstance(out, dict)
    else:
        out = await model.with_structured_output(Length, method=method).ainvoke(prompt)  # type: ignore[arg-type]
        assert isinstance(out, Length)


class LoopState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


async def test_a_slow_tool_is_cut_at_its_share_and_the_run_still_answers(
    plain_specs: list[EndpointSpec],
) -> None:
    """The plain ToolNode path: a forced call to a tool that would take 60 s, under
    a 20 s run; the tool is cancelled at its share (the time left less a typical
    model call, kept for the answer turn), the model is told so, and the answer
    turn still happens by the deadline."""
    started: list[float] = []

    @tool
    async def slow_lookup(city: str) -> str:
        """Look up a city's population (slow)."""
        started.append(asyncio.get_running_loop().time())
        await asyncio.sleep(60)
        return "1000"

    model = TTSChatModel(call_site="agent", tool_calling="constrained", max_tokens=48)

    async def agent(state: LoopState) -> LoopState:
        forced = model.bind_tools([slow_lookup], tool_choice="slow_lookup")
        return {"messages": [await forced.ainvoke(state["messages"])]}

    async def answer(state: LoopState) -> LoopState:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(LoopState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([slow_lookup], awrap_tool_call=budget_tool_calls))
    builder.add_node("answer", answer)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", "tools")
    builder.add_edge("tools", "answer")
    builder.add_edge("answer", END)
    graph = builder.compile(name="slow-tool")

    deadline_s = 20.0
    call = {"calls_per_visit": 1.0, "p50_s": 2.5, "p90_s": 5.0, "p95_s": 6.0, "p99_s": 8.0,
            "min_call_s": 0.5, "tokens_p50": 30.0, "tokens_p90": 48.0}  # fmt: skip
    profile = BudgetProfile.model_validate({
        "default_node": {"calls_per_visit": 0.0, "p50_s": 0.0, "p90_s": 0.0, "p95_s": 0.0,
                         "p99_s": 0.0, "min_call_s": 0.0},
        "nodes": {"agent": call, "answer": call},
    })  # fmt: skip
    result = await Runtime(endpoints=plain_specs, latency=LATENCY).run(
        graph, {"messages": [HumanMessage("What is the population of Oslo?")]},
        deadline=deadline_s, profile=profile,
    )  # fmt: skip
    assert result.elapsed_s <= deadline_s + MARGIN_S
    assert result.error is None
    assert started, f"the forced call reached the tool: {result.state['messages']}, {result.reason}"
    tool_messages = [m for m in result.state["messages"] if isinstance(m, ToolMessage)]
    assert len(tool_messages) == 1 and tool_messages[0].status == "error"
    assert "cancelled" in str(tool_messages[0].content)
    last = result.state["messages"][-1]
    assert isinstance(last, AIMessage) and not last.tool_calls  # the answer turn ran
    assert [c.allocation.node for c in result.calls] == ["agent", "answer"]


AGENT_EASY = ["What is 2 plus 3?", "What is 4 plus 1?"]


async def _run_agent(question: str, deadline_s: float, specs: list[EndpointSpec]) -> Any:
    loaded = load_graph("graphs/agent.py:graph")
    return loaded, await Runtime(endpoints=specs, latency=LATENCY).run(
        loaded.graph, {"messages": [HumanMessage(question)]}, deadline=deadline_s,
        profile=loaded.optional("PROFILE"), graph_path=loaded.path,
    )  # fmt: skip


async def test_the_agent_graph_calls_a_tool_and_answers_from_its_result(
    plain_specs: list[EndpointSpec],
) -> None:
    """Under a loose deadline: model (a forced, schema-valid call) -> tools -> model,
    which answers with a number (SmolLM2 sometimes prefers its own sum to the
    tool's result, from a wrong expression). Whether the 135M model writes the right
    expression is the benchmark's to measure (docs/BENCHMARKS.md, tools)."""
    deadline_s = 40.0
    for question in AGENT_EASY:
        loaded, result = await _run_agent(question, deadline_s, plain_specs)
        assert result.elapsed_s <= deadline_s + MARGIN_S
        messages = result.state["messages"]
        calls = [m for m in messages if isinstance(m, AIMessage) and m.tool_calls]
        assert calls and calls[0].tool_calls[0]["name"] in {"calculate", "lookup", "convert"}
        results = [m for m in messages if isinstance(m, ToolMessage)]
        assert len(results) == 1
        answer = loaded.module.answer_of(result.state)
        if not result.degraded:  # the answer turn ran: a number (the tool's, or its own)
            assert answer is not None and LastNumber().extract(answer) is not None
        assert [c.allocation.node for c in result.calls] == ["model", "model"]


async def test_the_agent_graph_under_a_tight_deadline_returns_flagged(
    plain_specs: list[EndpointSpec],
) -> None:
    deadline_s = 3.0
    _, result = await _run_agent(AGENT_EASY[0], deadline_s, plain_specs)
    assert result.elapsed_s <= deadline_s + MARGIN_S
    assert result.degraded and result.reason
    assert result.state["messages"][0].content == AGENT_EASY[0]  # the input is kept
