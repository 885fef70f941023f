"""Online latency learning on the real local pool: a run whose latency prior is
5x too optimistic (the calibrated models scaled down) learns from its first
call, and from its second call on the calls finish inside their slices with
answers."""

from __future__ import annotations

from agentrt.langgraph import load_graph, run
from agentrt.pool import EndpointSpec
from agentrt.tts import LatencyModel

OPTIMISM = 5.0
PROBLEM = {"problem": "Start with 2. Add 3. Then add 1. Then subtract 2. What is the result?"}
DEADLINE_S = 30.0


async def test_a_five_times_optimistic_prior_is_corrected_by_the_second_call(
    plain_specs: list[EndpointSpec], pool_latency: dict[str, LatencyModel]
) -> None:
    # This machine's measured model, scaled to be 5x too optimistic.
    optimistic = pool_latency["plain"].scaled(1.0 / OPTIMISM, 1.0 / OPTIMISM)
    loaded = load_graph("graphs/math.py:graph")
    result = await run(
        loaded.graph, PROBLEM, deadline=DEADLINE_S, profile=loaded.optional("PROFILE"),
        endpoints=plain_specs, latency={"plain": optimistic}, graph_path=loaded.path,
    )  # fmt: skip
    calls = result.calls
    assert len(calls) >= 3, "decompose's steps each make an LLM call"
    first = calls[0].result
    assert first.online is not None and first.online.observations == 0
    for call in calls[1:]:
        state = call.result.online
        assert state is not None and state.observations >= 2
        # Learned: the correction is well past the prior's 1.0.
        assert max(state.ttft_factor, state.per_token_factor) > 2.0, state
        assert call.result.latency_s <= call.allocation.slice_s, call.result.plan.reason
        assert call.result.answer is not None, call.result.degraded_reason
        assert "slice ended" not in (call.result.degraded_reason or "")
