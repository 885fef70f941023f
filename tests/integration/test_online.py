"""Online latency learning on the real local pool: a run whose latency prior is
5x too optimistic (the calibrated models scaled down) learns from its first
call, and from its second call on the calls finish inside their slices with
answers. A server that gets several times slower mid-run (a fault proxy's
``slowdown``) shrinks the plans within two calls."""

from __future__ import annotations

from agentrt.langgraph import Runtime, load_graph
from agentrt.pool import EndpointPool, EndpointSpec
from agentrt.tts import (
    CallModels,
    LatencyModel,
    LengthModel,
    OnlineLatency,
    SearchSpace,
    TTSExecutor,
)
from benchmarks.faults import FaultProxy
from tests.support.lateness import measuring_lateness

OPTIMISM = 5.0
PROBLEM = {"problem": "Start with 2. Add 3. Then add 1. Then subtract 2. What is the result?"}
DEADLINE_S = 30.0


async def test_a_five_times_optimistic_prior_is_corrected_by_the_second_call(
    plain_specs: list[EndpointSpec], pool_latency: dict[str, LatencyModel]
) -> None:
    # This machine's measured model, scaled to be 5x too optimistic.
    optimistic = pool_latency["plain"].scaled(1.0 / OPTIMISM, 1.0 / OPTIMISM)
    loaded = load_graph("graphs/math.py:graph")
    runtime = Runtime(endpoints=plain_specs, latency={"plain": optimistic})
    async with measuring_lateness() as lateness:
        result = await runtime.run(
            loaded.graph, PROBLEM, deadline=DEADLINE_S, profile=loaded.optional("PROFILE"),
            graph_path=loaded.path,
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
        # Inside the slice, but for a loop the servers' threads kept waiting.
        started, slice_s = call.allocation.started_at, call.allocation.slice_s
        late_s = lateness.worst(started + slice_s - 0.5, started + call.result.latency_s + 0.5)
        assert call.result.latency_s <= slice_s + late_s, (call.result.plan.reason, late_s)
        assert call.result.answer is not None, call.result.degraded_reason
        assert "slice ended" not in (call.result.degraded_reason or "")


SLOWDOWN = 4.0
"""How much slower the proxied server gets: twice the slice's headroom."""
HEADROOM = 2.0
"""The slice is this many times the widest config's planned p95 under the prior."""
SHORT_REPLY = LengthModel.from_quantiles(10, 20)
"""Tokens per branch of an addition's reply: well inside the 32-token cap, so wider
configs are predicted more accurate (the default prior, 200 tokens, would not finish)."""
ADDITION = [{"role": "user", "content": "What is 3 plus 4?"}]
LATE_MARGIN_S = 0.5  # a shared 2-core machine; measured lateness is in docs/reliability.md


async def test_a_slowdown_mid_run_shrinks_the_plans_within_two_calls(
    plain_specs: list[EndpointSpec], pool_latency: dict[str, LatencyModel]
) -> None:
    space = SearchSpace(strategies=("single", "majority"), n_choices=(1, 2, 4, 8),
                        groups=("plain",), max_tokens_choices=(32,))  # fmt: skip
    models = CallModels(latency={"plain": pool_latency["plain"]}, length=SHORT_REPLY)
    online = OnlineLatency()
    host, port = plain_specs[0].address
    async with (
        FaultProxy(host, port) as proxy,
        EndpointPool([plain_specs[0].model_copy(update={"url": proxy.url})],
                     health_interval_s=0) as pool,
    ):  # fmt: skip
        executor = TTSExecutor(pool, models=models, space=space, hedge=None, online=online)
        # Sized from this machine's measured model: the widest config, planned at the
        # prior's p95, fits with room to spare, so it is what the plans pick at first.
        widest = executor.plan(ADDITION, 1e6)
        assert widest.config is not None and widest.prediction is not None
        slice_s = HEADROOM * widest.prediction.latency_quantile_s
        before = [await executor.run(ADDITION, slice_s=slice_s) for _ in range(3)]
        proxy.slowdown = SLOWDOWN
        after = [await executor.run(ADDITION, slice_s=slice_s) for _ in range(3)]
    wide_n = widest.config.n
    assert wide_n >= 4, widest.reason
    assert before[-1].config is not None and before[-1].config.n == wide_n, before[-1].plan.reason
    planned = [r.config.n if r.config is not None else 0 for r in after]
    shrunk = next((i for i, n in enumerate(planned) if n < wide_n), None)
    assert shrunk is not None and shrunk <= 1, (planned, [r.plan.reason for r in after])
    for result in after[shrunk:]:
        assert result.config is not None and result.config.n < wide_n, result.plan.reason
        assert result.latency_s <= slice_s + LATE_MARGIN_S, result.degraded_reason
    state = after[-1].online
    assert state is not None and max(state.ttft_factor, state.per_token_factor) > 2.0, state
