"""The shipped graphs on real LangGraph and the real local vLLM pool.

Each graph finishes by its deadline plus a margin at a tight and a loose
deadline, answers easy tasks right at the loose one, and degrades (flagged,
state kept) at an impossible one. The margin asserted here is generous for a
shared 2-core CI machine; the measured overshoot is in docs/langgraph.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentrt.budget import load_profile
from agentrt.langgraph import RunDeadlineExceeded, Runtime, load_graph
from agentrt.pool import EndpointSpec
from agentrt.tts import LatencyModel

MARGIN_S = 0.5
LATENCY: dict[str, LatencyModel] = {}
"""This machine's measured latency models (conftest's ``pool_latency``)."""


@pytest.fixture(autouse=True)
def _measured_latency(pool_latency: dict[str, LatencyModel]) -> None:
    LATENCY.update(pool_latency)


EASY: dict[str, list[dict[str, Any]]] = {
    "math": [
        {"problem": "Start with 2. Add 3. What is the result?"},
        {"problem": "Start with 4. Add 1. What is the result?"},
        {"problem": "Start with 3. Add 3. What is the result?"},
    ],
    "mapreduce": [
        {"question": "What is 2 plus 3? What is 1 plus 1? Add up the answers."},
        {"question": "What is 4 plus 1? What is 2 plus 2? Add up the answers."},
        {"question": "What is 3 plus 3? What is 1 plus 2? Add up the answers."},
    ],
    "calculator": [
        {"expression": "2 + 3"},
        {"expression": "4 + 1"},
        {"expression": "3 + 3"},
    ],
}
EXPECTED = {"math": ["5", "5", "6"], "mapreduce": ["7", "9", "9"], "calculator": ["5", "5", "6"]}
LOOSE_S = {"math": 20.0, "mapreduce": 20.0, "calculator": 30.0}
TIGHT_S = {"math": 2.5, "mapreduce": 2.0, "calculator": 3.0}


async def run_graph(name: str, graph_input: dict[str, Any], deadline: float,
                    specs: list[EndpointSpec], **options: Any) -> Any:  # fmt: skip
    loaded = load_graph(f"graphs/{name}.py:graph")
    result = await Runtime(endpoints=specs, latency=LATENCY).run(
        loaded.graph, graph_input, deadline=deadline, profile=loaded.optional("PROFILE"),
        graph_path=loaded.path, **options,
    )  # fmt: skip
    return loaded, result


@pytest.mark.parametrize("name", ["math", "mapreduce", "calculator"])
async def test_loose_deadline_answers_easy_tasks(name: str, all_specs: list[EndpointSpec]) -> None:
    correct = 0
    for graph_input, expected in zip(EASY[name], EXPECTED[name], strict=True):
        loaded, result = await run_graph(name, graph_input, LOOSE_S[name], all_specs)
        assert result.elapsed_s <= LOOSE_S[name] + MARGIN_S
        correct += loaded.module.answer_of(result.state) == expected
        assert result.calls, "the graph made LLM calls through the budgeted chat model"
    assert correct >= 2, f"{name}: {correct} of 3 easy tasks right"


@pytest.mark.parametrize("name", ["math", "mapreduce", "calculator"])
async def test_tight_deadline_is_kept(name: str, all_specs: list[EndpointSpec]) -> None:
    _, result = await run_graph(name, EASY[name][0], TIGHT_S[name], all_specs)
    assert result.elapsed_s <= TIGHT_S[name] + MARGIN_S
    assert result.report.budget_s == pytest.approx(TIGHT_S[name])


@pytest.mark.parametrize("name", ["math", "mapreduce", "calculator"])
async def test_impossible_deadline_degrades_and_keeps_state(
    name: str, all_specs: list[EndpointSpec]
) -> None:
    graph_input = EASY[name][0]
    _, result = await run_graph(name, graph_input, 0.05, all_specs)
    assert result.elapsed_s <= 0.05 + MARGIN_S
    assert result.degraded and result.reason
    for key, value in graph_input.items():  # the input is still there: nothing is lost
        assert result.state[key] == value


async def test_raise_mode_carries_what_the_run_had(all_specs: list[EndpointSpec]) -> None:
    profile = load_profile(Path("budgets/math.toml")).with_spec(on_expiry="raise")
    loaded = load_graph("graphs/math.py:graph")
    with pytest.raises(RunDeadlineExceeded) as info:
        await Runtime(endpoints=all_specs, latency=LATENCY).run(
            loaded.graph, EASY["math"][0], deadline=0.3, profile=profile
        )
    assert info.value.scope == "run" and info.value.deadline_s == pytest.approx(0.3)
    assert info.value.result.state["problem"] == EASY["math"][0]["problem"]


async def test_mapreduce_fan_out_shares_wall_clock(all_specs: list[EndpointSpec]) -> None:
    _, result = await run_graph("mapreduce", EASY["mapreduce"][0], LOOSE_S["mapreduce"], all_specs)
    solves = [c for c in result.calls if c.allocation.node == "solve"]
    assert len(solves) == 2
    # Both tasks ran in one round: each got (about) the same slice, not half of it.
    first, second = sorted(c.allocation.slice_s for c in solves)
    assert second - first < 0.25 * second
    rows = {n.node: n for n in result.report.nodes}
    assert rows["solve"].rounds == 1
