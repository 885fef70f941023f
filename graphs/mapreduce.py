"""Map-reduce: a dynamic ``Send`` fan-out over sub-questions, then a reduce step.

"What is 9 plus 6? What is 4 plus 8? Add up the answers." becomes one `solve`
task per sub-question, all in one superstep: they share wall-clock time, so
the budget manager gives each the same slice instead of splitting it.

Load by path: ``agentrt run graphs/mapreduce.py:graph --deadline 6s --task-seed 1``.
"""

from __future__ import annotations

import operator
import re
from typing import Annotated, Any, TypedDict

from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from agentrt import LastNumber
from agentrt.langgraph import TTSChatModel, get_budget
from agentrt.tasks import Task

TASK_SUITE = "map-reduce"
PROFILE = "budgets/mapreduce.toml"

_QUESTION = re.compile(r"What is -?\d+ (?:plus|minus|times) -?\d+\?")

spec = LastNumber()  # what an answer is: branches vote on the last number
model = TTSChatModel(call_site="solve", answer_spec=spec)
ANSWER_FORMAT = "Answer with just the number."  # short replies: ~9 tokens median


class MapReduceState(TypedDict, total=False):
    question: str
    sub_questions: list[str]
    answers: Annotated[list[tuple[int, str]], operator.add]
    answer: str | None


class SubQuestion(TypedDict):
    index: int
    question: str


def input_for(task: Task) -> dict[str, Any]:
    return {"question": task.prompt}


def answer_of(state: dict[str, Any]) -> str | None:
    answer = state.get("answer")
    return None if answer is None else str(answer)


def split(state: MapReduceState) -> MapReduceState:
    questions = _QUESTION.findall(state["question"])
    if not questions:
        raise ValueError(f"no 'What is A plus B?' sub-question in {state['question']!r}")
    return {"sub_questions": questions}


def fan_out(state: MapReduceState) -> list[Send]:
    budget = get_budget()
    timeout = None if budget is None else max(0.05, budget.remaining_s)
    return [
        Send("solve", SubQuestion(index=i, question=q), timeout=timeout)
        for i, q in enumerate(state["sub_questions"])
    ]


async def solve(task: SubQuestion) -> MapReduceState:
    reply = await model.ainvoke([HumanMessage(f"{task['question']} {ANSWER_FORMAT}")])
    found = spec.extract(str(reply.content))
    return {"answers": [(task["index"], found.key if found is not None else "?")]}


def reduce(state: MapReduceState) -> MapReduceState:
    values = [v for _, v in sorted(state.get("answers", []))]
    if len(values) < len(state.get("sub_questions", [])) or "?" in values:
        return {"answer": None}
    return {"answer": str(sum(int(v) for v in values))}


builder = StateGraph(MapReduceState)
builder.add_node("split", split)
builder.add_node("solve", solve)
builder.add_node("reduce", reduce)
builder.add_edge(START, "split")
builder.add_conditional_edges("split", fan_out, ["solve"])
builder.add_edge("solve", "reduce")
builder.add_edge("reduce", END)
graph = builder.compile(name="mapreduce")
