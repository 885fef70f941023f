"""A multi-step arithmetic solver: decompose, solve each step with budgeted TTS, combine, check.

"Start with 7. Add 4. Then subtract 2. What is the result?" is split into
steps; each step is one LLM call ("What is 7 plus 4?") whose answer feeds the
next, so a wrong step propagates as it would in any chain of LLM calls. The
`solve` node loops once per step: ``decompose`` tells the budget manager how
many (``get_budget().expect_visits``), in place of the profile's average
(budgets/math.toml), so a five-step problem is not planned as a three-step one.

Load by path: ``agentrt run graphs/math.py:graph --deadline 8s --task-seed 1``.
"""

from __future__ import annotations

import re
from typing import Any, Literal, TypedDict

from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph

from agentrt import LastNumber
from agentrt.langgraph import TTSChatModel, get_budget
from agentrt.tasks import Task

TASK_SUITE = "multi-step"
PROFILE = "budgets/math.toml"

_START = re.compile(r"Start with (-?\d+)\.")
_STEP = re.compile(r"(Add|Subtract|Multiply by|Divide by) (-?\d+)\.", re.IGNORECASE)
_OPS = {"add": "plus", "subtract": "minus", "multiply by": "times", "divide by": "divided by"}

spec = LastNumber()  # what an answer is: branches vote on the last number
model = TTSChatModel(call_site="solve", answer_spec=spec)
ANSWER_FORMAT = "Answer with just the number."  # short replies: ~9 tokens median


class MathState(TypedDict, total=False):
    problem: str
    start: int
    operations: list[tuple[str, int]]
    results: list[str]
    answer: str | None
    checked: bool


def input_for(task: Task) -> dict[str, Any]:
    return {"problem": task.prompt}


def answer_of(state: dict[str, Any]) -> str | None:
    answer = state.get("answer")
    return None if answer is None else str(answer)


def decompose(state: MathState) -> MathState:
    """Parse the problem into a start value and its operations (no LLM needed)."""
    problem = state["problem"]
    start = _START.search(problem)
    operations = [(_OPS[m.group(1).lower()], int(m.group(2))) for m in _STEP.finditer(problem)]
    if start is None or not operations:
        raise ValueError(
            f"problem must look like 'Start with 3. Add 4. Then subtract 2.', got {problem!r}"
        )
    budget = get_budget()
    if budget is not None:  # one solve round per step: split the budget over them all
        budget.expect_visits("solve", len(operations))
    return {"start": int(start.group(1)), "operations": operations, "results": []}


async def solve(state: MathState) -> MathState:
    """One step: ask the model, keep its answer (wrong or not) for the next step."""
    results = list(state.get("results", []))
    left = results[-1] if results else str(state["start"])
    op, right = state["operations"][len(results)]
    question = f"What is {left} {op} {right}? {ANSWER_FORMAT}"
    reply = await model.ainvoke([HumanMessage(question)])
    found = spec.extract(str(reply.content))
    results.append(found.key if found is not None else "?")
    return {"results": results}


def more_steps(state: MathState) -> Literal["solve", "combine"]:
    return "solve" if len(state.get("results", [])) < len(state["operations"]) else "combine"


def combine(state: MathState) -> MathState:
    results = state.get("results", [])
    last = results[-1] if results else None
    return {"answer": last if last not in (None, "?") else None}


def check(state: MathState) -> MathState:
    """Every step produced a number and the chain is complete."""
    results = state.get("results", [])
    complete = len(results) == len(state.get("operations", []))
    return {"checked": complete and all(r != "?" for r in results)}


builder = StateGraph(MathState)
builder.add_node("decompose", decompose)
builder.add_node("solve", solve)
builder.add_node("combine", combine)
builder.add_node("check", check)
builder.add_edge(START, "decompose")
builder.add_edge("decompose", "solve")
builder.add_conditional_edges("solve", more_steps)
builder.add_edge("combine", "check")
builder.add_edge("check", END)
graph = builder.compile(name="math")
