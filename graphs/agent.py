"""LangChain's prebuilt agent with three exact tools, its tool calls inside the run's budget.

``create_agent`` loops between two nodes: ``model`` asks the chat model what to
do and ``tools`` runs the tool calls it makes. Each task of the ``agent`` suite
needs exactly one call: ``calculate("37 * 12")``, ``lookup("neon",
"atomic_number")`` or ``convert(3.5, "km", "m")``; the model then answers from
the tool's result. The ``ToolBudget`` middleware gives every tool call what
the run can spare (the time left before the soft deadline, less the final
answer's minimum call time): a tool still running then is cancelled and the
model is told so in an error ``ToolMessage``, instead of the run failing.

The tools wrap :mod:`agentrt.tasks._tools`, which also scores the calls
(``call_is_right``): the graph and the benchmark share one truth. The model is
an ordinary tool-calling chat model, as a LangGraph user would write it
(``TTSChatModel`` binds tools, natively or by constrained decoding).

Load by path: ``agentrt run graphs/agent.py:graph --deadline 10s --task-seed 1``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from agentrt import LastNumber
from agentrt.langgraph import ToolBudget, TTSChatModel
from agentrt.tasks import Task
from agentrt.tasks import _tools as exact

TASK_SUITE = "agent"
PROFILE = "budgets/agent.toml"
SYSTEM_PROMPT = (
    "Answer the question with one tool call. "
    "After the tool's result, reply with the number only."
)  # short: a 135M model follows a two-sentence prompt best

# SmolLM2-135M does not emit tool calls by itself (with vLLM's hermes parser and
# tool_choice="auto" it answers in prose), so the tools reach it constrained: in
# the prompt, each branch held by a JSON schema to a call or an answer. Branches
# vote on the action; a final answer is its last number.
model = TTSChatModel(
    call_site="agent", tool_calling="constrained", answer_spec=LastNumber(), max_tokens=64
)  # a call cut mid-JSON is no call: room for the longest (~45 tokens)


@tool
def calculate(expression: str) -> int:
    """Compute an integer expression with +, - and *, e.g. "37 * 12"."""
    return exact.calculate(expression)


@tool
def lookup(name: str, field: str) -> int | str:
    """Look up a chemical element by name or symbol, e.g. name="neon".

    field is one of: atomic_number, period, group, symbol, name.
    """
    return exact.lookup(name, field)


@tool
def convert(value: float, from_unit: str, to_unit: str) -> int | float:
    """Convert value from one unit to another of the same kind.

    Units: km, m, cm, mm; kg, g; hours, minutes, seconds.
    """
    return exact.convert(value, from_unit, to_unit)


TOOLS = [calculate, lookup, convert]


def input_for(task: Task) -> dict[str, Any]:
    return {"messages": [HumanMessage(task.prompt)]}


def answer_of(state: dict[str, Any]) -> str | None:
    """The text of the last AI message, or None when there is none (or it is empty)."""
    for message in reversed(state.get("messages", [])):
        if isinstance(message, AIMessage):
            return message.text.strip() or None
    return None


class OneToolCall(AgentMiddleware):
    """Each task needs exactly one tool call: the first turn must call a tool
    (``tool_choice="any"``), the turn after a tool's result must answer
    (``"none"``). SmolLM2-135M left to choose (``"auto"``) answers from memory on
    every branch (0 of 36 call votes on six seeded tasks), so the tool is never
    asked; forcing the turns keeps the vote on which tool, with which arguments."""

    def _choice(self, request: ModelRequest) -> ModelRequest:
        called = any(isinstance(m, ToolMessage) for m in request.messages)
        settings = {**request.model_settings, "parallel_tool_calls": False}  # one call, no more
        return request.override(tool_choice="none" if called else "any", model_settings=settings)

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelResponse:
        return handler(self._choice(request))

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse:
        return await handler(self._choice(request))


graph = create_agent(
    model,
    tools=TOOLS,
    system_prompt=SYSTEM_PROMPT,
    middleware=[OneToolCall(), ToolBudget()],
    name="agent",
)
