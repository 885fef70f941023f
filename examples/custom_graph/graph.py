"""A custom graph with its own budget profile: answer, then double-check.

    agentrt run examples/custom_graph/graph.py:graph \
        --profile examples/custom_graph/budget.toml \
        --input '{"question": "What is 6 plus 7?"}' --deadline 6s

`answer` asks the budgeted chat model; `verify` asks again in other words and
keeps the answer only if both agree (else the second). Both nodes read their
slice from the run's budget without any plumbing; the profile tells the
manager what each node costs so the deadline is split sensibly.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from agentrt import LastNumber
from agentrt.langgraph import TTSChatModel, get_budget

spec = LastNumber()  # what an answer is: branches vote on the last number
answerer = TTSChatModel(call_site="answer", answer_spec=spec)
checker = TTSChatModel(call_site="verify", answer_spec=spec)


class State(TypedDict, total=False):
    question: str
    first: str | None
    answer: str | None
    agreed: bool


def answer_of(state: dict[str, Any]) -> str | None:
    return state.get("answer")


async def answer(state: State) -> State:
    question = f"{state['question']} Answer with just the number."
    reply = await answerer.ainvoke([HumanMessage(question)])
    found = spec.extract(str(reply.content))
    return {"first": None if found is None else found.key}


async def verify(state: State) -> State:
    budget = get_budget()
    if budget is not None and budget.soft_remaining_s < 0.5:
        return {"answer": state.get("first"), "agreed": False}  # no time to check
    question = f"Compute carefully: {state['question']} Reply with the number only."
    reply = await checker.ainvoke([HumanMessage(question)])
    found = spec.extract(str(reply.content))
    second = None if found is None else found.key
    return {"answer": second if second is not None else state.get("first"),
            "agreed": second == state.get("first")}  # fmt: skip


builder = StateGraph(State)
builder.add_node("answer", answer)
builder.add_node("verify", verify)
builder.add_edge(START, "answer")
builder.add_edge("answer", "verify")
builder.add_edge("verify", END)
graph = builder.compile(name="double_check")
