"""A tool-using agent loop with a calculator tool; how many turns it takes is not known ahead.

The problem's arithmetic is a chain of operations (``((400 + 205) - 304) * 7``).
Each turn the agent asks the model for the next operation's result; the
calculator tool checks the claim. A wrong claim sends the agent back with the
tool's feedback ("405 is wrong"), so the number of turns depends on the
model: more test-time compute per call means fewer turns. When the budget
says no time is left for another turn, the agent keeps its last claim and the
answer is marked unverified.

The small local model cannot pick tools from free text, so the loop (not the
model) decides when to call the calculator; on a larger model the same graph
shape takes a tool-calling chat model.

Load by path: ``agentrt run graphs/calculator.py:graph --deadline 10s --task-seed 1``.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any, Literal, TypedDict

from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph

from agentrt import LastNumber
from agentrt.langgraph import TTSChatModel, get_budget
from agentrt.tasks import Task

TASK_SUITE = "calculator"
PROFILE = "budgets/calculator.toml"
MAX_TRIES_PER_STEP = 3

_WORDS = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}
_APPLY: dict[str, Callable[[int, int], int]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.floordiv,
}
_AST_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "/"}

spec = LastNumber()  # what an answer is: branches vote on the last number
model = TTSChatModel(call_site="agent", answer_spec=spec)
ANSWER_FORMAT = "Answer with just the number."  # short replies: ~9 tokens median


class AgentState(TypedDict, total=False):
    expression: str
    start: int
    operations: list[tuple[str, int]]
    value: int
    step: int
    tries: int
    claim: str | None
    feedback: str | None
    turns: int
    tool_calls: int
    unverified: int
    gave_up: bool
    answer: str | None


def input_for(task: Task) -> dict[str, Any]:
    return {"expression": str(task.meta["expression"])}


def answer_of(state: dict[str, Any]) -> str | None:
    answer = state.get("answer")
    return None if answer is None else str(answer)


def parse_chain(expression: str) -> tuple[int, list[tuple[str, int]]]:
    """``((a + b) - c) * d`` -> ``(a, [("+", b), ("-", c), ("*", d)])``; nothing else."""
    try:
        node = ast.parse(expression, mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"expression is not arithmetic: {expression!r}") from exc
    operations: list[tuple[str, int]] = []
    while isinstance(node, ast.BinOp) and type(node.op) in _AST_OPS:
        if not (isinstance(node.right, ast.Constant) and isinstance(node.right.value, int)):
            raise ValueError(f"expression must be a left-nested chain of integers: {expression!r}")
        operations.append((_AST_OPS[type(node.op)], node.right.value))
        node = node.left
    if not (isinstance(node, ast.Constant) and isinstance(node.value, int)) or not operations:
        raise ValueError(f"expression must be a left-nested chain of integers: {expression!r}")
    return node.value, operations[::-1]


def plan(state: AgentState) -> AgentState:
    start, operations = parse_chain(state["expression"])
    return {"start": start, "operations": operations, "value": start, "step": 0, "tries": 0,
            "turns": 0, "tool_calls": 0, "unverified": 0}  # fmt: skip


async def agent(state: AgentState) -> AgentState:
    """The model claims the next step's result."""
    op, right = state["operations"][state["step"]]
    question = f"What is {state['value']} {_WORDS[op]} {right}? {ANSWER_FORMAT}"
    if state.get("feedback"):
        question = f"{state['feedback']} {question}"
    reply = await model.ainvoke([HumanMessage(question)])
    found = spec.extract(str(reply.content))
    return {"claim": None if found is None else found.key, "turns": state["turns"] + 1}


def calculator(state: AgentState) -> AgentState:
    """The tool: compute the step and judge the model's claim."""
    op, right = state["operations"][state["step"]]
    truth = _APPLY[op](state["value"], right)
    claim = state.get("claim")
    tries = state["tries"] + 1
    calls = state["tool_calls"] + 1
    if claim == str(truth):
        return {"value": truth, "step": state["step"] + 1, "tries": 0, "feedback": None,
                "tool_calls": calls}  # fmt: skip
    budget = get_budget()
    out_of_time = budget is not None and budget.soft_remaining_s < budget.slice_s()
    if tries >= MAX_TRIES_PER_STEP or out_of_time:
        # Give up on this step: carry the model's claim forward, unverified;
        # with no claim at all the chain is broken and the run has no answer.
        if claim is None or not claim.lstrip("-").isdigit():
            return {"step": len(state["operations"]), "gave_up": True, "tool_calls": calls}
        return {"value": int(claim), "step": state["step"] + 1, "tries": 0, "feedback": None,
                "tool_calls": calls, "unverified": state["unverified"] + 1}  # fmt: skip
    feedback = f"{claim} is wrong." if claim is not None else "Answer with a number."
    return {"tries": tries, "feedback": feedback, "tool_calls": calls}


def next_turn(state: AgentState) -> Literal["agent", "finish"]:
    return "agent" if state["step"] < len(state["operations"]) else "finish"


def finish(state: AgentState) -> AgentState:
    return {"answer": None if state.get("gave_up") else str(state["value"])}


builder = StateGraph(AgentState)
builder.add_node("plan", plan)
builder.add_node("agent", agent)
builder.add_node("calculator", calculator)
builder.add_node("finish", finish)
builder.add_edge(START, "plan")
builder.add_edge("plan", "agent")
builder.add_edge("agent", "calculator")
builder.add_conditional_edges("calculator", next_turn)
builder.add_edge("finish", END)
graph = builder.compile(name="calculator")
